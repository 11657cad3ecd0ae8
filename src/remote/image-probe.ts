import { randomBytes } from 'node:crypto';
import type { SFTPWrapper } from 'ssh2';
import { UsageError } from '../errors.js';
import { call, readInto, stat, writeRange } from './sftp.js';

const PROBE = 4096;

function cannot(what: string, cause?: unknown): UsageError {
  return new UsageError(`the SFTP server ${what}, so it cannot hold a vault image; use another server (README: Remote servers)`, { cause });
}

/**
 * A vault needs a server that keeps a file's size and keeps data written at
 * any offset across a close and a reopen for writing. Some do not (rclone
 * serve sftp ignores the size of a new file and truncates a file opened for
 * writing): this finds out right after init created the image, before
 * anything is formatted on it, and puts back the zeros it overwrote.
 */
export async function probeImage(sftp: SFTPWrapper, path: string, size: number): Promise<void> {
  const sizeNow = async () => (await stat(sftp, path))?.size;
  const created = await sizeNow();
  if (created !== size) throw cannot(`does not keep the size set on a new file (asked for ${size} bytes, it has ${created ?? 'no file'})`);
  const offsets = [size - 16 * PROBE, Math.floor(size / 2 / PROBE) * PROBE];
  const data = offsets.map(() => randomBytes(PROBE));
  for (const [i, at] of offsets.entries()) {
    await writeRange(sftp, path, at, data[i]!).catch((e: Error) => {
      throw cannot(`refuses a write at an offset (${e.message})`, e);
    });
  }
  // Read back through a handle opened for writing, as the userspace engine opens the image.
  const kept = async () => {
    const handle = await call<Buffer>((cb) => sftp.open(path, 'r+', cb));
    try {
      for (const [i, at] of offsets.entries()) {
        const got = Buffer.alloc(PROBE);
        if ((await readInto(sftp, handle, got, 0, PROBE, at)) < PROBE || !got.equals(data[i]!)) return false;
      }
      return true;
    } finally {
      await call<void>((cb) => sftp.close(handle, cb));
    }
  };
  if (!(await kept())) throw cannot('does not keep data written at an offset after a reopen');
  for (const at of offsets) await writeRange(sftp, path, at, Buffer.alloc(PROBE));
  const after = await sizeNow();
  if (after !== size) throw cannot(`does not keep a file's size when it is opened for writing (${size} bytes became ${after ?? 'no file'})`);
}
