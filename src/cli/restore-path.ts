import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../errors.js';

export type EntryKind = 'missing' | 'dir' | 'other';

/**
 * What `path` (absolute, as in the snapshot) is inside the snapshot at
 * `root` (`path` holds no '..'), found one component at a time with lstat: a symlink on the way
 * would be resolved on this machine and lead the copy out of the snapshot,
 * so it is refused. A symlink as the last component is the entry itself.
 */
export async function entryInSnapshot(root: string, path: string): Promise<EntryKind> {
  const parts = path.split('/').filter((p) => p && p !== '.');
  let here = root;
  for (let i = 0; i < parts.length; i++) {
    here = join(here, parts[i]!);
    const st = await lstat(here).catch(() => undefined);
    if (!st) return 'missing';
    const last = i === parts.length - 1;
    if (last) return st.isDirectory() ? 'dir' : 'other';
    if (st.isSymbolicLink()) {
      const shown = `/${parts.slice(0, i + 1).join('/')}`;
      const target = await readlink(here).catch(() => '?');
      throw new UsageError(`${path} crosses a symlink inside the snapshot (${shown} -> ${target}); restore the link itself or its target's path`);
    }
    if (!st.isDirectory()) return 'missing';
  }
  return (await lstat(root)).isDirectory() ? 'dir' : 'other';
}
