import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ExitCode, SshvaultError } from '../errors.js';
import { configureLog, isDebug } from '../log.js';
import { error } from '../ui/console.js';
import { cmdDoctor } from './cmd_doctor.js';
import { cmdCheck } from './cmd_check.js';
import { cmdInit } from './cmd_init.js';
import { cmdKey } from './cmd_key.js';
import { cmdList } from './cmd_list.js';
import { cmdMount, cmdUmount } from './cmd_mount.js';
import { cmdPrune } from './cmd_prune.js';
import { cmdPush } from './cmd_push.js';
import { cmdRecover } from './cmd_recover.js';
import { cmdRestore } from './cmd_restore.js';
import { cmdStats } from './cmd_stats.js';
import { cmdUnlock } from './cmd_unlock.js';

type Handler = (argv: { [key: string]: unknown }) => Promise<void>;

let exitCode: number = ExitCode.ok;

/** Every command's handler: runs it and keeps its exit code; errors become one line (a trace only with --debug). */
function action(fn: (a: never) => Promise<number>): Handler {
  return async (argv) => {
    configureLog({ debug: !!argv.debug });
    try {
      exitCode = await fn(argv as never);
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
  error(`unexpected error: ${err?.message ?? String(e)}${isDebug() ? '' : ' (run with --debug for details)'}`);
  if (isDebug() && err?.stack) process.stderr.write(`${err.stack}\n`);
  return ExitCode.unexpected;
}

const vaultArg = (y: Argv) => y.positional('vault', { type: 'string', describe: 'vault name (optional when only one is configured)' });

export async function main(argv: string[]): Promise<number> {
  const cli = yargs(hideBin(argv))
    .scriptName('sshvault')
    .usage('$0 <command> [options]\n\nEncrypted, incremental backups to a host you do not trust.')
    .option('debug', { type: 'boolean', describe: 'log every command run and show stack traces' })
    .option('json', { type: 'boolean', describe: 'machine-readable output' })
    .option('passphrase-file', { type: 'string', describe: 'read the passphrase from this file (one trailing newline is dropped)' })
    .option('passphrase-command', { type: 'string', describe: 'run this shell command and use its output as the passphrase' })
    .option('trust-remote-header', { type: 'boolean', describe: 'with no local LUKS header backup: let a writing run use the remote header, and save it as the backup' })
    .command(
      'init <vault>',
      'create a vault: a LUKS image on the remote with a filesystem inside',
      (y) =>
        y
          .positional('vault', { type: 'string', demandOption: true })
          .option('remote', { type: 'string', demandOption: true, describe: 'ssh://[user@]host[:port]/abs/dir or [user@]host:dir' })
          .option('size', { type: 'string', demandOption: true, describe: 'image size, e.g. 20G' })
          .option('identity', { type: 'string', describe: 'SSH private key file' })
          .option('known-hosts', { type: 'string', describe: 'known_hosts file to check the host key against' })
          .option('accept-new-host-key', { type: 'boolean', describe: 'trust and record an unknown host key' })
          .option('source', { type: 'string', array: true, describe: 'path to back up (repeatable)' })
          .option('exclude', { type: 'string', array: true, describe: 'rsync exclude pattern (repeatable)' })
          .option('engine', { choices: ['auto', 'kernel', 'userspace'] as const, default: 'auto' as const })
          .option('fs', { choices: ['ext4', 'ext2'] as const, default: 'ext4' as const, describe: 'ext4 without journal, or ext2' })
          .option('preallocate', { type: 'boolean', describe: 'write every byte of the image now (uploads its full size)' }),
      action(cmdInit),
    )
    .command('push [args..]', 'back up: a new snapshot of the sources ([<vault>] [PATH ...])', (y) => y.positional('args', { type: 'string', array: true, default: [] }), action(cmdPush))
    .command(
      'list [vault]',
      'list snapshots',
      (y) => vaultArg(y).option('refresh', { type: 'boolean', describe: 're-read the catalog from the image' }),
      action(cmdList),
    )
    .command(
      'stats [vault]',
      'bytes up and down of every run, phase by phase',
      (y) => vaultArg(y).option('link', { type: 'string', describe: 'link to estimate times for, e.g. 10mbit or 50/10mbit (down/up)', default: '10mbit' }),
      action(cmdStats),
    )
    .command(
      'restore <args..>',
      'copy a snapshot, or a path in it, back: [<vault>] <snapshot>[:<path>] <dest>',
      (y) =>
        y
          .positional('args', { type: 'string', array: true, describe: 'snapshot is latest or a name from list; path is the absolute source path' })
          .option('force', { type: 'boolean', describe: 'restore into a non-empty directory, overwriting files of the same name' })
          .option('remote', { type: 'string', describe: 'without local config (the machine is gone): where the vault is, as given to init' })
          .option('identity', { type: 'string', describe: 'with --remote: SSH private key file' })
          .option('known-hosts', { type: 'string', describe: 'with --remote: known_hosts file to check the host key against' })
          .option('accept-new-host-key', { type: 'boolean', describe: 'with --remote: trust and record an unknown host key' })
          .example('$0 restore latest:/home/me/docs ~/docs.restored', 'one directory from the newest snapshot')
          .example('$0 restore --remote me@host:backup --identity key 2026-11-22T030000Z /mnt/new', 'a whole snapshot, on a machine without sshvault state'),
      action(cmdRestore),
    )
    .command(
      'mount <args..>',
      'browse snapshots read-only until umount: [<vault>] [<snapshot>] <mountpoint>',
      (y) =>
        y
          .positional('args', { type: 'string', array: true, describe: 'without a snapshot, all of them appear as directories' })
          .option('foreground', { type: 'boolean', describe: 'stay in the foreground until Ctrl-C instead of in the background' })
          .option('passphrase-stdin', { type: 'boolean', hidden: true }),
      action(cmdMount),
    )
    .command('umount [vault]', 'unmount what sshvault mount mounted', vaultArg, action(cmdUmount))
    .command(
      'check [vault]',
      "forced e2fsck of the vault's filesystem; exit 7 on errors",
      (y) =>
        vaultArg(y)
          .option('repair', { type: 'boolean', describe: 'fix errors (e2fsck -fy); takes the write lock' })
          .option('verify-data', { type: 'string', describe: 're-read files and compare with the SHA-256 manifest of push: one snapshot, or all when no value is given' }),
      action(cmdCheck),
    )
    .command(
      'prune [vault]',
      'remove snapshots the retention policy does not keep (restic-style rules)',
      (y) =>
        vaultArg(y)
          .option('keep-last', { type: 'number', describe: 'keep the N newest snapshots' })
          .option('keep-hourly', { type: 'number', describe: 'keep the newest snapshot of each of the last N hours that have one' })
          .option('keep-daily', { type: 'number', describe: 'the same per day' })
          .option('keep-weekly', { type: 'number', describe: 'the same per ISO week' })
          .option('keep-monthly', { type: 'number', describe: 'the same per month' })
          .option('keep-yearly', { type: 'number', describe: 'the same per year' })
          .option('dry-run', { type: 'boolean', describe: 'say what would be removed, change nothing' }),
      action(cmdPrune),
    )
    .command(
      'key <action> [vault]',
      'LUKS passphrases: add, change, remove (never the last) and back up the header',
      (y) =>
        y
          .positional('action', { choices: ['add', 'change', 'remove', 'backup-header'] as const, demandOption: true })
          .positional('vault', { type: 'string', describe: 'vault name (optional when only one is configured)' })
          .option('new-passphrase-file', { type: 'string', describe: 'add/change: read the new passphrase from this file' })
          .option('new-passphrase-command', { type: 'string', describe: 'add/change: run this command for the new passphrase' })
          .option('slot', { type: 'number', describe: 'remove: the key slot to wipe (authorise with a passphrase that stays)' }),
      action(cmdKey),
    )
    .command('recover [vault]', 'tear down what a killed run left behind', vaultArg, action(cmdRecover))
    .command(
      'unlock [vault]',
      'break the remote lock',
      (y) => vaultArg(y).option('force', { type: 'boolean', describe: 'really break it' }),
      action(cmdUnlock),
    )
    .command('doctor', 'check this machine: engine, tools, FUSE', (y) => y, action(cmdDoctor))
    .demandCommand(1, 'name a command')
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`sshvault: ${msg}\nRun 'sshvault --help' for usage.\n`);
      exitCode = ExitCode.usage;
      throw new UsageExit();
    })
    .exitProcess(false);
  try {
    await cli.parseAsync();
  } catch (e) {
    if (!(e instanceof UsageExit)) exitCode = report(e);
  }
  return exitCode;
}

class UsageExit extends Error {}
