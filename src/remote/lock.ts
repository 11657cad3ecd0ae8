import { hostname } from 'node:os';
import type { SFTPWrapper } from 'ssh2';
import { LockHeldError } from '../errors.js';
import { debug } from '../log.js';
import { mkdirExclusive, readFile, rmdir, unlink, writeFile } from './sftp.js';

/**
 * The remote lock of DESIGN section 4: sshfs has no file locks and two
 * writers destroy an ext image, so a run owns `<dir>/vault.lock/` (an atomic
 * SFTP mkdir) holding owner.json.
 */
export interface LockOwner {
  host: string;
  pid: number;
  vaultId: string;
  started: string;
  runId: string;
  command: string;
}

export function lockDir(remoteDir: string): string {
  return `${remoteDir.replace(/\/+$/, '')}/vault.lock`;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A lock this host took for a process that no longer exists can only be a crash's leftover. */
export function isStale(owner: LockOwner): boolean {
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
    if (await mkdirExclusive(sftp, dir)) {
      await writeFile(sftp, `${dir}/owner.json`, JSON.stringify(me) + '\n');
      debug(`took remote lock ${dir}`);
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
