import { mkdir } from 'node:fs/promises';
import type { FsType } from '../config/vault-config.js';
import { CheckFailedError, CommandError, UsageError } from '../errors.js';
import { run } from '../exec.js';
import type { Layer, Leftover } from './layer.js';
import { repairAfterCrash, repairKeepingUndo } from './filesystems/ext/fs-repair.js';
import { findProcesses, isMounted, stopProcess } from './mounts.js';

/**
 * ext4 without a journal (default) or ext2 (the seeds' layout). A journal
 * costs +62% upload per incremental (docs/design.md, "Filesystems"), so none is ever made.
 * lazy_itable_init keeps mkfs from writing every inode table over the wire.
 */
export async function makeFilesystem(device: string, fs: FsType): Promise<void> {
  const common = ['-q', '-F', '-m', '0', '-L', 'sshvault'];
  if (fs === 'ext4') {
    // 1 KiB blocks (bench/traffic): directory and inode-table writes are dirtied per block, so an
    // incremental uploads 22% less, downloads 24% less, and a check downloads half as much.
    await run('mkfs.ext4', [...common, '-b', '1024', '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard', device]);
  } else {
    await run('mkfs.ext2', [...common, '-E', 'nodiscard', device]);
  }
  // A backup that refuses to mount because of a periodic check would fail at the worst moment.
  await run('tune2fs', ['-c', '0', '-i', '0', device]);
}

export type FsState = 'clean' | 'not clean' | 'errors';

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

export interface FsckResult {
  /** No errors were found, or all that were found are repaired. */
  clean: boolean;
  repaired: boolean;
  /** What e2fsck said: its findings, for the user. */
  output: string;
  /** Kept after a repair that changed something: what `check --undo-repair` replays. */
  undoFile?: string;
}

/**
 * `sshvault check`: a forced full check, `e2fsck -fn` (reads only) or, given
 * `repairUndo`, `e2fsck -fy` keeping its undo file there. Readahead on the
 * device goes off first: fsck reads scattered metadata, and readahead would
 * fetch the blocks around each one over the wire too (docs/design.md, "Filesystems"). With
 * the userspace engine the layers below the loop device read ahead on their
 * own, so there it changes little (44.3 instead of 44.4-44.8 MB for 130k inodes).
 */
export async function forcedCheck(device: string, repairUndo?: string): Promise<FsckResult> {
  await run('blockdev', ['--setra', '0', device]);
  // 1 and 2: errors found and corrected; 4: errors left uncorrected (always so with -n).
  const r = repairUndo ? await repairKeepingUndo(device, repairUndo) : await run('e2fsck', ['-fn', device], { okExitCodes: [1, 2, 4] });
  const output = [r.stdout, r.stderr].filter((t) => t.trim()).join('\n');
  return { clean: r.exitCode !== 4, repaired: r.exitCode === 1 || r.exitCode === 2, output, undoFile: repairUndo && r.exitCode !== 0 ? repairUndo : undefined };
}

export class FsLayer implements Layer {
  readonly name = 'fs';
  private mounted = false;
  /** The filesystem was not clean when opened: the run before was cut off and its last writes may be missing. */
  foundUnclean = false;

  constructor(
    private readonly mountpoint: string,
    private readonly fs: FsType,
    private readonly readOnly: boolean,
    private readonly notice: (message: string) => void,
    /** Where an unattended repair keeps its undo file while it is audited. */
    private readonly repairUndo: string,
  ) {}

  async open(device: string): Promise<string> {
    const state = await filesystemState(device);
    if (state !== 'clean') {
      this.foundUnclean = true;
      if (this.readOnly) {
        this.notice(`The vault's filesystem is ${state === 'errors' ? 'marked with errors' : 'not clean'}; mounting it read-only without repair.`);
      } else if (state === 'errors') {
        // The kernel found corruption, which the host can cause: what a repair would change is anyone's guess.
        throw new CheckFailedError(
          "the vault's filesystem is marked with errors (the kernel found damage), so nothing was written; run 'sshvault check' to see them and 'sshvault check --repair' to fix them",
        );
      } else {
        await repairAfterCrash(device, this.repairUndo, this.notice);
      }
    }
    await mkdir(this.mountpoint, { recursive: true, mode: 0o700 });
    // The image's content comes from the past or from a host we do not trust: no set-uid program or
    // device node in it may act on this machine.
    const opts = ['noatime', 'nosuid', 'nodev', ...(this.fs === 'ext4' ? ['noinit_itable'] : []), ...(this.readOnly ? ['ro'] : [])];
    await run('mount', ['-t', this.fs, '-o', opts.join(','), device, this.mountpoint]);
    this.mounted = true;
    return this.mountpoint;
  }

  async alive(): Promise<boolean> {
    return this.mounted && (await isMounted(this.mountpoint));
  }

  /** Pushes everything written so far down the stack, so the traffic of a phase is all counted in it. */
  async flush(): Promise<void> {
    if (this.mounted) await run('sync', ['-f', this.mountpoint]);
  }

  async close(): Promise<void> {
    if (this.mounted) await unmount(this.mountpoint);
    this.mounted = false;
  }

  static async findLeftovers(mountpoint: string): Promise<Leftover[]> {
    const out: Leftover[] = [];
    // A killed run's rsync can outlive it (it runs in its own process group) and would keep the mount busy.
    for (const p of await findProcesses((a) => a[0].endsWith('rsync') && a.some((x) => x.startsWith(`${mountpoint}/`)))) {
      out.push({ layer: 'fs', what: `rsync (pid ${p.pid})`, teardown: () => stopProcess(p.pid, 5000) });
    }
    if (await isMounted(mountpoint)) {
      out.push({ layer: 'fs', what: `filesystem mount ${mountpoint}`, teardown: () => unmount(mountpoint) });
    }
    return out;
  }
}

async function unmount(mountpoint: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    try {
      await run('umount', [mountpoint], { timeoutMs: 120_000 });
      return;
    } catch {
      if (!(await isMounted(mountpoint))) return;
      await new Promise((r) => setTimeout(r, 300 * (i + 1)));
    }
  }
  // Busy or its device gone: detach it so the layers below can still be closed.
  await run('umount', ['-l', mountpoint]);
}
