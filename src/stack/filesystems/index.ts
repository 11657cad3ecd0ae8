import type { FsType } from '../../config/vault-config.js';
import { BtrfsFilesystem } from './btrfs/btrfs.js';
import { ExtFilesystem } from './ext/ext.js';
import type { Filesystem } from './filesystem.js';

export function filesystemFor(type: FsType): Filesystem {
  return type === 'btrfs' ? new BtrfsFilesystem() : new ExtFilesystem(type);
}
