import { paint } from '../ui/color.js';
import { UsageError } from '../errors.js';
import { emptyCatalog, readCatalog, reconcile, writeCatalog, type Catalog } from '../snapshot/catalog.js';
import { finishDeleting, finishLeftoverDeletions, markDeleting } from '../snapshot/deleting.js';
import { readVaultMeta, snapshotDirs } from '../snapshot/layout.js';
import { dropDeltas, keepChainsWhole } from '../snapshot/manifest.js';
import { planPrune, type PrunePlan } from '../snapshot/prune.js';
import type { RetentionPolicy } from '../snapshot/retention.js';
import { info, notice } from '../ui/console.js';
import { DEFAULT_LINK, renderRunsTable } from '../ui/runs-view.js';
import { renderTable } from '../ui/table.js';
import { withReader, withWriter, type VaultReader } from '../session/open.js';
import { exclusive, openContext, passphraseFor, type VaultContext } from './common.js';
import { action } from './action.js';
import { vaultArg, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';
import { filesystemFor } from '../stack/filesystems/index.js';

const builder = (y: CommandArgv) =>
  vaultArg(y)
    .option('keep-last', { type: 'number', describe: 'keep the N newest snapshots' })
    .option('keep-hourly', { type: 'number', describe: 'keep the newest snapshot of each of the last N hours that have one' })
    .option('keep-daily', { type: 'number', describe: 'the same per day' })
    .option('keep-weekly', { type: 'number', describe: 'the same per ISO week' })
    .option('keep-monthly', { type: 'number', describe: 'the same per month' })
    .option('keep-yearly', { type: 'number', describe: 'the same per year' })
    .option('dry-run', { type: 'boolean', describe: 'say what would be removed, change nothing' })
    .example('$0 prune --keep-daily 7 --keep-weekly 4 --dry-run', 'what a week of dailies and a month of weeklies would keep');

type PruneArgs = ArgsOf<typeof builder>;

export const pruneCommand: CommandOf<typeof builder> = {
  command: 'prune [vault]',
  describe: 'remove snapshots the retention policy does not keep (restic-style rules)',
  builder,
  handler: action('prune', cmdPrune, { root: true }),
};

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

/** The image's catalog and what the policy keeps of its snapshots, refused if the image is another vault's. */
async function readPlan(vault: VaultReader, ctx: VaultContext, policy: RetentionPolicy) {
  vault.phase('prune');
  const layout = vault.layout;
  const meta = await readVaultMeta(layout);
  if (meta.vaultId !== ctx.config.vaultId) {
    throw new UsageError(`the remote image belongs to vault ${meta.vaultId}, not to '${ctx.name}' (${ctx.config.vaultId}); refusing to delete anything`);
  }
  const onImage = (await readCatalog(layout.catalog)) ?? emptyCatalog(meta.vaultId);
  return { layout, onImage, plan: planPrune(await snapshotDirs(layout), policy, onImage) };
}

export async function cmdPrune(a: PruneArgs): Promise<number> {
  const ctx = await openContext(a.vault);
  const policy = policyFrom(a, ctx.config.retention);
  // The policy is checked before anything is opened: a typo must cost no traffic.
  planPrune([], policy);
  return exclusive(ctx, async () => {
    const passphrase = await passphraseFor(a, ctx.config);
    let plan: PrunePlan | undefined;
    const opts = { command: 'prune', passphrase, trustRemoteHeader: a.trustRemoteHeader };
    const run = a.dryRun
      ? await withReader(ctx, opts, async (vault) => {
          const read = await readPlan(vault, ctx, policy);
          plan = read.plan;
          return reconcile(read.onImage, await snapshotDirs(read.layout));
        })
      : await withWriter(ctx, opts, async (vault) => {
          const { onImage, layout, plan: chosen } = await readPlan(vault, ctx, policy);
          plan = chosen;
          const alive = () => vault.assertAlive();
          const fs = filesystemFor(ctx.config.fs);
          await finishLeftoverDeletions(layout, alive, notice, (dir) => fs.removeSnapshot(dir));
          await alive();
          // Kept snapshots' manifests must not depend on what goes: their new full manifests are on the remote before any removal.
          const rewritten = await keepChainsWhole(layout, new Set(chosen.keep.map((k) => k.name)));
          if (rewritten.length) {
            await vault.flush();
            await alive();
            await dropDeltas(layout, rewritten);
          }
          await markDeleting(layout, chosen.remove.map((r) => r.dir));
          const catalog = reconcile(onImage, await snapshotDirs(layout));
          await writeCatalog(layout.catalog, catalog);
          // The commit point: once the renames are on the remote, no run lists these snapshots again, whatever cuts the deletion.
          await vault.flush();
          await alive();
          await finishDeleting(layout, alive, (dir) => fs.removeSnapshot(dir));
          await vault.noteSnapshots();
          await vault.recordRun();
          // Deleting is metadata writes: flushed here, so their upload counts in this phase.
          await vault.flush();
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
