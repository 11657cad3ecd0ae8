import { run } from '../../exec.js';
import type { Layer, Leftover, LeftoverContext } from '../layer.js';
import { isMounted } from './mounts.js';

/** Browsing never writes, and what it shows must not act on this machine (set-uid programs, device nodes). */
const BROWSE_FLAGS = 'ro,nosuid,nodev,noatime';

/**
 * The top of a `mount` stack: the snapshots directory (or one snapshot) of
 * the mounted filesystem, bound read-only where the user asked for it.
 */
export class BindLayer implements Layer {
  readonly name = 'bind';
  private mounted = false;

  constructor(private readonly target: string) {}

  async open(source: string): Promise<string> {
    await run('mount', ['--bind', source, this.target]);
    // `mount --bind -o` ignores per-mount flags on some util-linux versions; a remount always applies them.
    try {
      await run('mount', ['-o', `remount,bind,${BROWSE_FLAGS}`, this.target]);
    } catch (e) {
      await unbind(this.target);
      throw e;
    }
    this.mounted = true;
    return this.target;
  }

  async alive(): Promise<boolean> {
    return this.mounted && (await isMounted(this.target));
  }

  async close(): Promise<void> {
    if (this.mounted) await unbind(this.target);
    this.mounted = false;
  }

  /** The user's mountpoint is not among the vault's paths: only a mount record names it. */
  static async findLeftovers(ctx: LeftoverContext): Promise<Leftover[]> {
    const target = ctx.mountpoint;
    if (!target || !(await isMounted(target))) return [];
    return [{ layer: 'bind', what: `snapshot mount ${target}`, teardown: () => unbind(target) }];
  }
}

async function unbind(target: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    try {
      await run('umount', [target]);
      return;
    } catch {
      if (!(await isMounted(target))) return;
      await new Promise((r) => setTimeout(r, 300 * (i + 1)));
    }
  }
  // Still in use (a shell inside it): detach it, so the layers below can close; its users see it empty.
  await run('umount', ['-l', target]);
}
