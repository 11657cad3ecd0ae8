import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn, type Child } from '../exec.js';
import { unmountFuse } from './mount/fuse.js';
import type { Layer, Leftover, LeftoverContext } from './layer.js';
import { findProcesses, isMounted, stopProcess, waitUntil } from './mount/mounts.js';

const CONNECTIONS = 4;

/**
 * The ciphertext image, as the image cache serves it over NBD, exposed as a
 * file by nbdfuse for the kernel engine's loop device (docs/design.md, "The
 * block path"): nothing here decrypts, so dm-crypt above reads the image
 * through the block cache instead of through sshfs.
 */
export class NbdFuseLayer implements Layer {
  readonly name = 'nbdfuse';
  private fuse: Child | undefined;

  constructor(
    private readonly mountDir: string,
    private readonly readOnly: boolean,
  ) {}

  async open(socket: string): Promise<string> {
    await mkdir(this.mountDir, { recursive: true, mode: 0o700 });
    const disk = join(this.mountDir, 'image');
    const fuse = spawn('nbdfuse', ['-C', String(CONNECTIONS), ...(this.readOnly ? ['-r'] : []), disk, '--unix', socket]);
    this.fuse = fuse;
    await waitUntil(async () => !fuse.running() || (await isMounted(this.mountDir)), 30_000);
    if (!(await isMounted(this.mountDir))) {
      throw new Error(`nbdfuse could not expose the image: ${fuse.stderr().trim().split('\n').pop() || 'timed out'}`);
    }
    return disk;
  }

  async alive(): Promise<boolean> {
    return !!this.fuse?.running() && (await isMounted(this.mountDir));
  }

  async close(): Promise<void> {
    await unmountFuse(this.mountDir, this.fuse, 60_000);
  }

  static async findLeftovers(ctx: LeftoverContext): Promise<Leftover[]> {
    const { cipherMount } = ctx.paths;
    const fuses = await findProcesses((a) => a[0].endsWith('nbdfuse') && a.includes(join(cipherMount, 'image')));
    if (!(await isMounted(cipherMount)) && !fuses.length) return [];
    return [
      {
        layer: 'nbdfuse',
        what: `nbdfuse mount ${cipherMount}`,
        teardown: async () => {
          await unmountFuse(cipherMount, undefined, 10_000);
          for (const p of fuses) await stopProcess(p.pid, 3000);
        },
      },
    ];
  }
}
