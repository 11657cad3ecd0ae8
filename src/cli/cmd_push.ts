import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { cacheRoot, stateRoot } from '../config/paths.js';
import { listVaults } from '../config/vault-config.js';
import { ExitCode, UsageError, VaultFullError } from '../errors.js';
import { debug } from '../log.js';
import { emptyCatalog, readCatalog, reconcile, upsert, writeCatalog } from '../snapshot/catalog.js';
import { readVaultMeta, snapshotDirs, type ImageLayout } from '../snapshot/layout.js';
import { writeManifest } from '../snapshot/manifest.js';
import { nextSnapshotName, parseSnapshotDir, snapshotName, type SnapshotRef } from '../snapshot/naming.js';
import { futureDated, latestComplete, nextSeq } from '../snapshot/order.js';
import { remainingBytes, RsyncFailure, syncSnapshot, type SyncOptions, type SyncResult } from '../snapshot/rsync.js';
import { warningPaths } from '../snapshot/rsync-warnings.js';
import type { RunRecord } from '../snapshot/runs.js';
import { info, isQuiet, notice, warn } from '../ui/console.js';
import { formatBytes } from '../ui/format.js';
import { SyncProgressBar } from '../ui/progress.js';
import { withWriter, type VaultWriter } from '../session/open.js';
import { exclusive, openContext, passphraseFor, type VaultContext } from './common.js';
import { withHooks } from './hooks.js';
import { renderRunSummary } from '../ui/runs-view.js';
import { finishLeftoverDeletions } from '../snapshot/deleting.js';
import { action } from './action.js';
import { type ArgsOf, type CommandArgv, type CommandOf } from './options.js';
import { filesystemFor } from '../stack/filesystems/index.js';

const builder = (y: CommandArgv) =>
  y
    .positional('args', { type: 'string', array: true, default: [] })
    .option('on-success', { type: 'string', describe: "shell command run after a successful push: the summary on stdin, SSHVAULT_* variables (see README)" })
    .option('on-failure', { type: 'string', describe: 'shell command run after a failed push, likewise' })
    .example('$0 push', 'a snapshot of the configured sources of the only vault')
    .example("$0 push laptop --on-failure 'mail -s \"backup failed\" me@example.org'", 'mail the summary when it fails');

type PushArgs = ArgsOf<typeof builder>;

export const pushCommand: CommandOf<typeof builder> = {
  command: 'push [args..]',
  describe: 'back up: a new snapshot of the sources ([<vault>] [PATH ...])',
  builder,
  handler: action('push', cmdPush, { root: true }),
};

/** `push [<vault>] [PATH ...]`: the first word is the vault if such a vault exists, else a path. */
async function splitArgs(words: string[]): Promise<{ vault?: string; paths: string[] }> {
  if (words.length && (await listVaults()).includes(words[0])) return { vault: words[0], paths: words.slice(1) };
  return { paths: words };
}

export async function cmdPush(a: PushArgs): Promise<number> {
  const { vault, paths: given } = await splitArgs(a.args);
  const ctx = await openContext(vault);
  const hooks = { onSuccess: a.onSuccess ?? ctx.config.onSuccess, onFailure: a.onFailure ?? ctx.config.onFailure };
  return withHooks(ctx.name, hooks, (report) => push(a, ctx, given, report));
}

async function push(a: PushArgs, ctx: VaultContext, given: string[], report: (record: RunRecord, summary: string) => void): Promise<number> {
  const sources = (given.length ? given : ctx.config.sources).map((p) => resolve(p));
  if (!sources.length) throw new UsageError(`vault '${ctx.name}' has no sources; give paths to push or add --source at init`);
  for (const s of sources) if (!existsSync(s)) throw new UsageError(`source path ${s} does not exist`);

  return exclusive(ctx, async () => {
    const passphrase = await passphraseFor(a, ctx.config);
    const run = await withWriter(ctx, { command: 'push', passphrase, trustRemoteHeader: a.trustRemoteHeader }, (vault) => {
      vault.phase('sync');
      return pushSnapshot(vault, ctx, sources, !a.json && !isQuiet());
    });
    if (run.error && run.value) {
      // pushSnapshot returns only once the rename and the records are flushed to the remote: only closing failed.
      await writeCatalog(ctx.paths.catalogFile, run.value);
      report(run.record, renderRunSummary(run.record, run.value));
      warn(`snapshot ${run.record.snapshot} is complete on the remote; the run failed only while closing`);
      throw run.error;
    }
    if (run.error) {
      report(run.record, renderRunSummary(run.record));
      if (run.record.snapshot) warn(`snapshot ${run.record.snapshot} stays partial; the next push resumes it`);
      throw run.error;
    }
    const catalog = run.value!;
    await writeCatalog(ctx.paths.catalogFile, catalog);
    const summary = renderRunSummary(run.record, catalog);
    report(run.record, summary);
    if (a.json) info(JSON.stringify(run.record, null, 2));
    else info(summary);
    const made = catalog.snapshots.find((s) => s.name === run.record.snapshot);
    if (made?.warnings) {
      warn(
        `snapshot ${made.name} is complete with warnings: ${made.warnings} file(s) could not be read or vanished (listed above and in 'sshvault list --json'); fix or exclude them`,
      );
      return ExitCode.warnings;
    }
    return 0;
  });
}

async function pushSnapshot(vault: VaultWriter, ctx: VaultContext, sources: string[], showProgress: boolean) {
  const { layout, facts } = vault;
  const meta = await readVaultMeta(layout);
  if (meta.vaultId !== ctx.config.vaultId) {
    throw new UsageError(`the remote image belongs to vault ${meta.vaultId}, not to '${ctx.config.name}' (${ctx.config.vaultId}); refusing to write`);
  }
  const fs = filesystemFor(ctx.config.fs);
  await finishLeftoverDeletions(layout, () => vault.assertAlive(), notice, (dir) => fs.removeSnapshot(dir));
  const dirs = await snapshotDirs(layout);
  const refs = dirs.map(parseSnapshotDir).filter((r): r is SnapshotRef => r !== null);
  const known = await readCatalog(layout.catalog);
  const previous = latestComplete(refs, known);
  const now = new Date();
  const name = nextSnapshotName(now, dirs);
  const ahead = futureDated(refs, now);
  if (ahead) {
    warn(
      `snapshot ${ahead.name} is dated more than a day after this machine's clock (${snapshotName(now)}): a clock was or is wrong. Snapshots are ordered by push, not by name: the newest is ${previous?.name ?? 'none yet'}, and this push (${name}) becomes the latest`,
    );
  }
  const cutOff = vault.foundUnclean;
  facts.snapshot = name;
  await vault.assertAlive();
  const resumed = refs.filter((r) => r.partial).pop();
  // The new name says when the data was really taken; what the interrupted run copied is reused, never changed
  // where complete snapshots share it, or copied again where a cut may have left it wrong (docs/design.md, "Snapshots").
  const made = await fs.newSnapshot({ snapshotsDir: layout.snapshots, name, refs, previous, cutOff });
  if (resumed && made.resumes) notice(`Resuming the interrupted snapshot ${resumed.name} as ${name}.`);
  else if (resumed) notice(`The interrupted snapshot ${resumed.name} may hold files a cut left half-written; copying its files again as ${name}.`);
  const target = made.partial;
  const bar = new SyncProgressBar(showProgress);
  const sync: SyncOptions = {
    sources,
    dest: target,
    snapshotArgs: made.rsyncArgs,
    excludes: ctx.config.excludes,
    // sshvault's own mounts live in its state directory: backing up / or ~ must not recurse into the vault,
    // nor upload the block cache, a copy of the vault's own ciphertext, with every push.
    alwaysExclude: [`${stateRoot()}/`, `${cacheRoot()}/`],
    signal: vault.signal,
    onProgress: (p) => bar.update(p),
  };
  let result: SyncResult;
  try {
    result = await syncSnapshot(sync);
  } catch (e) {
    bar.stop();
    throw await explainSyncFailure(e, vault, layout, sync);
  }
  bar.stop();
  for (const w of result.warnings.slice(0, 20)) warn(w);
  if (result.warnings.length > 20) warn(`... and ${result.warnings.length - 20} more`);
  const exitCode = result.warnings.length ? ExitCode.warnings : ExitCode.ok;
  if (exitCode) facts.exitCode = exitCode;
  facts.changedBytes = result.stats.transferredFileSize;
  facts.rsync = result.stats;
  debug(`push: rsync finished into ${name}.partial`);
  if (fs.keepsManifests) {
    await writeManifest({ layout, name, dir: target, previous: previous && { name: previous.name, dir: join(layout.snapshots, previous.name) }, cacheDir: ctx.paths.state });
    debug('push: manifest written');
  }
  // Writes are acknowledged once sent and ext4 without a journal does not order them: only a flush makes the
  // snapshot's data and inodes safe to call complete, and shows a write the remote refused (a full disk).
  await fs.finishSnapshot(target, join(layout.snapshots, name), async () => {
    await flushToRemote(vault, 'the snapshot before its rename');
    await vault.assertAlive();
  });
  debug(`push: renamed ${name}.partial to ${name}`);
  for (const dir of made.stalePartials) {
    debug(`push: removing ${dir}, which the new snapshot replaces`);
    await fs.removeSnapshot(dir);
  }

  const onImage = (await readCatalog(layout.catalog)) ?? emptyCatalog(meta.vaultId);
  const catalog = upsert(reconcile(onImage, await snapshotDirs(layout)), {
    name,
    time: parseSnapshotDir(name)!.time.toISOString(),
    complete: true,
    files: result.stats.regularFiles,
    bytes: result.stats.totalFileSize,
    changedBytes: result.stats.transferredFileSize,
    run: vault.runId,
    seq: nextSeq(onImage),
    ...(result.warnings.length ? { warnings: result.warnings.length, warningPaths: warningPaths(result.warnings) } : {}),
  });
  await writeCatalog(layout.catalog, catalog);
  debug('push: catalog written');
  await vault.noteSnapshots();
  // The image's copy of the run record knows the phases finished so far; the close phase is only in the local one.
  await vault.recordRun();
  debug('push: run record written');
  await flushToRemote(vault, 'the rename and the records');
  return catalog;
}

/**
 * syncfs of the snapshot filesystem: each layer below passes it down as a
 * flush, and the lowest one returns only when the remote has answered every
 * write and synced the image file.
 */
async function flushToRemote(vault: VaultWriter, what: string): Promise<void> {
  debug(`push: flushing ${what}`);
  await vault.flush();
  debug(`push: flushed ${what}`);
}

/** Turns an rsync failure into what happened to the user: lost link, full vault, or rsync's own words. */
async function explainSyncFailure(e: unknown, vault: VaultWriter, layout: ImageLayout, sync: SyncOptions): Promise<unknown> {
  if (!(e instanceof RsyncFailure)) return e;
  if (vault.linkLost) return vault.linkLost;
  try {
    await vault.assertAlive();
  } catch (dead) {
    return dead;
  }
  if (e.noSpace) {
    const fs = await statfs(layout.root);
    const free = fs.bavail * fs.bsize;
    const remaining = await remainingBytes(sync).catch(() => undefined);
    const missing = remaining === undefined ? '' : ` about ${formatBytes(Math.max(remaining - free, 0))} more than the`;
    return new VaultFullError(
      `the vault is full: this snapshot needs${missing || ' more than the'} ${formatBytes(free)} left of ${formatBytes(fs.blocks * fs.bsize)}; it stays partial. Remove old snapshots with 'sshvault prune' or make a larger vault`,
    );
  }
  return e;
}
