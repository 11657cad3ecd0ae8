import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockCache, CHUNK_UNITS, UNIT } from '../../src/stack/block/block-cache.js';
import { proveCache, SAMPLE_UNITS } from '../../src/stack/block/cache-proof.js';
import type { RemoteImage } from '../../src/stack/block/cached-image.js';

const SIZE = 4 << 20;
/** A LUKS1 payload at 1 MiB: the superblock's ciphertext is at 1 MiB + 1 KiB. */
const PAYLOAD = 1 << 20;
/** ext's superblock and first group descriptors, as ext.ts names them. */
const EXT_SUPERBLOCK = { from: 1024, to: 3072 };

/** The remote image as bytes in memory, counting what is read back. */
class Remote implements RemoteImage {
  readonly size = SIZE;
  readonly bytes = Buffer.alloc(SIZE);
  readBytes = 0;

  constructor() {
    for (let i = 0; i < SIZE; i++) this.bytes[i] = (i * 13 + (i >> 10)) & 0xff;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.readBytes += length;
    return Buffer.from(this.bytes.subarray(offset, offset + length));
  }

  async write(): Promise<void> {}
  async flush(): Promise<void> {}
}

describe('proveCache', () => {
  let dir: string;
  let remote: Remote;
  let cache: BlockCache;
  const seq = (values: number[]) => {
    let i = 0;
    return () => values[i++ % values.length]!;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sshvault-proof-'));
    remote = new Remote();
    cache = BlockCache.open(dir, SIZE, undefined, 1 << 20);
    // What a run left: the header, the superblock area, and metadata further in, all as the remote has them.
    for (const [at, n] of [[0, 64 * UNIT], [PAYLOAD, 64 * UNIT], [PAYLOAD + 200 * UNIT, 64 * UNIT]] as const) cache.store(at, remote.bytes.subarray(at, at + n));
  });

  afterEach(() => {
    cache.discard();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a cache equal to the remote proves itself, reading back only a few KiB', async () => {
    const proof = await proveCache(remote, cache, PAYLOAD, EXT_SUPERBLOCK, seq([0.1, 0.5, 0.9, 0.3]));
    expect(proof).toMatchObject({ ok: true, differing: 0, unprovable: false });
    expect(proof.compared).toBeGreaterThanOrEqual(3);
    expect(remote.readBytes).toBe(proof.compared * UNIT);
    expect(remote.readBytes).toBeLessThanOrEqual((2 + SAMPLE_UNITS) * UNIT);
  });

  it('an older superblock on the remote (an image put back) fails it', async () => {
    remote.bytes[PAYLOAD + 1024 + 40] ^= 0xff;
    const proof = await proveCache(remote, cache, PAYLOAD, EXT_SUPERBLOCK, seq([0.7]));
    expect(proof).toMatchObject({ ok: false, differing: 1, unprovable: false });
  });

  it('the group descriptors count too', async () => {
    remote.bytes[PAYLOAD + 2048 + 7] ^= 0x01;
    expect((await proveCache(remote, cache, PAYLOAD, EXT_SUPERBLOCK, seq([0.2]))).ok).toBe(false);
  });

  it('a sampled unit that differs fails it', async () => {
    // Only the far chunk can be sampled beyond the superblock's: make every unit of it differ.
    for (let i = 0; i < 64 * UNIT; i++) remote.bytes[PAYLOAD + 200 * UNIT + i] ^= 0x55;
    const proof = await proveCache(remote, cache, PAYLOAD, EXT_SUPERBLOCK, seq([0.99, 0.5]));
    expect(proof.ok).toBe(false);
    expect(proof.differing).toBeGreaterThanOrEqual(1);
  });

  it('never samples the LUKS header area, which the header check covers', () => {
    const units = cache.sampleUnits(50, PAYLOAD / UNIT, Math.random);
    expect(units.length).toBeGreaterThan(0);
    expect(units.every((u) => u >= PAYLOAD / UNIT)).toBe(true);
    expect(new Set(units).size).toBe(units.length);
  });

  it('a cache without the superblock area cannot prove itself, and reads nothing', async () => {
    cache.forget(PAYLOAD / UNIT, PAYLOAD / UNIT + CHUNK_UNITS);
    const proof = await proveCache(remote, cache, PAYLOAD, EXT_SUPERBLOCK);
    expect(proof).toMatchObject({ ok: false, unprovable: true, compared: 0 });
    expect(remote.readBytes).toBe(0);
  });
});

describe('what proves a cache is the filesystem\'s own superblock', () => {
  it('btrfs: the superblock at 64 KiB, which every commit rewrites; the ext area is not needed', async () => {
    const { BtrfsFilesystem } = await import('../../src/stack/filesystems/btrfs/btrfs.js');
    const { ExtFilesystem } = await import('../../src/stack/filesystems/ext/ext.js');
    expect(new BtrfsFilesystem().rewrittenEveryRun).toEqual({ from: 65536, to: 69632 });
    expect(new ExtFilesystem('ext4').rewrittenEveryRun).toEqual(EXT_SUPERBLOCK);
  });
});
