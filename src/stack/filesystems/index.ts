import { UsageError } from '../../errors.js';
import { BtrfsFilesystem } from './btrfs/btrfs.js';
import { ExtFilesystem } from './ext/ext.js';
import type { Filesystem } from './filesystem.js';

/** Every filesystem a vault can hold, by the name `init --fs` takes; the first is the default. */
const FILESYSTEMS: Record<string, () => Filesystem> = {
  ext4: () => new ExtFilesystem('ext4'),
  ext2: () => new ExtFilesystem('ext2'),
  btrfs: () => new BtrfsFilesystem(),
};

export const FS_CHOICES: readonly string[] = Object.keys(FILESYSTEMS);

export function filesystemFor(type: string): Filesystem {
  const make = FILESYSTEMS[type];
  if (!make) throw new UsageError(`there is no filesystem '${type}'; use ${FS_CHOICES.join(', ')}`);
  return make();
}
