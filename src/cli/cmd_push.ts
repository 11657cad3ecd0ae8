import { existsSync } from 'node:fs';
import { mkdir, rename, statfs } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { cacheRoot, stateRoot } from '../config/paths.js';
import { listVaults } from '../config/vault-config.js';
import { UsageError, VaultFullError } from '../errors.js';
import type { TrafficMeter } from '../remote/traffic.js';
import type { VaultSession } from '../stack/session.js';
import { emptyCatalog, readCatalog, reconcile, upsert, writeCatalog } from '../snapshot/catalog.js';
import { imageLayout, readVaultMeta, snapshotDirs, type ImageLayout } from '../snapshot/layout.js';
import { writeManifest } from '../snapshot/manifest.js';
import { newestComplete, nextSnapshotName, parseSnapshotDir, type SnapshotRef } from '../snapshot/naming.js';
import { remainingBytes, RsyncFailure, syncSnapshot, type SyncOptions, type SyncResult } from '../snapshot/rsync.js';
import { appendRun, type RunRecord } from '../snapshot/runs.js';
import { info, isQuiet, notice, warn } from '../ui/console.js';
import { formatBytes } from '../ui/format.js';
import { SyncProgressBar } from '../ui/progress.js';
import { exclusive, meteredSession, openContext, passphraseFor, type GlobalArgs, type RunFacts, type VaultContext } from './common.js';
import { withHooks } from './hooks.js';
import { renderRunSummary } from '../ui/runs-view.js';
import { finishLeftoverDeletions } from '../snapshot/deleting.js';

export interface PushArgs extends GlobalArgs {
  args: string[];
  onSuccess?: string;
  onFailure?: string;
}

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
    const run = await meteredSession(ctx, { command: 'push', readOnly: false, passphrase, mountFs: true, trustRemoteHeader: a.trustRemoteHeader }, (session, meter, signal, facts) => {
      meter.begin('sync');
      return pushSnapshot(session, meter, sources, ctx.config.excludes, signal, facts, !a.json && !isQuiet());
    });
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
    return 0;
  });
}

async function pushSnapshot(
  session: VaultSession,
  meter: TrafficMeter,
  sources: string[],
  excludes: string[],
  signal: AbortSignal,
  facts: RunFacts,
  showProgress: boolean,
) {
  const layout = imageLayout(session.o.paths.fsMount);
  const meta = await readVaultMeta(layout);
  if (meta.vaultId !== session.o.config.vaultId) {
    throw new UsageError(`the remote image belongs to vault ${meta.vaultId}, not to '${session.o.config.name}' (${session.o.config.vaultId}); refusing to write`);
  }
  await finishLeftoverDeletions(layout, () => session.stack.assertAlive(), notice);
  const dirs = await snapshotDirs(layout);
  const refs = dirs.map(parseSnapshotDir).filter((r): r is SnapshotRef => r !== null);
  const previous = newestComplete(refs);
  const partial = refs.filter((r) => r.partial).pop();
  const name = nextSnapshotName(new Date(), dirs);
  const target = join(layout.snapshots, `${name}.partial`);
  facts.snapshot = name;
  await session.stack.assertAlive();
  if (partial) {
    // Resume: what the interrupted run copied is kept; the new name says when the data was really taken.
    notice(`Resuming the interrupted snapshot ${partial.name} as ${name}.`);
    await rename(join(layout.snapshots, `${partial.name}.partial`), target);
  } else {
    await mkdir(target);
  }
  const bar = new SyncProgressBar(showProgress);
  const sync: SyncOptions = {
    sources,
    dest: target,
    linkDest: previous ? join(layout.snapshots, previous.name) : undefined,
    excludes,
    // sshvault's own mounts live in its state directory: backing up / or ~ must not recurse into the vault,
    // nor upload the block cache, a copy of the vault's own ciphertext, with every push.
    alwaysExclude: [`${stateRoot()}/`, `${cacheRoot()}/`],
    signal,
    onProgress: (p) => bar.update(p),
  };
  let result: SyncResult;
  try {
    result = await syncSnapshot(sync);
  } catch (e) {
    bar.stop();
    throw await explainSyncFailure(e, session, layout, sync);
  }
  bar.stop();
  for (const w of result.warnings.slice(0, 20)) warn(w);
  if (result.warnings.length > 20) warn(`... and ${result.warnings.length - 20} more`);
  facts.changedBytes = result.stats.transferredFileSize;
  facts.rsync = result.stats;
  await writeManifest({ layout, name, dir: target, previous: previous && { name: previous.name, dir: join(layout.snapshots, previous.name) }, cacheDir: session.o.paths.state });
  // Complete means on the remote: the image's writes are acknowledged before the remote answers them,
  // so a write the remote refused (a full disk) shows only once everything below is flushed.
  await session.fsLayer()!.flush();
  await session.stack.assertAlive();
  await rename(target, join(layout.snapshots, name));

  const onImage = (await readCatalog(layout.catalog)) ?? emptyCatalog(meta.vaultId);
  const catalog = upsert(reconcile(onImage, await snapshotDirs(layout)), {
    name,
    time: parseSnapshotDir(name)!.time.toISOString(),
    complete: true,
    files: result.stats.regularFiles,
    bytes: result.stats.totalFileSize,
    changedBytes: result.stats.transferredFileSize,
    run: session.runId,
  });
  await writeCatalog(layout.catalog, catalog);
  await session.noteSnapshots();
  // The image's copy of the run record knows the phases finished so far; the close phase is only in the local one.
  const done = meter.phases;
  await appendRun(layout.runs, {
    id: session.runId,
    command: 'push',
    vault: session.o.config.name,
    snapshot: name,
    started: session.started.toISOString(),
    finished: new Date().toISOString(),
    ok: true,
    exitCode: 0,
    engine: session.engine,
    fs: session.o.config.fs,
    changedBytes: result.stats.transferredFileSize,
    upBytes: done.reduce((t, p) => t + p.upBytes, 0),
    downBytes: done.reduce((t, p) => t + p.downBytes, 0),
    phases: done,
    rsync: result.stats,
  });
  await session.fsLayer()!.flush();
  return catalog;
}

/** Turns an rsync failure into what happened to the user: lost link, full vault, or rsync's own words. */
async function explainSyncFailure(e: unknown, session: VaultSession, layout: ImageLayout, sync: SyncOptions): Promise<unknown> {
  if (!(e instanceof RsyncFailure)) return e;
  if (session.conn?.lost) return session.conn.lost;
  try {
    await session.stack.assertAlive();
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
