import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { VaultPaths } from '../config/paths.js';
import { LockHeldError } from '../errors.js';
import { pidAlive } from '../proc.js';
import type { PhaseRecord } from '../remote/traffic.js';
import { BindLayer } from '../stack/mount/bind.js';

/**
 * What `sshvault mount` left running: the background process that owns the
 * stack, and where it shows the snapshots. `umount` and every other command
 * of the vault read it.
 */
export interface MountRecord {
  pid: number;
  runId: string;
  mountpoint: string;
  /** One snapshot, or all of them when absent. */
  snapshot?: string;
  started: string;
  /** Traffic of opening the vault, so the command that started the mount can report it. */
  phases: PhaseRecord[];
}

function mountRecordFile(paths: VaultPaths): string {
  return join(paths.state, 'mount.json');
}

/** The background process's stdout and stderr: where `mount` finds why it failed. */
export function mountLogFile(paths: VaultPaths): string {
  return join(paths.state, 'mount.log');
}

export async function readMountRecord(paths: VaultPaths): Promise<MountRecord | undefined> {
  try {
    return JSON.parse(await readFile(mountRecordFile(paths), 'utf8')) as MountRecord;
  } catch {
    return undefined;
  }
}

export async function writeMountRecord(paths: VaultPaths, record: MountRecord): Promise<void> {
  const file = mountRecordFile(paths);
  await writeFile(`${file}.tmp`, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

export async function removeMountRecord(paths: VaultPaths): Promise<void> {
  await rm(mountRecordFile(paths), { force: true });
}

/** The mount's run lock is why another command of the vault cannot run here: say so in words that name the fix. */
export async function mountHoldsVault(paths: VaultPaths, vault: string): Promise<LockHeldError | undefined> {
  const m = await readMountRecord(paths);
  if (!m || !pidAlive(m.pid)) return undefined;
  return new LockHeldError(`vault '${vault}' is mounted at ${m.mountpoint} (pid ${m.pid}); run 'sshvault umount ${vault}' first`);
}

/**
 * A mount whose process was killed (SIGKILL) leaves the user's mountpoint
 * holding the filesystem, which would keep every layer below it busy: it
 * goes first, before the stack's own leftovers are torn down.
 */
export async function releaseStaleMount(paths: VaultPaths): Promise<string[]> {
  const m = await readMountRecord(paths);
  if (!m || pidAlive(m.pid)) return [];
  const done: string[] = [];
  for (const leftover of await BindLayer.findLeftovers({ paths, vault: basename(paths.state), mountpoint: m.mountpoint })) {
    await leftover.teardown();
    done.push(leftover.what);
  }
  await removeMountRecord(paths);
  return done;
}
