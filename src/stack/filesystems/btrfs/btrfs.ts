import { open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../../../errors.js';
import { run } from '../../../exec.js';
import { sortSnapshots } from '../../../snapshot/naming.js';
import type { Filesystem, FsckResult, NewSnapshot, NewSnapshotOptions } from '../filesystem.js';
import { readDataChunkRanges } from './chunks.js';
import { scrubAndName } from './scrub.js';

/** mkfs.btrfs refuses a device below 45 MiB; LUKS1 puts the payload 2 MiB in. */
const MIN_IMAGE_BYTES = 47 * 1024 * 1024;
const SUPERBLOCK_MAGIC_AT = 64 * 1024 + 0x40;
/** The inode number of every subvolume's root directory. */
const SUBVOLUME_ROOT_INO = 256;

async function holdsBtrfs(device: string): Promise<boolean> {
  const f = await open(device, 'r');
  try {
    const b = Buffer.alloc(8);
    await f.read(b, 0, 8, SUPERBLOCK_MAGIC_AT);
    return b.toString('latin1') === '_BHRfS_M';
  } finally {
    await f.close();
  }
}

async function isSubvolume(dir: string): Promise<boolean> {
  return (await stat(dir)).ino === SUBVOLUME_ROOT_INO;
}

/**
 * btrfs: copy-on-write, with checksums over data and metadata, so it needs
 * no repair after a cut and no manifests. Snapshots are subvolumes, made
 * read-only once complete (docs/design.md, "Filesystems").
 */
export class BtrfsFilesystem implements Filesystem {
  readonly type = 'btrfs' as const;
  readonly minImageBytes = MIN_IMAGE_BYTES;
  /** The primary superblock at 64 KiB: every transaction commit writes it. */
  readonly rewrittenEveryRun = { from: 65536, to: 65536 + 4096 };
  readonly keepsManifests = false;
  readonly checker = 'btrfs check';
  readonly repairs = false;

  /**
   * 4 KiB nodes: a metadata change rewrites whole nodes up to the root, and
   * each one goes over the wire. One copy of everything: the host keeps the
   * only copy anyway, and a second one in the same file protects nothing.
   * No discard: it would be sent over the wire for the whole image.
   */
  async make(device: string): Promise<void> {
    await run('mkfs.btrfs', ['-q', '-f', '-K', '-n', '4096', '-m', 'single', '-d', 'single', '-L', 'sshvault', device]);
  }

  /**
   * No `rescue=nologreplay` on a read-only mount: scrub refuses such a mount.
   * Nothing sshvault runs in the vault calls fsync, so there is no log tree to replay.
   */
  mountOptions(readOnly: boolean): string[] {
    return ['noatime', 'nosuid', 'nodev', ...(readOnly ? ['ro'] : ['compress=zstd'])];
  }

  /** Nothing to repair after a cut: the last committed transaction is consistent, as the flushes reached the remote. */
  async prepare(device: string): Promise<boolean> {
    if (!(await holdsBtrfs(device))) {
      throw new UsageError('the vault opened but holds no btrfs filesystem; the image is damaged or was not made by sshvault');
    }
    return false;
  }

  /** Never asked to repair: `repairs` is false. */
  async check(device: string): Promise<FsckResult> {
    const r = await run('btrfs', ['check', '--readonly', device], { okExitCodes: [1] });
    const output = [r.stdout, r.stderr].filter((t) => t.trim()).join('\n');
    return { clean: r.exitCode === 0, repaired: false, output };
  }

  async undoRepair(): Promise<void> {
    throw new UsageError('there is no repair to undo: sshvault never repairs a btrfs vault');
  }

  verifyData: Filesystem['verifyData'] = (layout, names, progress) => scrubAndName(layout, names, progress);

  /** Data and metadata live in separate chunks, mapped by the chunk tree. */
  fileDataRanges: Filesystem['fileDataRanges'] = (device) => readDataChunkRanges(device);

  /**
   * A writable snapshot of the previous complete snapshot: rsync then writes
   * only what changed. An interrupted run's `.partial` is never carried on: a
   * cut can leave a file there with its new size and mtime committed but its
   * old data (btrfs commits an inode's times apart from the extents written
   * for it), and rsync would then take the file as copied. It goes once the
   * new snapshot is complete (docs/design.md, "Snapshots").
   */
  async newSnapshot(o: NewSnapshotOptions): Promise<NewSnapshot> {
    const partials = sortSnapshots(o.refs.filter((r) => r.partial)).map((r) => join(o.snapshotsDir, `${r.name}.partial`));
    const partial = join(o.snapshotsDir, `${o.name}.partial`);
    if (o.previous) await run('btrfs', ['subvolume', 'snapshot', join(o.snapshotsDir, o.previous.name), partial]);
    else await run('btrfs', ['subvolume', 'create', partial]);
    // The partial holds the previous snapshot's tree: rsync must remove what is gone from the sources,
    // and what is excluded now, so that the snapshot holds exactly what an empty one would.
    return { partial, rsyncArgs: ['--delete', '--delete-excluded'], stalePartials: partials, resumes: false };
  }

  async finishSnapshot(partial: string, final: string, flush: () => Promise<void>): Promise<void> {
    await run('btrfs', ['property', 'set', partial, 'ro', 'true']);
    await flush();
    await rename(partial, final);
  }

  async removeSnapshot(dir: string): Promise<void> {
    const exists = await stat(dir).then(
      () => true,
      () => false,
    );
    if (!exists) return;
    if (await isSubvolume(dir)) await run('btrfs', ['subvolume', 'delete', dir]);
    else await rm(dir, { recursive: true, force: true });
  }
}
