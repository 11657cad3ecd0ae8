import { UsageError } from '../errors.js';
import { readCatalog } from './catalog.js';
import { snapshotDirs, type ImageLayout } from './layout.js';
import { parseSnapshotDir, type SnapshotRef } from './naming.js';
import { latestComplete } from './order.js';

/** The snapshot directory a name stands for: `latest` is the complete one pushed last; `<name>.partial` rescues from an interrupted push. */
export async function resolveSnapshot(layout: ImageLayout, wanted: string): Promise<string> {
  const dirs = await snapshotDirs(layout);
  const refs = dirs.map(parseSnapshotDir).filter((r): r is SnapshotRef => r !== null);
  if (wanted === 'latest') {
    const newest = latestComplete(refs, await readCatalog(layout.catalog));
    if (!newest) throw new UsageError('the vault has no complete snapshot yet; push one first');
    return newest.name;
  }
  if (dirs.includes(wanted) && parseSnapshotDir(wanted)) return wanted;
  if (dirs.includes(`${wanted}.partial`)) {
    throw new UsageError(`snapshot ${wanted} is partial (its push was interrupted); name it ${wanted}.partial to restore from it anyway`);
  }
  throw new UsageError(`the vault has no snapshot '${wanted}'; 'sshvault list --refresh' shows them`);
}
