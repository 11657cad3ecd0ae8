import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ExitCode, SshvaultError } from '../errors.js';
import { configureLog, isDebug } from '../log.js';
import { disableColor } from '../ui/color.js';
import { error, setVerbosity } from '../ui/console.js';
import { sanitize } from '../ui/sanitize.js';
import { useLocalTime } from '../ui/time.js';
import { setUploadLimitFlag } from '../remote/throttle.js';
import { cmdAccept } from './cmd_accept.js';
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
import { cmdStatus } from './cmd_status.js';
import { cmdSchedule } from './cmd_schedule.js';
import { cmdConfig } from './cmd_config.js';
import { wantStaleWarning } from './staleness.js';
import { requireRoot } from './root.js';
import { printManPage } from './man.js';

type Handler = (argv: { [key: string]: unknown }) => Promise<void>;

let exitCode: number = ExitCode.ok;

interface ActionOptions {
  /** Loop devices and mounts: the command cannot do its job as another user. */
  root?: boolean | ((argv: { [key: string]: unknown }) => boolean);
  /** Whether a stale vault earns a warning line before the command's own output. */
  staleWarning?: boolean;
}

/** Every command's handler: runs it and keeps its exit code; errors become one line (a trace only with --debug). */
function action(name: string, fn: (a: never) => Promise<number>, opts: ActionOptions = {}): Handler {
  return async (argv) => {
    configureLog({ debug: !!argv.debug });
    setVerbosity({ quiet: !!argv.quiet, verbose: !!argv.verbose });
    useLocalTime(!!argv.localTime);
    if (argv.color === false) disableColor();
    wantStaleWarning((opts.staleWarning ?? true) && !argv.json && !argv.quiet);
    try {
      setUploadLimitFlag(argv.limitUpload as string | undefined);
      const root = typeof opts.root === 'function' ? opts.root(argv) : opts.root;
      if (root) requireRoot(name);
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
  // Unexpected errors may carry a server's SFTP status text.
  error(`unexpected error: ${sanitize(err?.message ?? String(e))}${isDebug() ? '' : ' (run with --debug for details)'}`);
  if (isDebug() && err?.stack) process.stderr.write(`${err.stack}\n`);
  return ExitCode.unexpected;
}

const vaultArg = (y: Argv) => y.positional('vault', { type: 'string', describe: 'vault name (optional when only one is configured)' });

/** Every command and flag, declared once: the parser, `--help`, completion and the man page all come from here. */
export function buildCli(args: string[]): Argv {
  return yargs(args)
    .scriptName('sshvault')
    .usage('$0 <command> [options]\n\nEncrypted, incremental backups to a host you do not trust.')
    .option('debug', { type: 'boolean', describe: 'log every command run and show stack traces' })
    .option('json', { type: 'boolean', describe: 'machine-readable output' })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'only warnings, errors and the data asked for' })
    .option('verbose', { alias: 'v', type: 'boolean', describe: 'more detail on stderr' })
    .option('color', { type: 'boolean', default: true, describe: 'colours on a terminal (--no-color or NO_COLOR turns them off)' })
    .option('local-time', { type: 'boolean', describe: "print times in this machine's time zone instead of UTC" })
    .option('limit-upload', { type: 'string', describe: "cap this run's upload, e.g. 2mbit (overrides the config's limitUpload)" })
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
          .option('fs', { choices: ['ext4', 'ext2', 'btrfs'] as const, default: 'ext4' as const, describe: 'ext4 without journal, ext2, or btrfs (read-only subvolume snapshots)' })
          .option('preallocate', { type: 'boolean', describe: 'write every byte of the image now (uploads its full size)' })
          .example('$0 init laptop --remote ssh://me@box.example.net/srv/backup --size 200G --source /home/me --passphrase-command "pass show backup"', 'a 200 GiB vault for /home/me'),
      action('init', cmdInit, { root: true, staleWarning: false }),
    )
    .command(
      'push [args..]',
      'back up: a new snapshot of the sources ([<vault>] [PATH ...])',
      (y) =>
        y
          .positional('args', { type: 'string', array: true, default: [] })
          .option('on-success', { type: 'string', describe: "shell command run after a successful push: the summary on stdin, SSHVAULT_* variables (see README)" })
          .option('on-failure', { type: 'string', describe: 'shell command run after a failed push, likewise' })
          .example('$0 push', 'a snapshot of the configured sources of the only vault')
          .example("$0 push laptop --on-failure 'mail -s \"backup failed\" me@example.org'", 'mail the summary when it fails'),
      action('push', cmdPush, { root: true }),
    )
    .command(
      'list [vault]',
      'list snapshots',
      (y) => vaultArg(y).option('refresh', { type: 'boolean', describe: 're-read the catalog from the image' }).example('$0 list --refresh', 'the snapshots as the image has them'),
      action('list', cmdList, { root: (argv) => !!argv.refresh }),
    )
    .command(
      'stats [vault]',
      'bytes up and down of every run, phase by phase',
      (y) =>
        vaultArg(y)
          .option('link', { type: 'string', describe: 'link to estimate times for, e.g. 10mbit or 50/10mbit (down/up)', default: '10mbit' })
          .option('plot', { type: 'string', describe: 'draw bytes up and down per run over time into this SVG file' })
          .example('$0 stats --link 50/10mbit', 'what each run would take on a 50 Mbit down, 10 Mbit up line')
          .example('$0 stats --plot traffic.svg', 'are the backups getting more expensive?'),
      action('stats', cmdStats),
    )
    .command(
      'status [vault]',
      'is each vault keeping up: last success and failure, schedule, free space; exit 9 when stale',
      (y) => vaultArg(y).example('$0 status || echo "backups are stale"', 'for a monitoring check'),
      action('status', cmdStatus, { staleWarning: false }),
    )
    .command(
      'schedule [vault]',
      'back up on a timer (systemd; a crontab line without it)',
      (y) =>
        vaultArg(y)
          .option('every', { type: 'string', describe: 'hourly, daily, or a systemd OnCalendar expression' })
          .option('dry-run', { type: 'boolean', describe: 'print the units, install nothing' })
          .option('remove', { type: 'boolean', describe: "remove the vault's units" })
          .option('list', { type: 'boolean', describe: 'every vault with a schedule, its last and next run' })
          .option('allow-metered', { type: 'boolean', describe: 'also run on a connection NetworkManager reports as metered' })
          .option('allow-battery', { type: 'boolean', describe: 'also run on battery' })
          .option('random-delay', { type: 'number', describe: 'seconds a run may be delayed at random (default by --every)' })
          .option('check-conditions', { type: 'boolean', hidden: true })
          .example('$0 schedule laptop --every hourly', 'hourly, on AC power, not on metered connections')
          .example('$0 schedule laptop --every "*-*-* 02:30" --dry-run', 'print the units of a nightly run'),
      action('schedule', cmdSchedule, { staleWarning: false }),
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
      action('restore', cmdRestore, { root: true }),
    )
    .command(
      'mount <args..>',
      'browse snapshots read-only until umount: [<vault>] [<snapshot>] <mountpoint>',
      (y) =>
        y
          .positional('args', { type: 'string', array: true, describe: 'without a snapshot, all of them appear as directories' })
          .option('foreground', { type: 'boolean', describe: 'stay in the foreground until Ctrl-C instead of in the background' })
          .option('passphrase-stdin', { type: 'boolean', hidden: true })
          .example('$0 mount /mnt/vault', 'every snapshot under /mnt/vault until sshvault umount'),
      action('mount', cmdMount, { root: true }),
    )
    .command('umount [vault]', 'unmount what sshvault mount mounted', (y) => vaultArg(y).example('$0 umount', 'end the mount of the only vault'), action('umount', cmdUmount, { root: true }))
    .command(
      'check [vault]',
      "forced e2fsck of the vault's filesystem; exit 7 on errors",
      (y) =>
        vaultArg(y)
          .option('repair', { type: 'boolean', describe: 'fix errors (e2fsck -fy), keeping a local undo file; takes the write lock' })
          .option('undo-repair', { type: 'boolean', conflicts: ['repair', 'verify-data'], describe: 'roll the last --repair back with its undo file, if nothing wrote to the vault since' })
          .option('verify-data', { type: 'string', describe: 're-read files and compare with the SHA-256 manifest of push: one snapshot, or all when no value is given' })
          .example('$0 check --verify-data latest', 'every file of the newest snapshot against its checksum')
          .example('$0 check --repair', 'fix what check found; prints how to roll the repair back'),
      action('check', cmdCheck, { root: true }),
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
          .option('dry-run', { type: 'boolean', describe: 'say what would be removed, change nothing' })
          .example('$0 prune --keep-daily 7 --keep-weekly 4 --dry-run', 'what a week of dailies and a month of weeklies would keep'),
      action('prune', cmdPrune, { root: true }),
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
          .option('slot', { type: 'number', describe: 'remove: the key slot to wipe (authorise with a passphrase that stays)' })
          .example('$0 key add --new-passphrase-file ~/second-key', 'a second passphrase, e.g. for a safe'),
      action('key', cmdKey, { root: true }),
    )
    .command(
      'config <action> [vault]',
      "the vault's effective configuration, and where its passphrase comes from (never the passphrase)",
      (y) =>
        y
          .positional('action', { choices: ['show'] as const, demandOption: true })
          .positional('vault', { type: 'string', describe: 'vault name (optional when only one is configured)' })
          .example('$0 config show laptop', 'the config with its defaults filled in'),
      action('config', cmdConfig),
    )
    .command(
      'accept-remote [vault]',
      "after a refused rollback, take the remote's snapshots and write counter as they are",
      (y) => vaultArg(y).example('$0 accept-remote laptop', "after looking into why the remote is older than this machine's view"),
      action('accept-remote', cmdAccept, { root: true }),
    )
    .command('recover [vault]', 'tear down what a killed run left behind', (y) => vaultArg(y).example('$0 recover', 'after a crash or kill -9'), action('recover', cmdRecover, { root: true }))
    .command(
      'unlock [vault]',
      'break the remote lock',
      (y) => vaultArg(y).option('force', { type: 'boolean', describe: 'really break it' }).example('$0 unlock --force', 'after making sure the lock holder is dead'),
      action('unlock', cmdUnlock),
    )
    .command('doctor', 'check this machine: root, engine, tools, FUSE', (y) => y.example('$0 doctor', 'what this machine lacks'), action('doctor', cmdDoctor, { staleWarning: false }))
    .completion('completion', 'print a bash/zsh completion script: sshvault completion >> ~/.bashrc')
    .command('man', false, (y) => y, action('man', () => printManPage(buildCli), { staleWarning: false }))
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
}

export async function main(argv: string[]): Promise<number> {
  const cli = buildCli(hideBin(argv));
  try {
    await cli.parseAsync();
  } catch (e) {
    if (!(e instanceof UsageExit)) exitCode = report(e);
  }
  return exitCode;
}

class UsageExit extends Error {}
