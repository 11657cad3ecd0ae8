import { LockHeldError } from '../errors.js';
import { debug } from '../log.js';
import { localProcesses, type ProcessFacts } from '../proc.js';
import { sanitize } from '../ui/sanitize.js';
import { isStale, thisProcess, type LockIdentity } from './lock-identity.js';
import { ownerFile, remoteLayout, remotePath } from './layout.js';
import type { RemoteDir } from './remote-dir.js';

/**
 * The remote lock (docs/design.md, "Remote lock"): sshfs has no file locks and two
 * writers destroy an ext image, so a run owns `<dir>/vault.lock/` holding
 * owner.json. It is made as `vault.lock.<run id>/` with owner.json inside and
 * renamed into place (SFTP rename never replaces): a link cut while taking
 * the lock cannot leave a lock without an owner.
 */
export interface LockOwner extends LockIdentity {
  vaultId: string;
  started: string;
  runId: string;
  command: string;
}

type Taker = Pick<LockOwner, 'vaultId' | 'runId' | 'command'>;

/** Who this run is, for a given vault id, and how it sees processes; tests play several machines in one process. */
export interface LockContext {
  identify?: (vaultId: string) => LockIdentity;
  proc?: ProcessFacts;
  /** Run ids this state directory recorded as its own and over (see own-locks.ts). */
  ownRuns?: Set<string>;
}

/**
 * A lock is judged against this machine's identity for the vault id the
 * lock records: a restore configured by flags knows no vault id, and its
 * leftovers must still be recognised by the vault's own runs.
 */
function judge(ctx: LockContext) {
  const proc = ctx.proc ?? localProcesses;
  const identify = ctx.identify ?? ((vaultId: string) => thisProcess(vaultId, proc));
  return {
    identify,
    stale: (o: Partial<LockOwner>) => (typeof o.runId === 'string' && !!ctx.ownRuns?.has(o.runId)) || isStale(o, identify(String(o.vaultId)), proc),
    hint: (o: Partial<LockOwner>) => {
      const here = identify(String(o.vaultId));
      return o.host === here.host && o.machine !== here.machine ? ' (a machine of the same name, or an older sshvault on this one)' : '';
    },
  };
}

/** Every field came from the remote: printed only as plain text. */
export function describeOwner(o: Partial<LockOwner>): string {
  return `${sanitize(o.command)} by pid ${sanitize(o.pid)} on ${sanitize(o.host)}, started ${sanitize(o.started)}`;
}

function parseOwner(raw: Buffer | undefined): Partial<LockOwner> | undefined {
  if (!raw) return undefined;
  try {
    const o = JSON.parse(raw.toString('utf8')) as unknown;
    return o && typeof o === 'object' ? (o as Partial<LockOwner>) : undefined;
  } catch {
    return undefined;
  }
}

async function readOwner(files: RemoteDir, dir: string): Promise<Partial<LockOwner> | undefined> {
  return parseOwner(await files.read(ownerFile(dir)));
}

async function remove(files: RemoteDir, dir: string): Promise<void> {
  await files.remove(ownerFile(dir));
  await files.remove(dir);
}

export class RemoteLock {
  constructor(
    private readonly files: RemoteDir,
    readonly dir: string,
    readonly owner: LockOwner,
    private readonly notice: (message: string) => void,
  ) {}

  /** Only while it is still ours: a lock broken with `unlock --force` may be another run's by now. */
  async release(): Promise<void> {
    const holder = await readOwner(this.files, this.dir);
    if (holder?.runId !== this.owner.runId) {
      this.notice(
        `This run's lock of the vault was broken while it ran (${holder ? `it is now held by ${describeOwner(holder)}` : 'it is gone'}); left it as it is. If another client wrote meanwhile, run 'sshvault check'.`,
      );
      return;
    }
    await remove(this.files, this.dir);
    debug(`released remote lock ${this.dir}`);
  }
}

export async function acquireLock(
  files: RemoteDir,
  remoteDir: string,
  owner: Taker,
  notice: (message: string) => void,
  ctx: LockContext = {},
): Promise<RemoteLock> {
  const j = judge(ctx);
  const layout = remoteLayout(remoteDir);
  const dir = layout.lock;
  const me: LockOwner = { ...j.identify(owner.vaultId), started: new Date().toISOString(), ...owner };
  for (let attempt = 0; attempt < 2; attempt++) {
    if (await takeWithOwner(files, layout.staging(me.runId), dir, me)) {
      debug(`took remote lock ${dir}`);
      await sweepStaging(files, remoteDir);
      return new RemoteLock(files, dir, me, notice);
    }
    const holder = await readOwner(files, dir);
    if (!holder) {
      throw new LockHeldError(`the vault is locked (${dir} exists without an owner, perhaps a run died while taking it); if no other run is active, run 'sshvault unlock --force'`);
    }
    if (attempt === 0 && j.stale(holder)) {
      notice(`Breaking a stale lock left by pid ${sanitize(holder.pid)} on this machine (${sanitize(holder.command)}, started ${sanitize(holder.started)}).`);
      await remove(files, dir);
      continue;
    }
    throw new LockHeldError(
      `the vault is locked by ${describeOwner(holder)}${j.hint(holder)}; wait for it to finish, or if that run is dead, run 'sshvault unlock --force'`,
    );
  }
  throw new LockHeldError(`another client took the lock at ${dir} while a stale one was being broken; try again`);
}

async function takeWithOwner(files: RemoteDir, staging: string, dir: string, me: LockOwner): Promise<boolean> {
  try {
    if (!(await files.mkdirExclusive(staging))) throw new Error(`the lock staging directory ${staging} already exists`);
    await files.write(ownerFile(staging), JSON.stringify(me) + '\n');
    await files.rename(staging, dir);
    return true;
  } catch (e) {
    // The lock's holder may have swept the staging directory away already.
    await remove(files, staging).catch(() => {});
    if (await files.stat(dir)) return false;
    throw e;
  }
}

/**
 * Staging directories of runs cut off while taking the lock. Only the lock's
 * holder sweeps, and only as far as it can: a run still staging right now may
 * put its owner.json back in between, and removes its directory itself when
 * its rename fails.
 */
async function sweepStaging(files: RemoteDir, remoteDir: string): Promise<void> {
  const layout = remoteLayout(remoteDir);
  for (const name of await files.readdir(remoteDir)) {
    if (!layout.isStaging(name)) continue;
    debug(`removing the lock staging directory ${sanitize(name)}`);
    await remove(files, remotePath(remoteDir, name)).catch((e: Error) => debug(`left ${sanitize(name)}: ${sanitize(e.message)}`));
  }
}

/** `sshvault unlock --force`: removes whatever lock is there and says whose it was. */
export async function breakLock(files: RemoteDir, remoteDir: string): Promise<Partial<LockOwner> | null | undefined> {
  const dir = remoteLayout(remoteDir).lock;
  if (!(await files.stat(dir))) return undefined;
  const holder = await readOwner(files, dir);
  try {
    await remove(files, dir);
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
export class SharedLock {
  constructor(
    private readonly files: RemoteDir,
    readonly file: string,
    readonly owner: LockOwner,
    private readonly notice: (message: string) => void,
  ) {}

  /**
   * Only while the entry is still ours. The directory stays: removing it
   * could race with another reader writing its file there.
   */
  async release(): Promise<void> {
    const entry = parseOwner(await this.files.read(this.file));
    if (entry?.runId !== this.owner.runId) {
      this.notice(`This run's read lock of the vault was removed while it ran; left ${sanitize(this.file)} as it is.`);
      return;
    }
    await this.files.remove(this.file);
    debug(`released shared lock ${this.file}`);
  }
}

export async function acquireSharedLock(
  files: RemoteDir,
  remoteDir: string,
  owner: Taker,
  notice: (message: string) => void,
  ctx: LockContext = {},
): Promise<SharedLock> {
  const write = await acquireLock(files, remoteDir, owner, notice, ctx);
  try {
    const layout = remoteLayout(remoteDir);
    await files.mkdirExclusive(layout.readers);
    const file = layout.reader(owner.runId);
    await files.write(file, JSON.stringify(write.owner) + '\n');
    debug(`took shared lock ${file}`);
    return new SharedLock(files, file, write.owner, notice);
  } finally {
    await write.release();
  }
}

/**
 * Called by a writer holding the write lock: readers that provably were
 * this machine's and are over are crash leftovers and are removed; any other
 * reader makes the writer give up.
 */
export async function assertNoReaders(
  files: RemoteDir,
  remoteDir: string,
  notice: (message: string) => void,
  ctx: LockContext = {},
): Promise<void> {
  const j = judge(ctx);
  const dir = remoteLayout(remoteDir).readers;
  for (const name of await files.readdir(dir)) {
    if (!name.endsWith('.json')) continue;
    const file = `${dir}/${name}`;
    const raw = await files.read(file);
    // Released while we looked.
    if (!raw) continue;
    const reader = parseOwner(raw);
    if (reader && j.stale(reader)) {
      notice(`Removing a stale read lock left by pid ${sanitize(reader.pid)} on this machine (${sanitize(reader.command)}, started ${sanitize(reader.started)}).`);
      await files.remove(file);
      continue;
    }
    const who = reader ? `${describeOwner(reader)}${j.hint(reader)}` : `an unreadable reader entry ${sanitize(file)}`;
    throw new LockHeldError(
      `the vault is being read (${who}); wait for it, or run 'sshvault umount' where it is mounted; if that reader is dead, run 'sshvault unlock --force'`,
    );
  }
}

/** `sshvault unlock --force` for readers: removes every reader entry and says whose they were. */
export async function breakReaders(files: RemoteDir, remoteDir: string): Promise<Partial<LockOwner>[]> {
  const dir = remoteLayout(remoteDir).readers;
  const broken: Partial<LockOwner>[] = [];
  for (const name of await files.readdir(dir)) {
    const entry = parseOwner(await files.read(`${dir}/${name}`));
    // An unreadable entry is removed all the same.
    if (entry) broken.push(entry);
    await files.remove(`${dir}/${name}`);
  }
  return broken;
}
