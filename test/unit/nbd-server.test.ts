import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NbdServer, type BlockBackend } from '../../src/stack/block/nbd-server.js';

/** The protocol against real clients: qemu's (what the userspace engine uses) and libnbd's. */
class Memory implements BlockBackend {
  readonly bytes: Buffer;
  flushes = 0;
  /** Writes and flushes as the backend saw them, in order. */
  events: string[] = [];
  constructor(
    readonly size: number,
    readonly readOnly = false,
  ) {
    this.bytes = Buffer.alloc(size);
  }
  async read(offset: number, length: number): Promise<Buffer> {
    return Buffer.from(this.bytes.subarray(offset, offset + length));
  }
  async write(offset: number, data: Buffer): Promise<void> {
    data.copy(this.bytes, offset);
    this.events.push(`write ${offset}`);
  }
  async flush(): Promise<void> {
    this.flushes++;
    this.events.push('flush');
  }
}

describe('NbdServer', () => {
  let dir: string;
  let server: NbdServer | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sv-nbd-'));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function serve(backend: BlockBackend): Promise<string> {
    server = new NbdServer(backend);
    const socket = join(dir, 'nbd.sock');
    await server.listen(socket);
    return `nbd+unix:///?socket=${socket}`;
  }

  it('serves writes, reads and flushes to qemu-io', async () => {
    const mem = new Memory(8 << 20);
    const uri = await serve(mem);
    const r = await execa('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 0xab 4096 1M', '-c', 'read -P 0xab 4096 1M', '-c', 'flush', '-c', 'read -P 0 0 4096']);
    expect(r.stdout).not.toMatch(/Pattern verification failed|error/i);
    expect(mem.bytes.subarray(4096, 4096 + (1 << 20)).every((b) => b === 0xab)).toBe(true);
    expect(mem.bytes[4095]).toBe(0);
    expect(mem.flushes).toBeGreaterThan(0);
  });

  it('tells libnbd the size and that a read-only export is read-only', async () => {
    const uri = await serve(new Memory(3 << 20, true));
    const info = JSON.parse((await execa('nbdinfo', ['--json', uri])).stdout) as { exports: { 'export-size': number; is_read_only: boolean }[] };
    expect(info.exports[0]!['export-size']).toBe(3 << 20);
    expect(info.exports[0]!.is_read_only).toBe(true);
  });

  it('offers FUA, and answers a FUA write only once the backend flushed it', async () => {
    const mem = new Memory(1 << 20);
    const uri = await serve(mem);
    const info = JSON.parse((await execa('nbdinfo', ['--json', uri])).stdout) as { exports: { can_fua: boolean; can_flush: boolean }[] };
    expect(info.exports[0]!.can_fua).toBe(true);
    expect(info.exports[0]!.can_flush).toBe(true);
    mem.events = [];
    await execa('qemu-io', ['-f', 'raw', uri, '-c', 'write -f -P 0xcd 8192 4k']);
    // qemu-io flushes once more as it closes.
    expect(mem.events.slice(0, 2)).toEqual(['write 8192', 'flush']);
  });

  it('refuses writes to a read-only export without touching it', async () => {
    const mem = new Memory(1 << 20, true);
    const uri = await serve(mem);
    const r = await execa('qemu-io', ['-f', 'raw', '-r', uri, '-c', 'read -P 0 0 64k']);
    expect(r.stdout).not.toMatch(/failed/i);
    const w = await execa('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 1 0 4k'], { reject: false });
    expect(`${w.stdout}${w.stderr}`).toMatch(/read-only|Operation not permitted|permission/i);
    expect(mem.bytes.every((b) => b === 0)).toBe(true);
  });

  it('closes while a client is still connected', async () => {
    const uri = await serve(new Memory(1 << 20));
    const client = execa('qemu-io', ['-f', 'raw', uri], { reject: false, buffer: false, stdin: 'pipe' });
    await new Promise((r) => setTimeout(r, 300));
    await server!.close();
    server = undefined;
    client.kill();
    await client;
  });

  it('answers a failing backend with an error and records it', async () => {
    const mem = new Memory(1 << 20);
    mem.read = async () => {
      throw new Error('remote gone');
    };
    const uri = await serve(mem);
    const r = await execa('qemu-io', ['-f', 'raw', uri, '-c', 'read 0 4k'], { reject: false });
    expect(`${r.stdout}${r.stderr}`).toMatch(/Input\/output error/);
    expect(server!.failure?.message).toBe('remote gone');
  });
});
