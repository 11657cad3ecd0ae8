import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { snapshotDirs, type ImageLayout } from './layout.js';
import { removeManifest } from './manifest.js';
import { deletingDir, parseDeletingDir } from './naming.js';

function removeTree(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true });
}

/**
 * Takes snapshot directories out of the snapshots' names. The caller flushes
 * before deleting anything: from then on, a cut can only leave `.deleting`
 * directories behind, never a half-deleted snapshot that still looks complete.
 */
export async function markDeleting(layout: ImageLayout, dirs: string[]): Promise<void> {
  for (const dir of dirs) await rename(join(layout.snapshots, dir), join(layout.snapshots, deletingDir(dir)));
}

/**
 * Deletes every `.deleting` directory, with the manifest of the snapshot it
 * was: this run's, or what an interrupted prune left. Returns their names.
 */
export async function finishDeleting(layout: ImageLayout, beforeEach: () => Promise<void>, remove: (dir: string) => Promise<void> = removeTree): Promise<string[]> {
  const done: string[] = [];
  for (const dir of await snapshotDirs(layout)) {
    const ref = parseDeletingDir(dir);
    if (!ref) continue;
    await beforeEach();
    await remove(join(layout.snapshots, dir));
    await removeManifest(layout, ref.name);
    done.push(dir);
  }
  return done;
}

/** What an interrupted prune left half-deleted: every writing run finishes it before it writes anything else. */
export async function finishLeftoverDeletions(
  layout: ImageLayout,
  beforeEach: () => Promise<void>,
  notice: (message: string) => void,
  remove: (dir: string) => Promise<void> = removeTree,
): Promise<void> {
  const done = await finishDeleting(layout, beforeEach, remove);
  if (done.length) notice(`Finished deleting what an interrupted prune left: ${done.join(', ')}.`);
}
