import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink, writeFile } from 'node:fs/promises';
import type { VaultPaths } from '../config/paths.js';
import { LockHeldError } from '../errors.js';
import { localProcesses, type ProcessFacts } from '../proc.js';

/** The process holding a run lock: its pid, and its start time so a reused pid is not taken for it. */
export interface RunLockHolder {
  pid: number;
  start?: number;
}

/**
 * What a lock file says about its holder. Files of older versions hold just
 * the pid; an empty or garbled file holds nobody, since this version never
 * lets a lock file exist without its content.
 */
export function parseHolder(text: string): RunLockHolder | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return { pid: v };
    if (v && typeof v === 'object' && Number.isInteger((v as RunLockHolder).pid) && (v as RunLockHolder).pid > 0) {
      const start = (v as RunLockHolder).start;
      return { pid: (v as RunLockHolder).pid, start: typeof start === 'number' ? start : undefined };
    }
  } catch {
    // Garbled: holds nobody.
  }
  return undefined;
}

/** Stale when nobody holds it, its pid is dead, or its pid now names a process started at another time. */
export function holderGone(holder: RunLockHolder | undefined, proc: ProcessFacts): boolean {
  if (!holder) return true;
  if (!proc.alive(holder.pid)) return true;
  if (holder.start === undefined) return false;
  const start = proc.start(holder.pid);
  return start !== undefined && start !== holder.start;
}

function isCode(e: unknown, code: string): boolean {
  return (e as NodeJS.ErrnoException).code === code;
}

/** The lock file's content with the inode it belongs to, read through one descriptor so the two agree. */
async function readLock(file: string): Promise<{ ino: number; holder: RunLockHolder | undefined } | undefined> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    if (isCode(e, 'ENOENT')) return undefined;
    throw e;
  }
  try {
    const ino = (await fh.stat()).ino;
    return { ino, holder: parseHolder(await fh.readFile('utf8')) };
  } finally {
    await fh.close();
  }
}

/** link() never replaces: false when `to` exists. */
async function linkNew(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (e) {
    if (isCode(e, 'EEXIST')) return false;
    throw e;
  }
}

/**
 * One run per vault on this host at a time. The lock file is made complete
 * in a temporary file and linked to its name, so it never exists without
 * its holder. A stale lock is replaced by renaming over it, but only by the
 * run that first claims that very file (by its inode, with another link):
 * two runs that both find the same stale lock cannot both replace it, and a
 * live run's lock is never judged stale.
 */
export class RunLock {
  private constructor(
    private readonly file: string,
    private readonly me: RunLockHolder,
  ) {}

  static async take(paths: VaultPaths, vault: string, proc: ProcessFacts = localProcesses): Promise<RunLock> {
    const file = paths.runLock;
    const me: RunLockHolder = { pid: process.pid, start: proc.start(process.pid) };
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
    await writeFile(tmp, JSON.stringify(me) + '\n', { mode: 0o600, flag: 'wx' });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        if (await linkNew(tmp, file)) return new RunLock(file, me);
        const found = await readLock(file);
        // Released meanwhile.
        if (!found) continue;
        if (!holderGone(found.holder, proc)) {
          throw new LockHeldError(`another sshvault run (pid ${found.holder!.pid}) is using vault '${vault}' on this host; wait for it to finish`);
        }
        if (await replaceStale(file, found.ino, tmp, proc)) return new RunLock(file, me);
      }
      throw new LockHeldError(`another sshvault run took vault '${vault}' on this host just now; try again`);
    } finally {
      await unlink(tmp).catch(() => {});
    }
  }

  /** Only while the file is still this run's. */
  async release(): Promise<void> {
    const found = await readLock(this.file);
    if (found?.holder?.pid === this.me.pid && found.holder.start === this.me.start) await unlink(this.file).catch(() => {});
  }
}

/**
 * Replaces the stale lock file with inode `ino` by `tmp`, if this run is the
 * first to claim it. A claim left by a run that died within those few
 * instructions is itself stale and removed, so the next attempt can claim.
 */
async function replaceStale(file: string, ino: number, tmp: string, proc: ProcessFacts): Promise<boolean> {
  const claim = `${file}.break-${ino}`;
  if (!(await linkNew(tmp, claim))) {
    const claimant = await readLock(claim);
    if (claimant && holderGone(claimant.holder, proc)) await unlink(claim).catch(() => {});
    return false;
  }
  try {
    // Only the claimant of `ino` replaces that file; the holder is checked again because inode numbers are reused.
    const now = await readLock(file);
    if (now?.ino !== ino || !holderGone(now.holder, proc)) return false;
    await rename(tmp, file);
    return true;
  } finally {
    await unlink(claim).catch(() => {});
  }
}
