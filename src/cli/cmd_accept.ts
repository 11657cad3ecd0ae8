import { UsageError } from '../errors.js';
import { emptyCatalog, readCatalog, reconcile, writeCatalog } from '../snapshot/catalog.js';
import { readVaultMeta, snapshotDirs } from '../snapshot/layout.js';
import { readImageSequence, readLocalSequence } from '../snapshot/sequence.js';
import { info } from '../ui/console.js';
import { DEFAULT_LINK, renderRunsTable } from '../ui/runs-view.js';
import { withReader } from '../session/open.js';
import { exclusive, openContext, passphraseFor } from './common.js';
import { action } from './action.js';
import { vaultArg, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) => vaultArg(y).example('$0 accept-remote laptop', "after looking into why the remote is older than this machine's view");

type AcceptArgs = ArgsOf<typeof builder>;

export const acceptCommand: CommandOf<typeof builder> = {
  command: 'accept-remote [vault]',
  describe: "after a refused rollback, take the remote's snapshots and write counter as they are",
  builder,
  handler: action('accept-remote', cmdAccept, { root: true }),
};

/**
 * `accept-remote [<vault>]`: after a refused rollback, the user has looked
 * into it and takes the remote's state as it is. Opens read-only, shows how
 * the remote differs from what this machine saw, and resets the local write
 * counter and catalog to the remote's. Nothing on the remote changes.
 */
export async function cmdAccept(a: AcceptArgs): Promise<number> {
  const ctx = await openContext(a.vault);
  return exclusive(ctx, async () => {
    const before = await readLocalSequence(ctx.paths.sequenceFile);
    const passphrase = await passphraseFor(a, ctx.config);
    const run = await withReader(ctx, { command: 'accept-remote', passphrase, acceptRemote: true }, async (vault) => {
      vault.phase('read');
      const layout = vault.layout;
      const meta = await readVaultMeta(layout);
      if (meta.vaultId !== ctx.config.vaultId) {
        throw new UsageError(`the remote image belongs to vault ${meta.vaultId}, not to '${ctx.name}' (${ctx.config.vaultId}); refusing to take its state`);
      }
      const onImage = (await readCatalog(layout.catalog)) ?? emptyCatalog(meta.vaultId);
      return { catalog: reconcile(onImage, await snapshotDirs(layout)), mark: await readImageSequence(layout), seen: vault.seen!, verdict: vault.verdict! };
    });
    if (run.error) throw run.error;
    const { catalog, mark, seen, verdict } = run.value!;
    await writeCatalog(ctx.paths.catalogFile, catalog);
    const known = before?.snapshots ?? [];
    const missing = known.filter((s) => !seen.snapshots.includes(s));
    const added = seen.snapshots.filter((s) => !known.includes(s));
    if (a.json) {
      info(JSON.stringify({ verdict: verdict.kind, localCounter: before?.counter ?? 0, remoteCounter: seen.counter, missing, added, run: run.record }, null, 2));
      return 0;
    }
    const by = mark ? ` (last written ${mark.at} by run ${mark.runId})` : ' (it has no write counter)';
    info(`The remote is at write counter ${seen.counter}${by}; this machine had seen ${before?.counter ?? 0}.`);
    info(`Complete snapshots missing on the remote: ${missing.join(', ') || 'none'}.`);
    info(`Complete snapshots only on the remote: ${added.join(', ') || 'none'}.`);
    info(
      verdict.kind === 'rollback'
        ? `Accepted: vault '${ctx.name}' now follows the remote (${seen.snapshots.length} complete snapshots); the missing ones are gone for good unless the host can bring them back.`
        : `The remote was not behind this machine; the local catalog and counter now follow it (${seen.snapshots.length} complete snapshots).`,
    );
    info(renderRunsTable([run.record], DEFAULT_LINK));
    return 0;
  });
}
