import { mkdir } from 'node:fs/promises';
import { run } from '../exec.js';
import { DataRangeWatch } from './data-range-watch.js';
import type { ByteRange, Filesystem } from './filesystems/filesystem.js';
import type { Layer, Leftover } from './layer.js';
import { findProcesses, isMounted, stopProcess } from './mount/mounts.js';

/**
 * Readahead back on for `check --verify-data`, which reads whole files: with
 * it off (as it is for fsck and the layers' open) the kernel reads a file one
 * 4 KiB page per request, and every page pays a round trip down the block
 * path. The filesystem takes it from the device when it is mounted.
 */
export const VERIFY_READAHEAD_SECTORS = 2048;

export async function readaheadForWholeFiles(device: string): Promise<void> {
  await run('blockdev', ['--setra', String(VERIFY_READAHEAD_SECTORS), device]);
}

/** The vault's filesystem mounted, with the options of its kind (docs/design.md, "Filesystems"). */
export class FsLayer implements Layer {
  readonly name = 'fs';
  private mounted = false;
  private watch: DataRangeWatch | undefined;
  /** The filesystem was not clean when opened: the run before was cut off and its last writes may be missing. */
  foundUnclean = false;

  constructor(
    private readonly mountpoint: string,
    readonly fs: Filesystem,
    private readonly readOnly: boolean,
    private readonly notice: (message: string) => void,
    /** Where an unattended repair keeps its undo file while it is audited. */
    private readonly repairUndo: string,
    /** Told where file data lives, when the filesystem can say: what the block cache keeps out. */
    private readonly keepOut?: (ranges: ByteRange[]) => void,
  ) {}

  async open(device: string): Promise<string> {
    this.foundUnclean = await this.fs.prepare(device, { readOnly: this.readOnly, notice: this.notice, repairUndo: this.repairUndo });
    await mkdir(this.mountpoint, { recursive: true, mode: 0o700 });
    // The image's content comes from the past or from a host we do not trust: no set-uid program or
    // device node in it may act on this machine (every filesystem's options have nosuid and nodev).
    await run('mount', ['-t', this.fs.type, '-o', this.fs.mountOptions(this.readOnly).join(','), device, this.mountpoint]);
    this.mounted = true;
    const fileDataRanges = this.fs.fileDataRanges?.bind(this.fs);
    if (fileDataRanges && this.keepOut) {
      this.watch = new DataRangeWatch(() => fileDataRanges(device), this.keepOut);
      // Read-only, nothing allocates new chunks: one look is enough.
      this.watch.start(!this.readOnly);
    }
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
    await this.watch?.stop();
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
