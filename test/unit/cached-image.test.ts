import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockCache, CHUNK_UNITS, UNIT } from '../../src/stack/block/block-cache.js';
import { CachedImage, READ_FILL_MAX, type RemoteImage } from '../../src/stack/block/cached-image.js';

/** An image in memory that counts what crosses "the wire" and can hold reads back. */
class MemoryImage implements RemoteImage {
  readonly bytes: Buffer;
  readBytes = 0;
  writtenBytes = 0;
  flushes = 0;
  failWrites = false;
  private held: (() => void)[] | undefined;

  constructor(readonly size: number) {
    this.bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i++) this.bytes[i] = (i * 7) & 0xff;
  }

  holdReads(): void {
    this.held = [];
  }

  releaseReads(): void {
    const h = this.held ?? [];
    this.held = undefined;
    for (const r of h) r();
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const copy = Buffer.from(this.bytes.subarray(offset, offset + length));
    this.readBytes += length;
    if (this.held) await new Promise<void>((r) => this.held!.push(r));
    return copy;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    if (this.failWrites) {
      data.subarray(0, 512).copy(this.bytes, offset);
      throw new Error('link lost');
    }
    data.copy(this.bytes, offset);
    this.writtenBytes += data.length;
  }

  async flush(): Promise<void> {
    this.flushes++;
  }
}

const SIZE = 4 << 20;
const HEADER_END = 64 * UNIT;

describe('CachedImage', () => {
  let dir: string;
  let remote: MemoryImage;
  let cache: BlockCache;
  let image: CachedImage;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sv-cimg-'));
    remote = new MemoryImage(SIZE);
    cache = BlockCache.open(dir, SIZE, undefined, 1 << 20);
    image = new CachedImage(remote, cache, HEADER_END, false);
  });
  afterEach(() => {
    cache.discard();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a small range from the remote once, then from the cache', async () => {
    const first = await image.read(100 * UNIT + 512, 4096);
    expect(first.equals(remote.bytes.subarray(100 * UNIT + 512, 100 * UNIT + 512 + 4096))).toBe(true);
    const wire = remote.readBytes;
    expect(wire).toBe(5 * UNIT); // whole units, so they can be cached
    const again = await image.read(100 * UNIT + 512, 4096);
    expect(again.equals(first)).toBe(true);
    expect(remote.readBytes).toBe(wire);
    expect(image.counters.hitBytes).toBe(4096);
  });

  it('fetches only the units it lacks', async () => {
    await image.read(200 * UNIT, 2 * UNIT);
    remote.readBytes = 0;
    const got = await image.read(199 * UNIT, 4 * UNIT);
    expect(got.equals(remote.bytes.subarray(199 * UNIT, 203 * UNIT))).toBe(true);
    expect(remote.readBytes).toBe(2 * UNIT);
  });

  it('does not cache large reads outside the header (file data of a restore)', async () => {
    const at = 1 << 20;
    await image.read(at, READ_FILL_MAX + UNIT);
    remote.readBytes = 0;
    await image.read(at, UNIT);
    expect(remote.readBytes).toBe(UNIT);
  });

  it('caches large reads of the LUKS header and key material', async () => {
    await image.read(0, HEADER_END);
    remote.readBytes = 0;
    expect((await image.read(0, HEADER_END)).equals(remote.bytes.subarray(0, HEADER_END))).toBe(true);
    expect(remote.readBytes).toBe(0);
  });

  it('writes through to the remote and keeps what it wrote, whatever the size', async () => {
    const data = Buffer.alloc(256 * UNIT, 0xab);
    await image.write(300 * UNIT, data);
    expect(remote.bytes.subarray(300 * UNIT, 556 * UNIT).equals(data)).toBe(true);
    remote.readBytes = 0;
    expect((await image.read(400 * UNIT, 8 * UNIT)).equals(data.subarray(0, 8 * UNIT))).toBe(true);
    expect(remote.readBytes).toBe(0);
  });

  it('keeps cached units in step with a write that covers them in part', async () => {
    await image.read(10 * UNIT, 2 * UNIT);
    await image.write(10 * UNIT + 512, Buffer.alloc(512, 0xcd));
    remote.readBytes = 0;
    const got = await image.read(10 * UNIT, 2 * UNIT);
    expect(got.equals(remote.bytes.subarray(10 * UNIT, 12 * UNIT))).toBe(true);
    expect(remote.readBytes).toBe(0);
  });

  it('fails the next write and the flush after a write the remote failed, and forgets its range', async () => {
    await image.read(20 * UNIT, UNIT);
    remote.failWrites = true;
    await image.write(20 * UNIT, Buffer.alloc(UNIT, 0xee));
    await expect(image.flush()).rejects.toThrow('link lost');
    await expect(image.write(40 * UNIT, Buffer.alloc(UNIT))).rejects.toThrow('link lost');
    expect(cache.has(20)).toBe(false);
  });

  it('acknowledges writes before the remote answers, but a flush waits for every answer', async () => {
    let answer: (() => void) | undefined;
    const write = remote.write.bind(remote);
    remote.write = (offset, data) => new Promise<void>((r) => (answer = () => void write(offset, data).then(r)));
    await image.write(50 * UNIT, Buffer.alloc(UNIT, 0x11));
    let flushed = false;
    const flushing = image.flush().then(() => (flushed = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(flushed).toBe(false);
    answer!();
    await flushing;
    expect(remote.bytes[50 * UNIT]).toBe(0x11);
  });

  it('never caches what a fetch brought if a write to the same units landed meanwhile', async () => {
    remote.holdReads();
    const reading = image.read(30 * UNIT, UNIT);
    const fresh = Buffer.alloc(UNIT, 0x5a);
    await image.write(30 * UNIT, fresh);
    remote.releaseReads();
    await reading;
    remote.readBytes = 0;
    expect((await image.read(30 * UNIT, UNIT)).equals(fresh)).toBe(true);
  });

  it('drops a cache that fails (a full local disk) and goes on with the remote alone', async () => {
    await image.read(60 * UNIT, UNIT);
    cache.store = () => {
      throw new Error('ENOSPC: no space left on device');
    };
    const data = Buffer.alloc(2 * UNIT, 0x77);
    await image.write(60 * UNIT, data);
    await image.flush();
    expect(remote.bytes.subarray(60 * UNIT, 62 * UNIT).equals(data)).toBe(true);
    expect(image.cacheError?.message).toMatch(/ENOSPC/);
    remote.readBytes = 0;
    expect((await image.read(60 * UNIT, 2 * UNIT)).equals(data)).toBe(true);
    expect(remote.readBytes).toBe(2 * UNIT);
  });

  it('passes a flush to the remote', async () => {
    await image.flush();
    expect(remote.flushes).toBe(1);
  });

  it('without a cache, every read goes to the remote', async () => {
    const plain = new CachedImage(remote, undefined, HEADER_END, false);
    await plain.read(0, UNIT);
    await plain.read(0, UNIT);
    expect(remote.readBytes).toBe(2 * UNIT);
  });

  it('reads across chunk boundaries in one request', async () => {
    const at = (CHUNK_UNITS - 3) * UNIT;
    await image.write(at, Buffer.alloc(2 * UNIT, 1));
    const got = await image.read(at - UNIT, 6 * UNIT);
    expect(got.equals(remote.bytes.subarray(at - UNIT, at + 5 * UNIT))).toBe(true);
  });
});
