import { paint } from '../ui/color.js';
import { emptyCatalog, readCatalog, reconcile, writeCatalog, type Catalog } from '../snapshot/catalog.js';
import { readVaultMeta, snapshotDirs } from '../snapshot/layout.js';
import { info } from '../ui/console.js';
import { formatBytes } from '../ui/format.js';
import { renderTable } from '../ui/table.js';
import { formatTime } from '../ui/time.js';
import { withReader } from '../session/open.js';
import { exclusive, openContext, passphraseFor } from './common.js';
import { action } from './action.js';
import { vaultArg, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) =>
  vaultArg(y).option('refresh', { type: 'boolean', describe: 're-read the catalog from the image' }).example('$0 list --refresh', 'the snapshots as the image has them');

type ListArgs = ArgsOf<typeof builder>;

export const listCommand: CommandOf<typeof builder> = {
  command: 'list [vault]',
  describe: 'list snapshots',
  builder,
  handler: action('list', cmdList, { root: (argv) => !!argv.refresh }),
};

export async function cmdList(a: ListArgs): Promise<number> {
  const ctx = await openContext(a.vault);
  let catalog = (await readCatalog(ctx.paths.catalogFile)) ?? emptyCatalog(ctx.config.vaultId);
  if (a.refresh) {
    catalog = await exclusive(ctx, async () => {
      const passphrase = await passphraseFor(a, ctx.config);
      const run = await withReader(ctx, { command: 'list', passphrase }, async (vault) => {
        vault.phase('read');
        const layout = vault.layout;
        await readVaultMeta(layout);
        const onImage = (await readCatalog(layout.catalog)) ?? emptyCatalog(ctx.config.vaultId);
        return reconcile(onImage, await snapshotDirs(layout));
      });
      if (run.error) throw run.error;
      await writeCatalog(ctx.paths.catalogFile, run.value!);
      return run.value!;
    });
  }
  info(a.json ? JSON.stringify(jsonList(catalog), null, 2) : renderList(catalog, ctx.name));
  return 0;
}

function jsonList(c: Catalog) {
  return c.snapshots.map((s) => ({
    name: s.name,
    time: s.time,
    complete: s.complete,
    files: s.files,
    bytes: s.bytes,
    ...(s.changedBytes !== undefined ? { changedBytes: s.changedBytes } : {}),
    ...(s.warnings ? { warnings: s.warnings, warningPaths: s.warningPaths ?? [] } : {}),
  }));
}

function renderList(c: Catalog, vault: string): string {
  if (!c.snapshots.length) return `Vault '${vault}' has no snapshots yet.`;
  const rows = c.snapshots.map((s) => [
    s.name,
    formatTime(s.time),
    !s.complete ? paint.yellow('partial') : s.warnings ? paint.yellow('complete (warnings)') : 'complete',
    s.files,
    formatBytes(s.bytes),
    s.changedBytes !== undefined ? formatBytes(s.changedBytes) : '-',
  ]);
  return renderTable(['snapshot', 'time', 'state', 'files', 'size', 'changed'], rows, { align: ['left', 'left', 'left', 'right', 'right', 'right'] });
}
