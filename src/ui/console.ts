import chalk from 'chalk';

/**
 * Data goes to stdout (so `--json` output can be piped); notices, warnings
 * and progress go to stderr.
 */
export function info(message: string): void {
  process.stdout.write(message + '\n');
}

export function notice(message: string): void {
  process.stderr.write(chalk.cyan(message) + '\n');
}

export function warn(message: string): void {
  process.stderr.write(chalk.yellow(`warning: ${message}`) + '\n');
}

export function error(message: string): void {
  process.stderr.write(chalk.red(`sshvault: ${message}`) + '\n');
}
