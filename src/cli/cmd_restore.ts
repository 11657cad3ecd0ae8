import { lstat, mkdir, readdir } from 'node:fs/promises';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { vaultPaths } from '../config/paths.js';
import { checkVaultDirs } from '../config/private-dirs.js';
import { checkVaultName, type VaultConfig } from '../config/vault-config.js';
import { ExitCode, SshvaultError, UsageError } from '../errors.js';
import { lastLine } from '../exec.js';
import { configureLog } from '../log.js';
import { parseRemote } from '../remote/url.js';
import { restoreArgs, runRsync, type RsyncRun } from '../snapshot/rsync.js';
import { readVaultMeta } from '../snapshot/layout.js';
import { resolveSnapshot } from '../snapshot/resolve.js';
import { parseRsyncStats, type RsyncStats } from '../snapshot/rsync-stats.js';
import { info, warn } from '../ui/console.js';
import { formatBytes, formatRatio } from '../ui/format.js';
import { SyncProgressBar } from '../ui/progress.js';
import { DEFAULT_LINK, renderRunsTable } from '../ui/runs-view.js';
import { withReader } from '../session/open.js';
import { IMAGE_FILE } from '../remote/layout.js';
import { exclusive, openContext, passphraseFor, type VaultContext } from './common.js';
import { entryInSnapshot } from './restore-path.js';
import { action } from './action.js';
import { sshOptions, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';
import { DETECT_FS } from '../stack/filesystems/index.js';

const builder = (y: CommandArgv) =>
  sshOptions(
    y
      .positional('args', { type: 'string', array: true, demandOption: true, describe: 'snapshot is latest or a name from list; path is the absolute source path' })
      .option('force', { type: 'boolean', describe: 'restore into a non-empty directory, overwriting files of the same name' })
      .option('remote', { type: 'string', describe: 'without local config (the machine is gone): where the vault is, as given to init' }),
    'with --remote: ',
  )
    .example('$0 restore latest:/home/me/docs ~/docs.restored', 'one directory from the newest snapshot')
    .example('$0 restore --remote me@host:backup --identity key 2026-11-22T030000Z /mnt/new', 'a whole snapshot, on a machine without sshvault state');

type RestoreArgs = ArgsOf<typeof builder>;

export const restoreCommand: CommandOf<typeof builder> = {
  command: 'restore <args..>',
  describe: 'copy a snapshot, or a path in it, back: [<vault>] <snapshot>[:<path>] <dest>',
  builder,
  handler: action('restore', cmdRestore, { root: true }),
};

/** `<snapshot>[:<path>]`: snapshot names hold no colon, so the first one splits. */
export function parseRestoreSpec(spec: string): { snapshot: string; path: string } {
  const colon = spec.indexOf(':');
  const snapshot = colon < 0 ? spec : spec.slice(0, colon);
  const path = colon < 0 ? '/' : spec.slice(colon + 1);
  if (!snapshot) throw new UsageError(`'${spec}' names no snapshot: write latest, a name from 'sshvault list', or either followed by :/path`);
  // Resolved lexically, '..' would mean something else than in the snapshot once a symlink is on the way.
  if (path.split('/').includes('..')) throw new UsageError(`${path} contains '..'; name the path inside the snapshot without it`);
  // Paths in a snapshot are the absolute source paths (push uses rsync --relative).
  return { snapshot, path: posix.resolve('/', path || '/') };
}

/**
 * The config of a vault this machine does not know (the laptop that is gone):
 * everything comes from flags and is not saved. The name only places the
 * run's private directory in the state directory.
 */
function adHocContext(vault: string | undefined, a: RestoreArgs): VaultContext {
  const name = checkVaultName(vault ?? 'restore');
  try {
    parseRemote(a.remote!);
  } catch (e) {
    throw new UsageError(`--remote ${a.remote}: ${(e as Error).message}`);
  }
  const config: VaultConfig = {
    name,
    vaultId: 'unknown (restore from flags)',
    remote: a.remote!,
    image: IMAGE_FILE,
    size: 0,
    fs: DETECT_FS,
    engine: 'auto',
    sources: [],
    excludes: [],
    // Nothing of an ad-hoc vault stays on this machine, and no later run could use a cache of it.
    cacheBytes: 0,
    ...(a.identity ? { identity: resolve(a.identity) } : {}),
    ...(a.knownHosts ? { knownHosts: resolve(a.knownHosts) } : {}),
  };
  const paths = vaultPaths(name);
  return { name, config, paths };
}

async function contextFor(vault: string | undefined, a: RestoreArgs): Promise<VaultContext> {
  if (!a.remote) return openContext(vault);
  const ctx = adHocContext(vault, a);
  await checkVaultDirs(ctx.paths);
  configureLog({ file: ctx.paths.logFile });
  return ctx;
}

async function kindOf(path: string): Promise<'missing' | 'dir' | 'other'> {
  try {
    return (await lstat(path)).isDirectory() ? 'dir' : 'other';
  } catch {
    return 'missing';
  }
}

async function isEmptyDir(path: string): Promise<boolean> {
  return (await readdir(path)).length === 0;
}

/**
 * Where the copy lands, refusing to overwrite without --force: a directory
 * becomes `dest` itself (which must be absent or empty); a file goes into
 * `dest` when that is a directory, else becomes `dest`.
 */
async function restoreTarget(sourceIsDir: boolean, from: string, dest: string, force: boolean): Promise<{ rsyncFrom: string; rsyncTo: string }> {
  const destKind = await kindOf(dest);
  if (sourceIsDir) {
    if (destKind === 'other') throw new UsageError(`${dest} exists and is not a directory; choose another destination`);
    if (destKind === 'dir' && !force && !(await isEmptyDir(dest))) {
      throw new UsageError(`${dest} is not empty; restore into an empty or new directory, or add --force to overwrite files there`);
    }
    return { rsyncFrom: `${from}/`, rsyncTo: `${dest}/` };
  }
  const target = destKind === 'dir' ? join(dest, basename(from)) : dest;
  if (!force && (await kindOf(target)) !== 'missing') throw new UsageError(`${target} exists; add --force to overwrite it`);
  if (destKind === 'missing' && (await kindOf(dirname(dest))) !== 'dir') throw new UsageError(`${dirname(dest)} does not exist; create it first`);
  return { rsyncFrom: from, rsyncTo: destKind === 'dir' ? `${dest}/` : dest };
}

export async function cmdRestore(a: RestoreArgs): Promise<number> {
  if (a.args.length < 2 || a.args.length > 3) throw new UsageError('restore takes [<vault>] <snapshot>[:<path>] <dest>');
  const [vault, spec, destArg] = a.args.length === 3 ? a.args : [undefined, ...a.args];
  const { snapshot, path } = parseRestoreSpec(spec!);
  const dest = resolve(destArg!);
  // Refused before any traffic when no kind of source could be restored there.
  const destKind = await kindOf(dest);
  if (!a.force && destKind === 'other') throw new UsageError(`${dest} exists; add --force to overwrite it`);
  if (!a.force && path === '/' && destKind === 'dir' && !(await isEmptyDir(dest))) {
    throw new UsageError(`${dest} is not empty; restore into an empty or new directory, or add --force to overwrite files there`);
  }
  const ctx = await contextFor(vault, a);
  return exclusive(ctx, async () => {
    const passphrase = await passphraseFor(a, ctx.config);
    let stats: RsyncStats | undefined;
    const run = await withReader(
      ctx,
      { command: 'restore', passphrase, fromFlags: !!a.remote, acceptNewHostKey: a.acceptNewHostKey },
      async (vault) => {
        vault.phase('restore');
        const layout = vault.layout;
        await readVaultMeta(layout);
        const name = await resolveSnapshot(layout, snapshot);
        vault.facts.snapshot = name;
        const from = join(layout.snapshots, name, path);
        const kind = await entryInSnapshot(join(layout.snapshots, name), path);
        if (kind === 'missing') throw new UsageError(`${path} is not in snapshot ${name}; 'sshvault mount' lets you look around`);
        const { rsyncFrom, rsyncTo } = await restoreTarget(kind === 'dir', from.replace(/\/+$/, ''), dest, !!a.force);
        await mkdir(kind === 'dir' ? dest : dirname(dest), { recursive: true });
        stats = await restoreRsync(rsyncFrom, rsyncTo, vault.signal, !a.json);
        vault.facts.changedBytes = stats.transferredFileSize;
      },
    );
    if (run.error) throw run.error;
    const s = stats!;
    const r = run.record;
    if (a.json) {
      info(JSON.stringify({ snapshot: r.snapshot, path, dest, files: s.regularFiles, bytes: s.totalFileSize, run: r }, null, 2));
    } else {
      info(`Restored ${path === '/' ? 'the whole snapshot' : path} from snapshot ${r.snapshot} to ${dest}: ${s.regularFiles} files, ${formatBytes(s.totalFileSize)}.`);
      info(renderRunsTable([r], DEFAULT_LINK));
      const ratio = s.totalFileSize > 0 ? ` (${formatRatio(r.downBytes / s.totalFileSize)} of the data restored)` : '';
      info(`Downloaded ${formatBytes(r.downBytes)}${ratio}, uploaded ${formatBytes(r.upBytes)}.`);
    }
    return 0;
  });
}

/** Copies out of the snapshot with the one rsync runner; a partial copy names what it missed. */
async function restoreRsync(from: string, to: string, signal: AbortSignal, showProgress: boolean): Promise<RsyncStats> {
  const bar = new SyncProgressBar(showProgress);
  let done: RsyncRun;
  try {
    done = await runRsync(restoreArgs(from, to), signal, (p) => bar.update(p));
  } finally {
    bar.stop();
  }
  const { exitCode, stdout, stderr } = done;
  if (exitCode === 0) return parseRsyncStats(stdout);
  const problems = stderr.split('\n').filter((l) => l.startsWith('rsync:'));
  for (const p of problems.slice(0, 20)) warn(p);
  if (problems.length > 20) warn(`... and ${problems.length - 20} more`);
  // 23 and 24: the rest was restored, but not everything.
  const what = exitCode === 23 || exitCode === 24 ? 'could not restore everything (see the warnings above)' : `failed (exit ${exitCode}): ${lastLine(stderr)}`;
  throw new SshvaultError(`rsync ${what}; check that ${to} is writable and has room`, ExitCode.unexpected);
}
