import { readFileSync } from 'node:fs';
import { readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stateRoot } from '../config/paths.js';
import { LockHeldError, SshvaultError, UsageError } from '../errors.js';
import { spawnDaemon } from '../exec.js';
import { isDebug } from '../log.js';
import { pidAlive } from '../proc.js';
import { readVaultMeta } from '../snapshot/layout.js';
import { parseSnapshotDir } from '../snapshot/naming.js';
import { readRuns } from '../snapshot/runs.js';
import { info, notice } from '../ui/console.js';
import { formatBytes } from '../ui/format.js';
import { DEFAULT_LINK, renderRunsTable } from '../ui/runs-view.js';
import { withReader } from '../session/open.js';
import { waitUntil } from '../stack/mount/mounts.js';
import { resolveSnapshot } from '../snapshot/resolve.js';
import { exclusive, openContext, passphraseFor, type VaultContext } from './common.js';
import { mountLogFile, readMountRecord, removeMountRecord, writeMountRecord } from './mount-record.js';
import { action } from './action.js';
import { vaultArg, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) =>
  y
    .positional('args', { type: 'string', array: true, demandOption: true, describe: 'without a snapshot, all of them appear as directories' })
    .option('foreground', { type: 'boolean', describe: 'stay in the foreground until Ctrl-C instead of in the background' })
    // How the background process gets the passphrase from the command that started it.
    .option('passphrase-stdin', { type: 'boolean', hidden: true })
    .example('$0 mount /mnt/vault', 'every snapshot under /mnt/vault until sshvault umount');

type MountArgs = ArgsOf<typeof builder>;

export const mountCommand: CommandOf<typeof builder> = {
  command: 'mount <args..>',
  describe: 'browse snapshots read-only until umount: [<vault>] [<snapshot>] <mountpoint>',
  builder,
  handler: action('mount', cmdMount, { root: true }),
};

const umountBuilder = (y: CommandArgv) => vaultArg(y).example('$0 umount', 'end the mount of the only vault');

type UmountArgs = ArgsOf<typeof umountBuilder>;

export const umountCommand: CommandOf<typeof umountBuilder> = {
  command: 'umount [vault]',
  describe: 'unmount what sshvault mount mounted',
  builder: umountBuilder,
  handler: action('umount', cmdUmount, { root: true }),
};

/** How often the background process looks whether someone unmounted its mountpoint by hand. */
const WATCH_MS = 2000;

/** `[<vault>] [<snapshot>] <mountpoint>`: with two words, the first is a snapshot if it reads as one. */
export function splitMountArgs(words: string[]): { vault?: string; snapshot?: string; mountpoint: string } {
  if (words.length === 1) return { mountpoint: words[0]! };
  if (words.length === 2) {
    const [first, mountpoint] = words as [string, string];
    const isSnapshot = first === 'latest' || parseSnapshotDir(first) !== null;
    return isSnapshot ? { snapshot: first, mountpoint } : { vault: first, mountpoint };
  }
  if (words.length === 3) return { vault: words[0], snapshot: words[1], mountpoint: words[2]! };
  throw new UsageError('mount takes [<vault>] [<snapshot>] <mountpoint>');
}

export async function cmdMount(a: MountArgs): Promise<number> {
  const { vault, snapshot, mountpoint } = splitMountArgs(a.args);
  const ctx = await openContext(vault);
  const mp = resolve(mountpoint);
  const st = await stat(mp).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`mountpoint ${mp} is not a directory; create an empty one`);
  if ((await readdir(mp)).length) throw new UsageError(`mountpoint ${mp} is not empty; choose an empty directory`);
  if (mp === stateRoot() || mp.startsWith(`${stateRoot()}/`)) throw new UsageError(`mountpoint ${mp} is inside sshvault's state directory; choose another`);
  const current = await readMountRecord(ctx.paths);
  if (current && pidAlive(current.pid)) {
    throw new LockHeldError(`vault '${ctx.name}' is already mounted at ${current.mountpoint}; run 'sshvault umount ${ctx.name}' first`);
  }
  if (a.foreground) return serveMount(ctx, a, mp, snapshot);
  return startInBackground(ctx, a, mp, snapshot);
}

/**
 * The stack must outlive this command, and the process that owns sshfs and
 * the SSH connection must stay alive: a background `sshvault mount
 * --foreground` owns them, in its own session. The passphrase reaches it on
 * stdin. This process waits until the mount is up (or has failed) and reports.
 */
async function startInBackground(ctx: VaultContext, a: MountArgs, mp: string, snapshot: string | undefined): Promise<number> {
  const passphrase = await passphraseFor(a, ctx.config);
  const log = mountLogFile(ctx.paths);
  await writeFile(log, '', { mode: 0o600 });
  const args = [process.argv[1]!, 'mount', ctx.name, ...(snapshot ? [snapshot] : []), mp, '--foreground', '--passphrase-stdin', ...(isDebug() ? ['--debug'] : [])];
  const daemon = spawnDaemon(process.execPath, args, { input: passphrase, logFile: log });
  const stop = () => {
    if (daemon.pid) process.kill(daemon.pid, 'SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    await waitUntil(async () => !daemon.running() || (await readMountRecord(ctx.paths))?.pid === daemon.pid, 24 * 3600_000, 100);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  if (!daemon.running()) {
    const { exitCode } = await daemon.exited;
    const said = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l.startsWith('sshvault: ')).pop();
    throw new SshvaultError(said ? said.slice('sshvault: '.length) : `the background mount process exited with ${exitCode}; see ${log}`, exitCode ?? 1);
  }
  daemon.detach();
  const record = (await readMountRecord(ctx.paths))!;
  const up = record.phases.reduce((t, p) => t + p.upBytes, 0);
  const down = record.phases.reduce((t, p) => t + p.downBytes, 0);
  if (a.json) {
    info(JSON.stringify({ vault: ctx.name, mountpoint: mp, snapshot: record.snapshot ?? null, pid: record.pid, upBytes: up, downBytes: down, phases: record.phases }, null, 2));
  } else {
    info(`Mounted ${record.snapshot ? `snapshot ${record.snapshot}` : 'all snapshots'} of vault '${ctx.name}' read-only at ${mp} (opening took ${formatBytes(up)} up, ${formatBytes(down)} down).`);
    info(`Reading files downloads what they hold; 'sshvault umount ${ctx.name}' unmounts.`);
  }
  return 0;
}

/**
 * `mount --foreground`: holds the vault open until SIGTERM/SIGINT (what
 * `umount` sends), the link dies, or someone unmounts the mountpoint by hand.
 * The remote lock is a shared one: other readers may come, pushes must wait.
 */
async function serveMount(ctx: VaultContext, a: MountArgs, mp: string, snapshot: string | undefined): Promise<number> {
  return exclusive(ctx, async () => {
    const passphrase = a.passphraseStdin ? await readStdin() : await passphraseFor(a, ctx.config);
    try {
      const run = await withReader(ctx, { command: 'mount', passphrase, untilSignal: true }, async (vault) => {
        vault.phase('mount');
        const layout = vault.layout;
        await readVaultMeta(layout);
        const name = snapshot ? await resolveSnapshot(layout, snapshot) : undefined;
        vault.facts.snapshot = name;
        const bound = await vault.bind(name ? join(layout.snapshots, name) : layout.snapshots, mp);
        await writeMountRecord(ctx.paths, { pid: process.pid, runId: vault.runId, mountpoint: mp, snapshot: name, started: new Date().toISOString(), phases: vault.finishedPhases() });
        notice(`Mounted at ${mp}; waiting for 'sshvault umount ${ctx.name}'.`);
        await new Promise<void>((done) => {
          const watch = setInterval(() => {
            void bound.alive().then((up) => up || finish());
          }, WATCH_MS);
          const finish = () => {
            clearInterval(watch);
            done();
          };
          if (vault.signal.aborted) finish();
          vault.signal.addEventListener('abort', finish, { once: true });
          vault.onLinkLost(finish);
        });
      });
      if (run.error) throw run.error;
      return 0;
    } finally {
      await removeMountRecord(ctx.paths);
    }
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Processes whose working directory, root or an open file lies under `dir`: they would keep it busy. */
async function usersOf(dir: string): Promise<string[]> {
  const inside = (p: string) => p === dir || p.startsWith(`${dir}/`);
  const out: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const links = [`/proc/${pid}/cwd`, `/proc/${pid}/root`];
    links.push(...(await readdir(`/proc/${pid}/fd`).catch(() => [])).map((fd) => `/proc/${pid}/fd/${fd}`));
    for (const l of links) {
      if (inside(await readlink(l).catch(() => ''))) {
        const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
        out.push(`${comm} (pid ${pid})`);
        break;
      }
    }
  }
  return out;
}

/**
 * The mount's background process is still serving: alive, not a zombie (a
 * killed process stays in the table until its new parent reaps it), and not
 * another program that got its pid since.
 */
function serving(pid: number, mountpoint: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z' && argv.includes('--foreground') && argv.includes(mountpoint);
  } catch {
    return false;
  }
}

export async function cmdUmount(a: UmountArgs): Promise<number> {
  const ctx = await openContext(a.vault);
  const record = await readMountRecord(ctx.paths);
  if (!record) {
    info(`Vault '${ctx.name}' is not mounted.`);
    return 0;
  }
  if (serving(record.pid, record.mountpoint)) {
    const users = await usersOf(record.mountpoint);
    if (users.length) {
      throw new UsageError(`${record.mountpoint} is in use by ${users.join(', ')}; leave it (cd elsewhere, close files) and run 'sshvault umount ${ctx.name}' again`);
    }
    process.kill(record.pid, 'SIGTERM');
  }
  if (!(await waitUntil(() => !serving(record.pid, record.mountpoint), 300_000, 100))) {
    throw new SshvaultError(`the mount process (pid ${record.pid}) is still closing the vault after 5 minutes; wait, then run 'sshvault recover ${ctx.name}'`, 1);
  }
  const run = (await readRuns(ctx.paths.runsFile)).find((r) => r.id === record.runId);
  if (!run) {
    // Killed before it could tear down. Its run lock is free once init has reaped it; then what it
    // left is torn down as at the start of every command.
    await waitUntil(() => !pidAlive(record.pid), 30_000, 100);
    await exclusive(ctx, async () => {});
    info(`The mount of vault '${ctx.name}' at ${record.mountpoint} had died; cleaned up what it left.`);
    return 0;
  }
  if (!run.ok) throw new SshvaultError(`the mount ended with an error: ${run.error ?? 'unknown'}`, run.exitCode);
  if (a.json) info(JSON.stringify({ vault: ctx.name, mountpoint: record.mountpoint, run }, null, 2));
  else {
    info(`Unmounted vault '${ctx.name}' from ${record.mountpoint}.`);
    info(renderRunsTable([run], DEFAULT_LINK));
  }
  return 0;
}
