import { describe, expect, it } from 'vitest';
import { LocalHeader } from '../../src/stack/local-header.js';
import type { BlockBackend } from '../../src/stack/block/nbd-server.js';

/** An image whose bytes are all 0xee, recording every read and write that reaches it. */
function image(size: number) {
  const reads: [number, number][] = [];
  const writes: [number, number][] = [];
  const backend: BlockBackend = {
    size,
    readOnly: false,
    async read(offset, length) {
      reads.push([offset, length]);
      return Buffer.alloc(length, 0xee);
    },
    async write(offset, data) {
      writes.push([offset, data.length]);
    },
    async flush() {},
  };
  return { backend, reads, writes };
}

describe('LocalHeader', () => {
  const header = Buffer.alloc(4096, 0x11);

  it('answers reads inside the header area from the local copy alone', async () => {
    const img = image(1 << 20);
    const got = await new LocalHeader(img.backend, header).read(512, 1024);
    expect(got.equals(Buffer.alloc(1024, 0x11))).toBe(true);
    expect(img.reads).toEqual([]);
  });

  it('splits a read across the end of the header area', async () => {
    const img = image(1 << 20);
    const got = await new LocalHeader(img.backend, header).read(4096 - 512, 1024);
    expect(got.equals(Buffer.concat([Buffer.alloc(512, 0x11), Buffer.alloc(512, 0xee)]))).toBe(true);
    expect(img.reads).toEqual([[4096, 512]]);
  });

  it('passes reads and writes beyond the header area through', async () => {
    const img = image(1 << 20);
    const lh = new LocalHeader(img.backend, header);
    expect((await lh.read(8192, 512)).equals(Buffer.alloc(512, 0xee))).toBe(true);
    await lh.write(4096, Buffer.alloc(512));
    expect(img.reads).toEqual([[8192, 512]]);
    expect(img.writes).toEqual([[4096, 512]]);
  });

  it('refuses any write that touches the header area', async () => {
    const img = image(1 << 20);
    const lh = new LocalHeader(img.backend, header);
    await expect(lh.write(0, Buffer.alloc(512))).rejects.toThrow(/LUKS header area/);
    await expect(lh.write(4096 - 512, Buffer.alloc(1024))).rejects.toThrow(/LUKS header area/);
    expect(img.writes).toEqual([]);
  });
});
