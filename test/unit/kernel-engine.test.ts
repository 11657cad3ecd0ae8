import { describe, expect, it } from 'vitest';
import { vaultPaths } from '../../src/config/paths.js';
import type { Connection } from '../../src/remote/connection.js';
import { ImageCacheLayer } from '../../src/stack/block/image-cache.js';
import type { BlockContext } from '../../src/stack/engines/engine.js';
import { kernelEngine } from '../../src/stack/engines/kernel.js';
import { userspaceEngine } from '../../src/stack/engines/userspace.js';
import { LoopLayer } from '../../src/stack/loop.js';
import { KernelLuksLayer } from '../../src/stack/luks-kernel.js';
import { NbdFuseLayer } from '../../src/stack/nbd-fuse.js';
import { leftoverFinders } from '../../src/stack/recovery.js';

function context(header?: Buffer): BlockContext {
  return {
    paths: vaultPaths('laptop'),
    vault: 'laptop',
    conn: {} as Connection,
    image: { remote: '/srv/backup/vault.img' },
    passphrase: 'pw',
    readOnly: false,
    header,
    generation: {},
    cacheBytes: 1 << 20,
    rewrittenEveryRun: { from: 1024, to: 3072 },
    command: 'push',
    notice: () => {},
  };
}

describe('the kernel engine block path', () => {
  it('stacks dm-crypt on a direct-I/O loop device of the ciphertext the image cache serves over NBD, not on the sshfs file', () => {
    const block = kernelEngine.blockStack(context(Buffer.alloc(4096)));
    expect(block.on).toBe('/srv/backup/vault.img');
    expect(block.layers.map((l) => l.name)).toEqual(['image-cache', 'nbdfuse', 'loop', 'luks-kernel']);
    expect(block.layers[0]).toBeInstanceOf(ImageCacheLayer);
    expect(block.layers[2]).toEqual(new LoopLayer(false, true));
    // The local header backup still holds the key material cryptsetup opens with.
    expect(block.layers[3]).toMatchObject({ headerFile: vaultPaths('laptop').headerBackup });
  });

  it('shares the image cache with the userspace engine', () => {
    expect(userspaceEngine.blockStack(context()).layers[0]).toBeInstanceOf(ImageCacheLayer);
  });

  it('recovery looks for every piece it stacks, dm-crypt first and nbdfuse below the loop device', () => {
    const kinds = leftoverFinders();
    const at = (k: object) => kinds.indexOf(k as never);
    expect(at(KernelLuksLayer)).toBeGreaterThan(0);
    expect(at(KernelLuksLayer)).toBeLessThan(at(LoopLayer));
    expect(at(LoopLayer)).toBeLessThan(at(NbdFuseLayer));
  });
});
