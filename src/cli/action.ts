import { ExitCode, SshvaultError } from '../errors.js';
import { configureLog, isDebug } from '../log.js';
import { disableColor } from '../ui/color.js';
import { error, setVerbosity } from '../ui/console.js';
import { sanitize } from '../ui/sanitize.js';
import { useLocalTime } from '../ui/time.js';
import { setUploadLimitFlag } from '../remote/throttle.js';
import type { GlobalArgs } from './options.js';
import { wantStaleWarning } from './staleness.js';
import { requireRoot } from './root.js';

let exitCode: number = ExitCode.ok;

/** The exit code of the command that ran, or of the usage error that stopped it. */
export function setExitCode(code: number): void {
  exitCode = code;
}

export function lastExitCode(): number {
  return exitCode;
}

export interface ActionOptions<A> {
  /** Loop devices and mounts: the command cannot do its job as another user. */
  root?: boolean | ((argv: A) => boolean);
  /** Whether a stale vault earns a warning line before the command's own output. */
  staleWarning?: boolean;
}

/** Every command's handler: runs it and keeps its exit code; errors become one line (a trace only with --debug). */
export function action<A extends GlobalArgs>(name: string, fn: (a: A) => Promise<number>, opts: ActionOptions<A> = {}): (argv: A) => Promise<void> {
  return async (argv) => {
    configureLog({ debug: !!argv.debug });
    setVerbosity({ quiet: !!argv.quiet, verbose: !!argv.verbose });
    useLocalTime(!!argv.localTime);
    if (argv.color === false) disableColor();
    wantStaleWarning((opts.staleWarning ?? true) && !argv.json && !argv.quiet);
    try {
      setUploadLimitFlag(argv.limitUpload);
      const root = typeof opts.root === 'function' ? opts.root(argv) : opts.root;
      if (root) requireRoot(name);
      exitCode = await fn(argv);
    } catch (e) {
      exitCode = report(e);
    }
  };
}

export function report(e: unknown): number {
  if (e instanceof SshvaultError) {
    error(e.message);
    if (isDebug() && e.stack) process.stderr.write(`${e.stack}\n`);
    return e.exitCode;
  }
  const err = e as Error;
  // Unexpected errors may carry a server's SFTP status text.
  error(`unexpected error: ${sanitize(err?.message ?? String(e))}${isDebug() ? '' : ' (run with --debug for details)'}`);
  if (isDebug() && err?.stack) process.stderr.write(`${err.stack}\n`);
  return ExitCode.unexpected;
}
