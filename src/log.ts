import { appendFileSync } from 'node:fs';

/**
 * Debug log. Goes to stderr with --debug and, once a vault is known, to the
 * vault's run log, so a failed run can be diagnosed after the fact. Callers
 * never pass secrets here; the exec wrapper logs argv only, and secrets never
 * travel in argv.
 */
let toStderr = false;
let logFile: string | undefined;

export function configureLog(opts: { debug?: boolean; file?: string }): void {
  if (opts.debug !== undefined) toStderr = opts.debug;
  if (opts.file !== undefined) logFile = opts.file;
}

export function isDebug(): boolean {
  return toStderr;
}

export function debug(message: string): void {
  const line = `${new Date().toISOString()} ${message}\n`;
  if (toStderr) process.stderr.write(line);
  if (logFile) {
    try {
      appendFileSync(logFile, line, { mode: 0o600 });
    } catch {
      // A log that cannot be written must not fail a backup.
    }
  }
}
