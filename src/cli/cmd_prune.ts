import { paint } from '../ui/color.js';
import { UsageError } from '../errors.js';
import { emptyCatalog, readCatalog, reconcile, writeCatalog, type Catalog } from '../snapshot/catalog.js';
import { finishDeleting, finishLeftoverDeletions, markDeleting } from '../snapshot/deleting.js';
import { imageLayout, readVaultMeta, snapshotDirs } from '../snapshot/layout.js';
import { planPrune, type PrunePlan } from '../snapshot/prune.js';
import type { RetentionPolicy } from '../snapshot/retention.js';
import { appendRun } from '../snapshot/runs.js';
import { info, notice } from '../ui/console.js';
import { DEFAULT_LINK, renderRunsTable } from '../ui/runs-view.js';
import { renderTable } from '../ui/table.js';
import { exclusive, meteredSession, openContext, passphraseFor, type GlobalArgs } from './common.js';

export interface PruneArgs extends GlobalArgs {
  vault?: string;
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  dryRun?: boolean;
}

/** Rules given on the command line replace the vault's configured ones as a whole, as with restic's forget. */
function policyFrom(a: PruneArgs, configured: RetentionPolicy | undefined): RetentionPolicy {
  const flags: RetentionPolicy = {
    last: a.keepLast,
    hourly: a.keepHourly,
    daily: a.keepDaily,
    weekly: a.keepWeekly,
    monthly: a.keepMonthly,
    yearly: a.keepYearly,
  };
  const given = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as RetentionPolicy;
  if (Object.keys(given).length) return given;
  if (configured && Object.keys(configured).length) return configured;
  throw new UsageError("prune needs a policy: give --keep-last, --keep-daily, ... or set 'retention' in the vault's config file");
}

export async function cmdPrune(a: PruneArgs): Promise<number> {
  const ctx = await openContext(a.vault);
  const policy = policyFrom(a, ctx.config.retention);
  // The policy is checked before anything is opened: a typo must cost no traffic.
  planPrune([], policy);
  return exclusive(ctx, async () => {
    const passphrase = await passphraseFor(a, ctx.config);
    let plan: PrunePlan | undefined;
    const run = await meteredSession(ctx, { command: 'prune', readOnly: !!a.dryRun, passphrase, mountFs: true, trustRemoteHeader: a.trustRemoteHeader }, async (session, meter) => {
      meter.begin('prune');
      const layout = imageLayout(session.o.paths.fsMount);
      const meta = await readVaultMeta(layout);
      if (meta.vaultId !== ctx.config.vaultId) {
        throw new UsageError(`the remote image belongs to vault ${meta.vaultId}, not to '${ctx.name}' (${ctx.config.vaultId}); refusing to delete anything`);
      }
      const onImage = (await readCatalog(layout.catalog)) ?? emptyCatalog(meta.vaultId);
      plan = planPrune(await snapshotDirs(layout), policy, onImage);
      if (a.dryRun) return reconcile(onImage, await snapshotDirs(layout));
      const alive = () => session.stack.assertAlive();
      const fs = session.fsLayer()!.fs;
      await finishLeftoverDeletions(layout, alive, notice, (dir) => fs.removeSnapshot(dir));
      await alive();
      await markDeleting(layout, plan.remove.map((r) => r.dir));
      const catalog = reconcile(onImage, await snapshotDirs(layout));
      await writeCatalog(layout.catalog, catalog);
      // The commit point: once the renames are on the remote, no run lists these snapshots again, whatever cuts the deletion.
      await session.fsLayer()!.flush();
      await alive();
      await finishDeleting(layout, alive, (dir) => fs.removeSnapshot(dir));
      await session.noteSnapshots();
      const done = meter.phases;
      await appendRun(layout.runs, {
        id: session.runId,
        command: 'prune',
        vault: ctx.name,
        started: session.started.toISOString(),
        finished: new Date().toISOString(),
        ok: true,
        exitCode: 0,
        engine: session.engine,
        fs: ctx.config.fs,
        changedBytes: 0,
        upBytes: done.reduce((t, p) => t + p.upBytes, 0),
        downBytes: done.reduce((t, p) => t + p.downBytes, 0),
        phases: done,
      });
      // Deleting is metadata writes: flushed here, so their upload counts in this phase.
      await session.fsLayer()!.flush();
      return catalog;
    });
    if (run.error) throw run.error;
    const p = plan!;
    const catalog: Catalog = run.value!;
    await writeCatalog(ctx.paths.catalogFile, catalog);
    if (a.json) {
      const items = (list: PrunePlan['keep']) => list.map((i) => ({ name: i.name, partial: i.partial, reasons: i.reasons }));
      info(JSON.stringify({ dryRun: !!a.dryRun, policy, keep: items(p.keep), remove: items(p.remove), run: run.record }, null, 2));
      return 0;
    }
    const rows = [...p.keep.map((i) => ({ i, keep: true })), ...p.remove.map((i) => ({ i, keep: false }))]
      .sort((x, y) => (x.i.dir < y.i.dir ? -1 : 1))
      .map(({ i, keep }) => [i.dir, keep ? 'keep' : paint.red(a.dryRun ? 'would remove' : 'removed'), i.reasons.join(', ')]);
    info(rows.length ? renderTable(['snapshot', 'action', 'why'], rows) : `Vault '${ctx.name}' has no snapshots.`);
    info(`${p.keep.length} kept, ${p.remove.length} ${a.dryRun ? 'would be removed (dry run: nothing was changed)' : 'removed'}.`);
    info(renderRunsTable([run.record], DEFAULT_LINK));
    return 0;
  });
}
