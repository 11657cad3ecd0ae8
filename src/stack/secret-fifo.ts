import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec.js';

const PREFIX = 'key-';
const POLL_MS = 20;

/**
 * For programs that read a secret only from a named file (qemu's
 * `secret,file=`, cryptsetup's new-key file): a FIFO in the 0700 run
 * directory, removed when `fn` is done. The secret passes through the kernel
 * and never lands on disk, so a crash leaves at most an empty FIFO, which
 * recovery removes.
 */
export async function withSecretFifo<T>(dir: string, fn: (path: string) => Promise<T>): Promise<T> {
  const path = join(dir, `${PREFIX}${randomBytes(6).toString('hex')}`);
  await run('mkfifo', ['-m', '600', path]);
  try {
    return await fn(path);
  } finally {
    await rm(path, { force: true });
  }
}

/**
 * Writes the secret into the FIFO once its reader has opened it. Opening
 * without blocking fails (ENXIO) until then, so a reader that dies first
 * (a wrong passphrase) cannot hang us: polling stops when it is gone.
 */
export async function handOver(fifo: string, secret: string, readerRunning: () => boolean): Promise<void> {
  while (readerRunning()) {
    const fh = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENXIO') return undefined;
      throw e;
    });
    if (fh) {
      try {
        await fh.writeFile(secret);
      } finally {
        await fh.close();
      }
      return;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Key FIFOs (or key files of older versions) that a killed run left in its run directory. */
export async function removeKeyLeftovers(dir: string): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith(PREFIX));
  for (const n of names) await rm(join(dir, n), { force: true });
  return names.map((n) => `key file ${join(dir, n)}`);
}
