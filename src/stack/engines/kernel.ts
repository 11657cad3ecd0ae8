import { CommandError } from '../../errors.js';
import { run } from '../../exec.js';
import { mappingName } from '../dm-name.js';
import { LoopLayer } from '../loop.js';
import { NbdFuseLayer } from '../nbd-fuse.js';
import { KernelLuksLayer } from '../luks-kernel.js';
import type { BlockContext, BlockStack, Engine, EngineProbe } from './engine.js';
import { imageCacheFor } from './image-cache-for.js';

/** What a probe command said: its first line of complaint, which names the cause ("open failed: No such device"). */
async function attempt(file: string, args: string[]): Promise<{ ok: boolean; stdout: string; words: string }> {
  try {
    return { ok: true, stdout: (await run(file, args)).stdout, words: '' };
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    const first = e.stderr.split('\n').map((l) => l.trim()).find(Boolean);
    return { ok: false, stdout: '', words: first ?? e.message };
  }
}

function listsCrypt(targets: string): boolean {
  return targets.split('\n').some((l) => l.trim().split(/\s+/)[0] === 'crypt');
}

/**
 * Whether dm-crypt can run here, found by asking the kernel, not by looking
 * for /dev/mapper/control: that node exists on machines whose kernel has no
 * device-mapper driver behind it.
 */
export async function deviceMapperStatus(): Promise<EngineProbe> {
  const version = await attempt('dmsetup', ['version']);
  if (!version.ok) {
    if (/could not start/.test(version.words)) {
      return { ok: false, reason: 'device-mapper cannot be probed: dmsetup is not installed (apt-get install dmsetup)' };
    }
    return { ok: false, reason: `the kernel has no device-mapper driver (dmsetup version: ${version.words})` };
  }
  if (listsCrypt((await attempt('dmsetup', ['targets'])).stdout)) return { ok: true, reason: 'device-mapper and dm-crypt are available' };
  const load = await attempt('modprobe', ['dm_crypt']);
  if (load.ok && listsCrypt((await attempt('dmsetup', ['targets'])).stdout)) {
    return { ok: true, reason: 'device-mapper and dm-crypt are available' };
  }
  return { ok: false, reason: `device-mapper works but the dm-crypt target is missing (modprobe dm_crypt: ${load.words || 'loaded, but no crypt target'})` };
}

/**
 * dm-crypt on a loop device of the ciphertext image, which nbdfuse exposes
 * from the image cache's NBD server: the same block path, block cache and
 * flushes as the userspace engine, with the kernel decrypting
 * (docs/design.md, "Layers and engines").
 */
export const kernelEngine = {
  name: 'kernel',
  probe: deviceMapperStatus,
  blockStack(ctx: BlockContext): BlockStack {
    // With the local header backup, cryptsetup takes the key material from it rather than from the remote.
    const headerFile = ctx.header ? ctx.paths.headerBackup : undefined;
    return {
      // The image cache reads the image over its own SFTP channel, not through sshfs.
      on: ctx.image.remote,
      layers: [
        imageCacheFor(ctx),
        new NbdFuseLayer(ctx.paths.cipherMount, ctx.readOnly),
        // Direct I/O: a flush from dm-crypt reaches nbdfuse, and so the remote, instead of stopping in the page cache.
        new LoopLayer(ctx.readOnly, true),
        new KernelLuksLayer(mappingName(ctx.vault, ctx.paths.state), ctx.passphrase, ctx.readOnly, headerFile),
      ],
    };
  },
  layerKinds: [KernelLuksLayer, LoopLayer, NbdFuseLayer],
} satisfies Engine;
