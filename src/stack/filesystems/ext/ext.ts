import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckFailedError, CommandError, UsageError } from '../../../errors.js';
import { run } from '../../../exec.js';
import { verifySnapshots } from '../../../snapshot/manifest.js';
import { planLinks } from '../../../snapshot/resume.js';
import type { Filesystem, FsckResult, NewSnapshot, NewSnapshotOptions, OpenOptions } from '../filesystem.js';
import { repairAfterCrash, repairKeepingUndo, undoRepair } from './fs-repair.js';

type FsState = 'clean' | 'not clean' | 'errors';

async function filesystemState(device: string): Promise<FsState> {
  let out: string;
  try {
    out = (await run('dumpe2fs', ['-h', device])).stdout;
  } catch (e) {
    if (e instanceof CommandError && /Bad magic number|Couldn't find valid filesystem superblock/.test(e.stderr)) {
      throw new UsageError('the vault opened but holds no ext filesystem; the image is damaged or was not made by sshvault');
    }
    throw e;
  }
  const state = /^Filesystem state:\s*(.*)$/m.exec(out)?.[1] ?? '';
  if (/error/.test(state)) return 'errors';
  if (/not clean/.test(state)) return 'not clean';
  return 'clean';
}

/** LUKS1 with a 512-bit key puts the payload at 2 MiB; below this there is no room for a useful filesystem. */
const MIN_IMAGE_BYTES = 64 * 1024 * 1024;

/**
 * ext4 without a journal (default) or ext2 (the seeds' layout). A journal
 * costs +62% upload per incremental (docs/design.md, "Filesystems"), so none is ever made.
 * Snapshots are hard-link trees made by rsync --link-dest.
 */
export class ExtFilesystem implements Filesystem {
  readonly minImageBytes = MIN_IMAGE_BYTES;
  /** The superblock (times, free counts) and, with 1 KiB blocks, the first group descriptors: every mount and unmount writes them. */
  readonly rewrittenEveryRun = { from: 1024, to: 3072 };
  readonly keepsManifests = true;
  readonly checker = 'e2fsck';
  readonly repairs = true;

  constructor(readonly type: 'ext4' | 'ext2') {}

  /** lazy_itable_init keeps mkfs from writing every inode table over the wire. */
  async make(device: string): Promise<void> {
    const common = ['-q', '-F', '-m', '0', '-L', 'sshvault'];
    if (this.type === 'ext4') {
      // 1 KiB blocks (bench/traffic): directory and inode-table writes are dirtied per block, so an
      // incremental uploads 22% less, downloads 24% less, and a check downloads half as much.
      await run('mkfs.ext4', [...common, '-b', '1024', '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard', device]);
    } else {
      await run('mkfs.ext2', [...common, '-E', 'nodiscard', device]);
    }
    // A backup that refuses to mount because of a periodic check would fail at the worst moment.
    await run('tune2fs', ['-c', '0', '-i', '0', device]);
  }

  mountOptions(readOnly: boolean): string[] {
    return ['noatime', 'nosuid', 'nodev', ...(this.type === 'ext4' ? ['noinit_itable'] : []), ...(readOnly ? ['ro'] : [])];
  }

  async prepare(device: string, o: OpenOptions): Promise<boolean> {
    const state = await filesystemState(device);
    if (state === 'clean') return false;
    if (o.readOnly) {
      o.notice(`The vault's filesystem is ${state === 'errors' ? 'marked with errors' : 'not clean'}; mounting it read-only without repair.`);
    } else if (state === 'errors') {
      // The kernel found corruption, which the host can cause: what a repair would change is anyone's guess.
      throw new CheckFailedError(
        "the vault's filesystem is marked with errors (the kernel found damage), so nothing was written; run 'sshvault check' to see them and 'sshvault check --repair' to fix them",
      );
    } else {
      await repairAfterCrash(device, o.repairUndo, o.notice);
    }
    return true;
  }

  /**
   * A forced full check, `e2fsck -fn` (reads only) or, given `repairUndo`,
   * `e2fsck -fy` keeping its undo file there. Readahead on the device goes
   * off first: fsck reads scattered metadata, and readahead would fetch the
   * blocks around each one over the wire too (docs/design.md, "Filesystems").
   * With the userspace engine the layers below the loop device read ahead on
   * their own, so there it changes little (44.3 instead of 44.4-44.8 MB for 130k inodes).
   */
  async check(device: string, repairUndo?: string): Promise<FsckResult> {
    await run('blockdev', ['--setra', '0', device]);
    // 1 and 2: errors found and corrected; 4: errors left uncorrected (always so with -n).
    const r = repairUndo ? await repairKeepingUndo(device, repairUndo) : await run('e2fsck', ['-fn', device], { okExitCodes: [1, 2, 4] });
    const output = [r.stdout, r.stderr].filter((t) => t.trim()).join('\n');
    return { clean: r.exitCode !== 4, repaired: r.exitCode === 1 || r.exitCode === 2, output, undoFile: repairUndo && r.exitCode !== 0 ? repairUndo : undefined };
  }

  undoRepair(device: string, undoFile: string): Promise<void> {
    return undoRepair(device, undoFile);
  }

  /** ext has no data checksums: the manifests push wrote are what the data is compared with. */
  verifyData: Filesystem['verifyData'] = (layout, names, progress) => verifySnapshots(layout, names, progress);

  /** An empty directory that rsync fills with hard links to unchanged files (docs/design.md, "Snapshots"). */
  async newSnapshot(o: NewSnapshotOptions): Promise<NewSnapshot> {
    const links = planLinks(o.refs, o.previous, o.snapshotsDir, !o.cutOff);
    const partial = join(o.snapshotsDir, `${o.name}.partial`);
    await mkdir(partial);
    const resumes = o.refs.some((r) => r.partial) && !o.cutOff;
    return { partial, rsyncArgs: links.linkDests.map((d) => `--link-dest=${d}`), stalePartials: links.stalePartials, resumes };
  }

  async finishSnapshot(partial: string, final: string, flush: () => Promise<void>): Promise<void> {
    await flush();
    await rename(partial, final);
  }

  removeSnapshot(dir: string): Promise<void> {
    return rm(dir, { recursive: true, force: true });
  }
}
