import type { SFTPWrapper } from 'ssh2';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { probeImage } from '../../src/remote/image-probe.js';
import { createImage, PRIVATE_FILE } from '../../src/remote/sftp.js';

type Cb<T = void> = (err: (Error & { code?: number }) | null, v?: T) => void;

/**
 * An SFTP server in memory, with the faults of servers that cannot hold an
 * image (as `rclone serve sftp` showed them): it ignores the size set on a new
 * file, keeps only data written in sequence from the start, or truncates a
 * file opened for reading and writing.
 */
class MemorySftp {
  files = new Map<string, Buffer>();
  private handles = new Map<string, string>();
  /** Where each handle's sequential writes are: the only place a sequentialOnly server writes. */
  private cursors = new Map<string, number>();
  private next = 0;

  constructor(private readonly faults: { ignoreSize?: boolean; sequentialOnly?: boolean; truncateOnReadWrite?: boolean } = {}) {}

  private file(handle: Buffer): [string, Buffer] {
    const path = this.handles.get(handle.toString())!;
    return [path, this.files.get(path)!];
  }

  stat(path: string, cb: Cb<{ size: number; isDirectory(): boolean }>): void {
    const f = this.files.get(path);
    if (!f) return cb(Object.assign(new Error('No such file'), { code: 2 }));
    cb(null, { size: f.length, isDirectory: () => false });
  }

  open(path: string, flags: string, attrs: unknown, cb?: Cb<Buffer>): void {
    const done = (cb ?? attrs) as Cb<Buffer>;
    if (flags === 'wx') {
      if (this.files.has(path)) return done(Object.assign(new Error('Failure'), { code: 4 }));
      this.files.set(path, Buffer.alloc(0));
    } else if (!this.files.has(path)) return done(Object.assign(new Error('No such file'), { code: 2 }));
    if (flags === 'r+' && this.faults.truncateOnReadWrite) this.files.set(path, Buffer.alloc(0));
    const handle = Buffer.from(String(this.next++));
    this.handles.set(handle.toString(), path);
    done(null, handle);
  }

  fsetstat(handle: Buffer, attrs: { size?: number }, cb: Cb): void {
    const [path, f] = this.file(handle);
    if (attrs.size !== undefined && !this.faults.ignoreSize) {
      const g = Buffer.alloc(attrs.size);
      f.copy(g, 0, 0, Math.min(f.length, attrs.size));
      this.files.set(path, g);
    }
    cb(null);
  }

  write(handle: Buffer, buf: Buffer, off: number, len: number, pos: number, cb: Cb): void {
    const [path, f] = this.file(handle);
    if (this.faults.sequentialOnly) {
      if (pos !== (this.cursors.get(handle.toString()) ?? 0)) return cb(null);
      this.cursors.set(handle.toString(), pos + len);
    }
    const g = Buffer.alloc(Math.max(f.length, pos + len));
    f.copy(g);
    buf.copy(g, pos, off, off + len);
    this.files.set(path, g);
    cb(null);
  }

  read(handle: Buffer, buf: Buffer, off: number, len: number, pos: number, cb: Cb<number>): void {
    const [, f] = this.file(handle);
    cb(null, pos >= f.length ? 0 : f.copy(buf, off, pos, Math.min(f.length, pos + len)));
  }

  close(handle: Buffer, cb: Cb): void {
    this.handles.delete(handle.toString());
    cb(null);
  }
}

const SIZE = 1 << 20;

async function createAndProbe(server: MemorySftp): Promise<void> {
  const sftp = server as unknown as SFTPWrapper;
  await createImage(sftp, '/v/vault.img', SIZE, { mode: PRIVATE_FILE, preallocate: false });
  await probeImage(sftp, '/v/vault.img', SIZE);
}

describe('probeImage', () => {
  it('passes a server that keeps size and data, and leaves the image all zeros', async () => {
    const server = new MemorySftp();
    await createAndProbe(server);
    expect(server.files.get('/v/vault.img')!.equals(Buffer.alloc(SIZE))).toBe(true);
  });

  it('a server that ignores the size of a new file: exit 2, naming that', async () => {
    const e = await createAndProbe(new MemorySftp({ ignoreSize: true })).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).exitCode).toBe(2);
    expect((e as Error).message).toMatch(/does not keep the size set on a new file/);
  });

  it('a server that loses data written at an offset: exit 2, naming that', async () => {
    const server = new MemorySftp({ sequentialOnly: true });
    const e = await createAndProbe(server).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect((e as Error).message).toMatch(/does not keep data written at an offset after a reopen/);
  });

  it('a server that truncates a file opened for writing: exit 2', async () => {
    const e = await createAndProbe(new MemorySftp({ truncateOnReadWrite: true })).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect((e as Error).message).toMatch(/does not keep data written at an offset after a reopen/);
  });
});
