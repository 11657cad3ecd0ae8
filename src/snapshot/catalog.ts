import { readFile, rename, writeFile } from 'node:fs/promises';
import { parseSnapshotDir, sortSnapshots } from './naming.js';

/** The snapshot list with stats, in the image and cached locally (docs/design.md, "On-image layout"). */
export interface CatalogEntry {
  name: string;
  time: string;
  complete: boolean;
  files: number;
  bytes: number;
  changedBytes?: number;
  run?: string;
  /** Run order: the n-th snapshot a push completed (names follow a clock that may have been wrong). */
  seq?: number;
  /** Complete with warnings: how many files rsync skipped, and the first of their paths. */
  warnings?: number;
  warningPaths?: string[];
}

export interface Catalog {
  version: 1;
  vaultId: string;
  snapshots: CatalogEntry[];
}

export function emptyCatalog(vaultId: string): Catalog {
  return { version: 1, vaultId, snapshots: [] };
}

export async function readCatalog(file: string): Promise<Catalog | undefined> {
  try {
    const c = JSON.parse(await readFile(file, 'utf8')) as Catalog;
    return Array.isArray(c.snapshots) ? c : undefined;
  } catch {
    return undefined;
  }
}

/** Written beside and renamed over, so a crash leaves the old catalog or the new one, never half of one. */
export async function writeCatalog(file: string, catalog: Catalog): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, JSON.stringify(catalog, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, file);
}

export function upsert(catalog: Catalog, entry: CatalogEntry): Catalog {
  const rest = catalog.snapshots.filter((s) => s.name !== entry.name);
  return { ...catalog, snapshots: sortSnapshots([...rest, entry]) };
}

/**
 * Makes the catalog agree with the snapshot directories that really exist:
 * directories are the truth, the catalog adds their stats.
 */
export function reconcile(catalog: Catalog, dirNames: string[]): Catalog {
  const known = new Map(catalog.snapshots.map((s) => [s.name, s]));
  const entries: CatalogEntry[] = [];
  for (const dir of dirNames) {
    const ref = parseSnapshotDir(dir);
    if (!ref) continue;
    const prior = known.get(ref.name);
    entries.push(
      prior && prior.complete === !ref.partial
        ? prior
        : { name: ref.name, time: ref.time.toISOString(), complete: !ref.partial, files: prior?.files ?? 0, bytes: prior?.bytes ?? 0 },
    );
  }
  return { ...catalog, snapshots: sortSnapshots(entries) };
}
