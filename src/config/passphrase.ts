import { readFile } from 'node:fs/promises';
import { openSync, closeSync, readSync, writeSync } from 'node:fs';
import { CommandError, UsageError } from '../errors.js';
import { run, setTtyEcho } from '../exec.js';

export interface PassphraseSource {
  file?: string;
  command?: string;
}

/** One trailing newline is not part of a passphrase: a person typing it at `cryptsetup open` has none. */
function chompOnce(text: string): string {
  return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
}

function checked(secret: string, where: string): string {
  if (secret === '') throw new UsageError(`the passphrase from ${where} is empty`);
  // qemu's LUKS driver (the userspace engine) only accepts UTF-8 secrets.
  if (secret.includes('\uFFFD')) throw new UsageError(`the passphrase from ${where} is not valid UTF-8`);
  return secret;
}

function promptTty(question: string): string {
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r+');
  } catch {
    throw new UsageError('no passphrase source: give --passphrase-file, --passphrase-command or SSHVAULT_PASSPHRASE, or run from a terminal');
  }
  try {
    writeSync(fd, question);
    const echo = setTtyEcho;
    echo(false);
    const buf = Buffer.alloc(1);
    const bytes: number[] = [];
    for (;;) {
      const n = readSync(fd, buf, 0, 1, null);
      if (n === 0 || buf[0] === 0x0a || buf[0] === 0x0d) break;
      bytes.push(buf[0]);
    }
    echo(true);
    writeSync(fd, '\n');
    return Buffer.from(bytes).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Where a run's passphrase comes from, most explicit first: a flag for this
 * run, SSHVAULT_PASSPHRASE, the vault's config, a terminal prompt.
 */
export async function readPassphrase(
  flags: PassphraseSource,
  configured: PassphraseSource,
  opts: { confirm?: boolean } = {},
): Promise<string> {
  if (flags.file) return fromFile(flags.file);
  if (flags.command) return fromCommand(flags.command);
  const env = process.env.SSHVAULT_PASSPHRASE;
  if (env !== undefined) return checked(env, 'SSHVAULT_PASSPHRASE');
  if (configured.file) return fromFile(configured.file);
  if (configured.command) return fromCommand(configured.command);
  const first = checked(promptTty('Vault passphrase: '), 'the terminal');
  if (opts.confirm && promptTty('Repeat passphrase: ') !== first) throw new UsageError('the two passphrases differ; try again');
  return first;
}

/** A new secret (`key add`, `key change`): from its own flag or a prompt, never from where the current one comes from. */
export async function readNewPassphrase(flags: PassphraseSource): Promise<string> {
  if (flags.file) return fromFile(flags.file);
  if (flags.command) return fromCommand(flags.command);
  let typed: string;
  try {
    typed = promptTty('New passphrase: ');
  } catch {
    throw new UsageError('no source for the new passphrase: give --new-passphrase-file or --new-passphrase-command, or run from a terminal');
  }
  const first = checked(typed, 'the terminal');
  if (promptTty('Repeat the new passphrase: ') !== first) throw new UsageError('the two passphrases differ; try again');
  return first;
}

async function fromFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read passphrase file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return checked(chompOnce(text), file);
}

async function fromCommand(command: string): Promise<string> {
  try {
    const { stdout } = await run('sh', ['-c', command]);
    return checked(stdout, `the passphrase command`);
  } catch (e) {
    if (e instanceof CommandError) throw new UsageError(`the passphrase command failed: ${e.message}`);
    throw e;
  }
}

/** Where readPassphrase would take the secret from, in the same order, without reading it: for `config show`. */
export function describePassphraseSource(flags: PassphraseSource, configured: PassphraseSource): string {
  if (flags.file) return `file ${flags.file} (--passphrase-file)`;
  if (flags.command) return `command ${JSON.stringify(flags.command)} (--passphrase-command)`;
  if (process.env.SSHVAULT_PASSPHRASE !== undefined) return 'environment variable SSHVAULT_PASSPHRASE';
  if (configured.file) return `file ${configured.file} (config: passphraseFile)`;
  if (configured.command) return `command ${JSON.stringify(configured.command)} (config: passphraseCommand)`;
  return 'a prompt on the terminal';
}
