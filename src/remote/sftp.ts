import type { SFTPWrapper, Stats } from 'ssh2';
import { LinkError } from '../errors.js';
import { sanitize } from '../ui/sanitize.js';

/**
 * Control operations over SFTP only, so SFTP-only storage boxes work
 * (docs/design.md, "Transport and metering"). ssh2 reports SFTP status codes as `code` on its errors.
 */
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;

type SftpError = Error & { code?: number };

function isStatus(e: unknown, code: number): boolean {
  return (e as SftpError)?.code === code;
}

/**
 * Modes for everything sshvault creates on the remote, sent with every
 * create: some servers (ProFTPD) apply what the client sends as it is, and
 * ssh2's default is 0666.
 */
export const PRIVATE_FILE = 0o600;
export const PRIVATE_DIR = 0o700;

function isNoSuchFile(e: unknown): boolean {
  return isStatus(e, NO_SUCH_FILE);
}

export function call<T>(fn: (cb: (err: SftpError | null | undefined, v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

/** Turns a permission problem into the message a user can act on; other errors pass through. */
export function explain(e: unknown, path: string, doing: string): Error {
  if (isStatus(e, PERMISSION_DENIED)) {
    return new LinkError(`permission denied on the remote while ${doing} ${path}; make the directory writable for the SSH user`, { cause: e });
  }
  return e as Error;
}

export async function stat(sftp: SFTPWrapper, path: string): Promise<Stats | undefined> {
  try {
    return await call<Stats>((cb) => sftp.stat(path, cb));
  } catch (e) {
    if (isNoSuchFile(e)) return undefined;
    throw explain(e, path, 'reading');
  }
}

/** Adds each directory it makes to `made`, outermost first, as it goes: a failure halfway still says what was made. */
export async function mkdirp(sftp: SFTPWrapper, dir: string, mode: number, made: string[]): Promise<void> {
  const absolute = dir.startsWith('/');
  const parts = dir.split('/').filter(Boolean);
  let path = absolute ? '' : '.';
  for (const part of parts) {
    path = `${path}/${part}`;
    const st = await stat(sftp, path);
    if (st?.isDirectory()) continue;
    if (st) throw new LinkError(`remote path ${path} exists and is not a directory`);
    try {
      await call<void>((cb) => sftp.mkdir(path, { mode }, cb));
    } catch (e) {
      throw explain(e, path, 'creating');
    }
    made.push(path);
  }
}

/** Atomic on the server: fails if the directory already exists, which is what the lock relies on. */
export async function mkdirExclusive(sftp: SFTPWrapper, path: string, mode: number): Promise<boolean> {
  try {
    await call<void>((cb) => sftp.mkdir(path, { mode }, cb));
    return true;
  } catch (e) {
    if (isStatus(e, PERMISSION_DENIED)) throw explain(e, path, 'creating');
    if (await stat(sftp, path)) return false;
    // A read-only or full remote filesystem answers with a bare "failure"; the text is the server's.
    throw new LinkError(`cannot create ${path} on the remote (${sanitize((e as Error).message)}); make the remote directory writable`, { cause: e });
  }
}

/** Plain SFTP rename: the server refuses it when `to` exists, which the lock relies on. */
export async function rename(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  await call<void>((cb) => sftp.rename(from, to, cb));
}

/** Empty when the directory does not exist. */
export async function readdirNames(sftp: SFTPWrapper, dir: string): Promise<string[]> {
  try {
    const entries = await call<{ filename: string }[]>((cb) => sftp.readdir(dir, cb as never));
    return entries.map((e) => e.filename);
  } catch (e) {
    if (isNoSuchFile(e)) return [];
    throw e;
  }
}

export async function rmdir(sftp: SFTPWrapper, path: string): Promise<void> {
  await call<void>((cb) => sftp.rmdir(path, cb));
}

export async function unlink(sftp: SFTPWrapper, path: string): Promise<void> {
  try {
    await call<void>((cb) => sftp.unlink(path, cb));
  } catch (e) {
    if (!isNoSuchFile(e)) throw e;
  }
}

export async function readFile(sftp: SFTPWrapper, path: string): Promise<Buffer | undefined> {
  try {
    return await call<Buffer>((cb) => sftp.readFile(path, cb as never));
  } catch (e) {
    if (isNoSuchFile(e)) return undefined;
    throw explain(e, path, 'reading');
  }
}

export async function writeFile(sftp: SFTPWrapper, path: string, data: string | Buffer, mode: number): Promise<void> {
  try {
    await call<void>((cb) => sftp.writeFile(path, data, { mode }, cb));
  } catch (e) {
    throw explain(e, path, 'writing');
  }
}

/** Fills buf[at, at + length) from `position` of an open file; fewer bytes only at the end of the file. Returns how many. */
export async function readInto(sftp: SFTPWrapper, handle: Buffer, buf: Buffer, at: number, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const n = await call<number>((cb) => sftp.read(handle, buf, at + got, length - got, position + got, cb as never));
    if (n === 0) break;
    got += n;
  }
  return got;
}

export async function readRange(sftp: SFTPWrapper, path: string, offset: number, length: number): Promise<Buffer> {
  const handle = await call<Buffer>((cb) => sftp.open(path, 'r', cb));
  try {
    const buf = Buffer.alloc(length);
    return buf.subarray(0, await readInto(sftp, handle, buf, 0, length, offset));
  } finally {
    await call<void>((cb) => sftp.close(handle, cb));
  }
}

/** Writes `data` at `offset` of an existing file, in pieces sent together. */
export async function writeRange(sftp: SFTPWrapper, path: string, offset: number, data: Buffer): Promise<void> {
  const handle = await call<Buffer>((cb) => sftp.open(path, 'r+', cb));
  try {
    const piece = 32 * 1024;
    const writes: Promise<void>[] = [];
    for (let at = 0; at < data.length; at += piece) {
      writes.push(call<void>((cb) => sftp.write(handle, data, at, Math.min(piece, data.length - at), offset + at, cb as never)));
    }
    await Promise.all(writes);
  } catch (e) {
    throw explain(e, path, 'writing');
  } finally {
    await call<void>((cb) => sftp.close(handle, cb));
  }
}

/** Free space where the server offers statvfs@openssh.com; undefined elsewhere. */
export async function freeBytes(sftp: SFTPWrapper, path: string): Promise<number | undefined> {
  try {
    // ssh2 keeps statvfs(2)'s own field names.
    const st = await call<{ f_bavail: number; f_frsize: number }>((cb) => sftp.ext_openssh_statvfs(path, cb as never));
    const free = Number(st.f_bavail) * Number(st.f_frsize);
    return Number.isFinite(free) ? free : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Creates the image file exclusively. Sparse by default (a truncate on the
 * server); with `preallocate` every byte is written, as the seeds did, so the
 * host's disk cannot run out under a half-written snapshot.
 */
export async function createImage(
  sftp: SFTPWrapper,
  path: string,
  size: number,
  /** `explain` turns a failure into what the user is told, asked before the half-made file is removed. */
  opts: { mode: number; preallocate: boolean; onProgress?: (written: number) => void; explain?: (e: unknown) => Promise<unknown> },
): Promise<void> {
  let handle: Buffer;
  try {
    handle = await call<Buffer>((cb) => sftp.open(path, 'wx', opts.mode, cb));
  } catch (e) {
    if (await stat(sftp, path)) throw new LinkError(`remote image ${path} already exists; pick another directory or remove it`, { cause: e });
    throw explain(e, path, 'creating');
  }
  try {
    if (opts.preallocate) {
      const chunk = Buffer.alloc(1 << 20);
      const inFlight = 8;
      let next = 0;
      const writeAt = (pos: number) =>
        call<void>((cb) => sftp.write(handle, chunk, 0, Math.min(chunk.length, size - pos), pos, cb as never));
      while (next < size) {
        const batch: Promise<void>[] = [];
        for (let i = 0; i < inFlight && next < size; i++, next += chunk.length) batch.push(writeAt(next));
        await Promise.all(batch);
        opts.onProgress?.(Math.min(next, size));
      }
    } else {
      await call<void>((cb) => sftp.fsetstat(handle, { size } as never, cb));
    }
  } catch (e) {
    const why = opts.explain ? await opts.explain(e) : e;
    await call<void>((cb) => sftp.close(handle, cb)).catch(() => {});
    await unlink(sftp, path).catch(() => {});
    throw why;
  }
  await call<void>((cb) => sftp.close(handle, cb));
}
