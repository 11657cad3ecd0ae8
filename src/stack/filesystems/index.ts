import { UsageError } from '../../errors.js';
import { run } from '../../exec.js';
import { BtrfsFilesystem } from './btrfs/btrfs.js';
import { ExtFilesystem } from './ext/ext.js';
import type { Filesystem } from './filesystem.js';

/**
 * Every filesystem a vault can hold, by the name `init --fs` takes. The first
 * is the default for new vaults: btrfs, whose pushes cost what changed and not
 * the size of the tree (docs/design.md, "Filesystems"); a vault keeps the one
 * it was made with.
 */
const FILESYSTEMS: Record<string, () => Filesystem> = {
  btrfs: () => new BtrfsFilesystem(),
  ext4: () => new ExtFilesystem('ext4'),
  ext2: () => new ExtFilesystem('ext2'),
};

export const FS_CHOICES: readonly string[] = Object.keys(FILESYSTEMS);

export function filesystemFor(type: string): Filesystem {
  const make = FILESYSTEMS[type];
  if (!make) throw new UsageError(`there is no filesystem '${type}'; use ${FS_CHOICES.join(', ')}`);
  return make();
}

/** For a vault known only by its remote (`restore --remote`): the filesystem is whatever the image holds. */
export const DETECT_FS = 'detect';

/** The filesystem on a device, by the name blkid gives it, which is the name sshvault knows it by. */
export async function detectFilesystem(device: string): Promise<Filesystem> {
  // blkid exits 2 when it recognises nothing.
  const type = (await run('blkid', ['-o', 'value', '-s', 'TYPE', device], { okExitCodes: [2] })).stdout.trim();
  if (!FILESYSTEMS[type]) throw new UsageError(`the vault opened but holds no filesystem sshvault knows (${type || 'none found'}); the image is damaged or was not made by sshvault`);
  return FILESYSTEMS[type]();
}
