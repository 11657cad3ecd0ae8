import { run } from '../exec.js';
import type { Layer, Leftover, LeftoverContext } from './layer.js';
import { baseName } from './mount/mounts.js';

interface LoopInfo {
  name: string;
  'back-file': string | null;
}

async function loopDevices(): Promise<LoopInfo[]> {
  const { stdout } = await run('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE']);
  if (!stdout.trim()) return [];
  return (JSON.parse(stdout) as { loopdevices: LoopInfo[] }).loopdevices;
}

/** Attaches a file (the image, or the decrypted file nbdfuse exposes) as a block device. */
export class LoopLayer implements Layer {
  readonly name = 'loop';
  private device: string | undefined;

  constructor(
    private readonly readOnly: boolean,
    private readonly directIo = false,
  ) {}

  async open(file: string): Promise<string> {
    const flags = [...(this.readOnly ? ['--read-only'] : []), ...(this.directIo ? ['--direct-io=on'] : [])];
    const { stdout } = await run('losetup', ['--find', '--show', ...flags, file]);
    this.device = stdout.trim();
    // Readahead off: the filesystem reads scattered metadata, and readahead would fetch
    // the blocks around each one over the wire too (bench/traffic: less download on open and check).
    await run('blockdev', ['--setra', '0', this.device]);
    return this.device;
  }

  async alive(): Promise<boolean> {
    if (!this.device) return false;
    return (await loopDevices()).some((l) => l.name === this.device);
  }

  async close(): Promise<void> {
    if (this.device) await detach(this.device);
  }

  /**
   * Loop devices whose backing file lies in this vault's private run
   * directory, and those a dead run recorded in stack.json: once the FUSE
   * mount below is gone the kernel shows only the file's name (`/vault.img`),
   * so a recorded device counts if its backing file still has that name.
   */
  static async findLeftovers(ctx: LeftoverContext): Promise<Leftover[]> {
    const runDir = ctx.paths.run;
    const recorded = (ctx.previous?.opened ?? []).filter((o) => o.layer === 'loop').map((o) => ({ device: o.gave, backing: o.on }));
    const isOurs = (l: LoopInfo) => {
      const back = l['back-file'] ?? '';
      if (back.startsWith(`${runDir}/`)) return true;
      return recorded.some((r) => r.device === l.name && r.backing.startsWith(`${runDir}/`) && back.endsWith(`/${baseName(r.backing)}`));
    };
    return (await loopDevices())
      .filter(isOurs)
      .map((l) => ({ layer: 'loop', what: `loop device ${l.name} (${l['back-file']})`, teardown: () => detach(l.name) }));
  }
}

async function detach(device: string): Promise<void> {
  // The kernel may hold the device for a moment after the filesystem above is unmounted.
  for (let i = 0; ; i++) {
    try {
      await run('losetup', ['--detach', device]);
      return;
    } catch (e) {
      if (i >= 10) throw e;
      await new Promise((r) => setTimeout(r, 200 * (i + 1)));
    }
  }
}
