import { paintErr } from './color.js';

/**
 * Data goes to stdout (so `--json` output can be piped); notices, warnings
 * and progress go to stderr. `--quiet` keeps notices back, `--verbose` lets
 * the details through; warnings and errors are always shown.
 */
let level: 'quiet' | 'normal' | 'verbose' = 'normal';

export function setVerbosity(v: { quiet?: boolean; verbose?: boolean }): void {
  level = v.quiet ? 'quiet' : v.verbose ? 'verbose' : 'normal';
}

export function isQuiet(): boolean {
  return level === 'quiet';
}

export function info(message: string): void {
  process.stdout.write(message + '\n');
}

export function notice(message: string): void {
  if (level !== 'quiet') process.stderr.write(paintErr.cyan(message) + '\n');
}

export function detail(message: string): void {
  if (level === 'verbose') process.stderr.write(message + '\n');
}

export function warn(message: string): void {
  process.stderr.write(paintErr.yellow(`warning: ${message}`) + '\n');
}

export function error(message: string): void {
  process.stderr.write(paintErr.red(`sshvault: ${message}`) + '\n');
}
