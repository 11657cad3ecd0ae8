import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { AuthError, CommandError } from '../errors.js';
import { run } from '../exec.js';
import { leftoverMappings } from './dm-name.js';
import type { Layer, Leftover, LeftoverContext } from './layer.js';

/**
 * The kernel LUKS engine (docs/design.md, "Layers and engines"): dm-crypt on the loop device of
 * the image file, the stack of the seeds. The key reaches cryptsetup on stdin.
 * The mapping's name (dm-name.ts) is unique per state directory.
 * With a header file (the local backup the remote header was checked
 * against), cryptsetup reads the key material from it, not from the remote.
 */
export class KernelLuksLayer implements Layer {
  readonly name = 'luks-kernel';
  private opened = false;

  constructor(
    private readonly mapping: string,
    private readonly passphrase: string,
    private readonly readOnly: boolean,
    private readonly headerFile?: string,
  ) {}

  async open(device: string): Promise<string> {
    try {
      await run('cryptsetup', ['open', '--type', 'luks1', ...(this.readOnly ? ['--readonly'] : []), ...(this.headerFile ? ['--header', this.headerFile] : []), '--key-file', '-', device, this.mapping], {
        input: this.passphrase,
      });
    } catch (e) {
      // cryptsetup exits 2 when no key slot accepts the passphrase.
      if (e instanceof CommandError && e.commandExitCode === 2) {
        throw new AuthError('wrong passphrase: no LUKS key slot of the vault opens with it; nothing was written', { cause: e });
      }
      throw e;
    }
    this.opened = true;
    return `/dev/mapper/${this.mapping}`;
  }

  async alive(): Promise<boolean> {
    return this.opened && existsSync(`/dev/mapper/${this.mapping}`);
  }

  async close(): Promise<void> {
    if (this.opened) await closeMapping(this.mapping);
  }

  static async findLeftovers(ctx: LeftoverContext): Promise<Leftover[]> {
    const existing = await readdir('/dev/mapper').catch(() => [] as string[]);
    return leftoverMappings(existing, ctx.vault, ctx.paths.state, ctx.previous).map((name) => ({
      layer: 'luks-kernel',
      what: `dm-crypt mapping /dev/mapper/${name}`,
      teardown: () => closeMapping(name),
    }));
  }
}

async function closeMapping(name: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await run('cryptsetup', ['close', name]);
      return;
    } catch {
      if (!existsSync(`/dev/mapper/${name}`)) return;
      // Busy for a moment after the filesystem above is unmounted; deferred removal as the last resort.
      if (i >= 10) {
        await run('cryptsetup', ['close', '--deferred', name]);
        return;
      }
      await new Promise((r) => setTimeout(r, 200 * (i + 1)));
    }
  }
}
