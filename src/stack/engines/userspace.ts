import { LoopLayer } from '../loop.js';
import { UserspaceLuksLayer } from '../luks-userspace.js';
import type { BlockContext, BlockStack, Engine, EngineProbe } from './engine.js';
import { imageCacheFor } from './image-cache-for.js';

/**
 * sshvault's own NBD server over an SFTP channel (with the block cache), qemu-nbd's
 * LUKS driver, nbdfuse and a loop device: needs no device-mapper, so it runs wherever
 * FUSE and loop devices do.
 */
export const userspaceEngine = {
  name: 'userspace',
  async probe(): Promise<EngineProbe> {
    return { ok: true, reason: "qemu-nbd's LUKS driver does the decryption" };
  },
  blockStack(ctx: BlockContext): BlockStack {
    const p = ctx.paths;
    return {
      // The image cache reads the image over its own SFTP channel, not through sshfs.
      on: ctx.image.remote,
      layers: [
        imageCacheFor(ctx),
        new UserspaceLuksLayer(p.run, p.nbdSocket, p.plainMount, ctx.passphrase, ctx.readOnly),
        // Direct I/O: the decrypted file is not cached a second time under the filesystem's own cache (bench/traffic throughput row).
        new LoopLayer(ctx.readOnly, true),
      ],
    };
  },
  layerKinds: [LoopLayer, UserspaceLuksLayer],
} satisfies Engine;
