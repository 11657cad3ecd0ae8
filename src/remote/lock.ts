import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { SFTPWrapper } from 'ssh2';
import { LockHeldError } from '../errors.js';
import { debug } from '../log.js';
import { mkdirExclusive, PRIVATE_DIR, PRIVATE_FILE, readdirNames, readFile, rename, rmdir, stat, unlink, writeFile } from './sftp.js';

/**
 * The remote lock of DESIGN section 4: sshfs has no file locks and two
 * writers destroy an ext image, so a run owns `<dir>/vault.lock/` holding
 * owner.json. It is made as `vault.lock.<run id>/` with owner.json inside and
 * renamed into place (SFTP rename never replaces): a link cut while taking
 * the lock cannot leave a lock without an owner.
 */
export interface LockOwner {
  host: string;
  pid: number;
  vaultId: string;
  started: string;
  runId: string;
  command: string;
}

function lockDir(remoteDir: string): string {
  return `${remoteDir.replace(/\/+$/, '')}/vault.lock`;
}

/** A zombie counts as dead: a SIGKILLed run stays one until its parent (or init) reaps it. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** A lock this host took for a process that no longer exists can only be a crash's leftover. */
function isStale(owner: LockOwner): boolean {
  return owner.host === hostname() && !pidAlive(owner.pid);
}

export function describeOwner(o: LockOwner): string {
  return `${o.command} by pid ${o.pid} on ${o.host}, started ${o.started}`;
}

async function readOwner(sftp: SFTPWrapper, dir: string): Promise<LockOwner | undefined> {
  const raw = await readFile(sftp, `${dir}/owner.json`);
  if (!raw) return undefined;
  try {
    return JSON.parse(raw.toString('utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

async function remove(sftp: SFTPWrapper, dir: string): Promise<void> {
  await unlink(sftp, `${dir}/owner.json`);
  await rmdir(sftp, dir);
}

export class RemoteLock {
  constructor(
    private readonly sftp: SFTPWrapper,
    readonly dir: string,
    readonly owner: LockOwner,
  ) {}

  async release(): Promise<void> {
    await remove(this.sftp, this.dir);
    debug(`released remote lock ${this.dir}`);
  }
}

export async function acquireLock(
  sftp: SFTPWrapper,
  remoteDir: string,
  owner: Omit<LockOwner, 'host' | 'pid' | 'started'>,
  notice: (message: string) => void,
): Promise<RemoteLock> {
  const dir = lockDir(remoteDir);
  const me: LockOwner = { host: hostname(), pid: process.pid, started: new Date().toISOString(), ...owner };
  for (let attempt = 0; attempt < 2; attempt++) {
    if (await takeWithOwner(sftp, dir, me)) {
      debug(`took remote lock ${dir}`);
      await sweepStaging(sftp, remoteDir, dir);
      return new RemoteLock(sftp, dir, me);
    }
    const holder = await readOwner(sftp, dir);
    if (!holder) {
      throw new LockHeldError(`the vault is locked (${dir} exists without an owner, perhaps a run died while taking it); if no other run is active, run 'sshvault unlock --force'`);
    }
    if (attempt === 0 && isStale(holder)) {
      notice(`Breaking a stale lock left by pid ${holder.pid} on this host (${holder.command}, started ${holder.started}).`);
      await remove(sftp, dir);
      continue;
    }
    throw new LockHeldError(`the vault is locked by ${describeOwner(holder)}; wait for it to finish, or if that run is dead, run 'sshvault unlock --force'`);
  }
  throw new LockHeldError(`another client took the lock at ${dir} while a stale one was being broken; try again`);
}

async function takeWithOwner(sftp: SFTPWrapper, dir: string, me: LockOwner): Promise<boolean> {
  const staging = `${dir}.${me.runId}`;
  try {
    if (!(await mkdirExclusive(sftp, staging, PRIVATE_DIR))) throw new Error(`the lock staging directory ${staging} already exists`);
    await writeFile(sftp, `${staging}/owner.json`, JSON.stringify(me) + '\n', PRIVATE_FILE);
    await rename(sftp, staging, dir);
    return true;
  } catch (e) {
    // The lock's holder may have swept the staging directory away already.
    await remove(sftp, staging).catch(() => {});
    if (await stat(sftp, dir)) return false;
    throw e;
  }
}

/**
 * Staging directories of runs cut off while taking the lock. Only the lock's
 * holder sweeps, and only as far as it can: a run still staging right now may
 * put its owner.json back in between, and removes its directory itself when
 * its rename fails.
 */
async function sweepStaging(sftp: SFTPWrapper, remoteDir: string, dir: string): Promise<void> {
  const prefix = `${dir.slice(dir.lastIndexOf('/') + 1)}.`;
  for (const name of await readdirNames(sftp, remoteDir)) {
    if (!name.startsWith(prefix)) continue;
    debug(`removing the lock staging directory ${name}`);
    await remove(sftp, `${remoteDir.replace(/\/+$/, '')}/${name}`).catch((e: Error) => debug(`left ${name}: ${e.message}`));
  }
}

/** `sshvault unlock --force`: removes whatever lock is there and says whose it was. */
export async function breakLock(sftp: SFTPWrapper, remoteDir: string): Promise<LockOwner | null | undefined> {
  const dir = lockDir(remoteDir);
  const holder = await readOwner(sftp, dir);
  try {
    await remove(sftp, dir);
  } catch {
    return undefined;
  }
  return holder ?? null;
}

/**
 * Readers (`mount`, `restore`, `check`) share the vault: each holds a file in
 * `<dir>/vault.readers/`, created while it briefly holds the write lock, so a
 * writer that holds the write lock sees every reader that got in before it.
 */
function readersDir(remoteDir: string): string {
  return `${remoteDir.replace(/\/+$/, '')}/vault.readers`;
}

export class SharedLock {
  constructor(
    private readonly sftp: SFTPWrapper,
    readonly file: string,
    readonly owner: LockOwner,
  ) {}

  /** The directory stays: removing it could race with another reader writing its file there. */
  async release(): Promise<void> {
    await unlink(this.sftp, this.file);
    debug(`released shared lock ${this.file}`);
  }
}

export async function acquireSharedLock(
  sftp: SFTPWrapper,
  remoteDir: string,
  owner: Omit<LockOwner, 'host' | 'pid' | 'started'>,
  notice: (message: string) => void,
): Promise<SharedLock> {
  const write = await acquireLock(sftp, remoteDir, owner, notice);
  try {
    const dir = readersDir(remoteDir);
    await mkdirExclusive(sftp, dir, PRIVATE_DIR);
    const file = `${dir}/${owner.runId}.json`;
    await writeFile(sftp, file, JSON.stringify(write.owner) + '\n', PRIVATE_FILE);
    debug(`took shared lock ${file}`);
    return new SharedLock(sftp, file, write.owner);
  } finally {
    await write.release();
  }
}

function listDir(sftp: SFTPWrapper, dir: string): Promise<string[]> {
  return new Promise((resolve, reject) =>
    sftp.readdir(dir, (err, list) => {
      if (!err) return resolve(list.map((e) => e.filename));
      if ((err as Error & { code?: number }).code === 2) return resolve([]);
      reject(err);
    }),
  );
}

/**
 * Called by a writer holding the write lock: readers of this host whose
 * process is gone are crash leftovers and are removed; any other reader
 * makes the writer give up.
 */
export async function assertNoReaders(sftp: SFTPWrapper, remoteDir: string, notice: (message: string) => void): Promise<void> {
  const dir = readersDir(remoteDir);
  for (const name of await listDir(sftp, dir)) {
    if (!name.endsWith('.json')) continue;
    const file = `${dir}/${name}`;
    const raw = await readFile(sftp, file);
    // Released while we looked.
    if (!raw) continue;
    let reader: LockOwner | undefined;
    try {
      reader = JSON.parse(raw.toString('utf8')) as LockOwner;
    } catch {
      reader = undefined;
    }
    if (reader && isStale(reader)) {
      notice(`Removing a stale read lock left by pid ${reader.pid} on this host (${reader.command}, started ${reader.started}).`);
      await unlink(sftp, file);
      continue;
    }
    const who = reader ? describeOwner(reader) : `an unreadable reader entry ${file}`;
    throw new LockHeldError(
      `the vault is being read (${who}); wait for it, or run 'sshvault umount' where it is mounted; if that reader is dead, run 'sshvault unlock --force'`,
    );
  }
}

/** `sshvault unlock --force` for readers: removes every reader entry and says whose they were. */
export async function breakReaders(sftp: SFTPWrapper, remoteDir: string): Promise<LockOwner[]> {
  const dir = readersDir(remoteDir);
  const broken: LockOwner[] = [];
  for (const name of await listDir(sftp, dir)) {
    const raw = await readFile(sftp, `${dir}/${name}`);
    try {
      if (raw) broken.push(JSON.parse(raw.toString('utf8')) as LockOwner);
    } catch {
      // An unreadable entry is removed all the same.
    }
    await unlink(sftp, `${dir}/${name}`);
  }
  return broken;
}
