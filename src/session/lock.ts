import type { SFTPWrapper } from 'ssh2';
import { acquireLock, acquireSharedLock, assertNoReaders, type RemoteLock, type SharedLock } from '../remote/lock.js';
import { forgetLockRun, ownLockRuns, recordLockRun } from '../remote/own-locks.js';
import { sftpDir } from '../remote/remote-dir.js';

export type VaultLock = RemoteLock | SharedLock;

/**
 * Readers share the vault with each other; a writer needs it to itself
 * (docs/design.md, "Remote lock"). The run is noted as this machine's before
 * its lock exists, so that a cut while taking it is recognised as ours.
 * `held` learns the lock as soon as it is taken: a writer refused afterwards
 * (readers are in) still releases it when the session closes.
 */
export async function lockVault(
  sftp: SFTPWrapper,
  o: { dir: string; owner: { vaultId: string; runId: string; command: string }; readOnly: boolean; ownLocksFile: string; notice: (message: string) => void },
  held: (lock: VaultLock) => void,
): Promise<void> {
  const lockCtx = { ownRuns: await ownLockRuns(o.ownLocksFile) };
  await recordLockRun(o.ownLocksFile, o.owner.runId);
  const files = sftpDir(sftp);
  if (o.readOnly) {
    held(await acquireSharedLock(files, o.dir, o.owner, o.notice, lockCtx));
    return;
  }
  held(await acquireLock(files, o.dir, o.owner, o.notice, lockCtx));
  await assertNoReaders(files, o.dir, o.notice, lockCtx);
}

export async function unlockVault(lock: VaultLock, ownLocksFile: string, runId: string): Promise<void> {
  await lock.release();
  await forgetLockRun(ownLocksFile, runId);
}
