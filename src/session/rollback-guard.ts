import { AuthError } from '../errors.js';
import { imageLayout, readVaultMeta, snapshotDirs } from '../snapshot/layout.js';
import { judge, type SeenState, type Verdict } from '../snapshot/rollback.js';
import { completeSnapshots, readImageSequence, readLocalSequence, writeImageSequence } from '../snapshot/sequence.js';

/**
 * Refuses an image older than what this machine saw (the host put back a
 * copy), before the command reads or writes anything in it. A writer then
 * advances the counter and flushes it, before any other write: even a run
 * cut off later has moved it on.
 */
export async function guardRollback(o: {
  fsMount: string;
  sequenceFile: string;
  vaultName: string;
  runId: string;
  acceptRemote?: boolean;
  /** Set for a writer: how the new counter reaches the remote. */
  flush?: () => Promise<void>;
}): Promise<{ seen: SeenState; verdict: Verdict }> {
  const layout = imageLayout(o.fsMount);
  // An image this version does not understand is refused as such, before the counter is written into it.
  await readVaultMeta(layout);
  const mark = await readImageSequence(layout);
  const complete = completeSnapshots(await snapshotDirs(layout));
  const verdict = judge(await readLocalSequence(o.sequenceFile), mark?.counter, complete);
  if (verdict.kind === 'rollback' && !o.acceptRemote) {
    throw new AuthError(
      `refusing a possible rollback of the vault: ${verdict.reason}; the host may have put back an older copy. Nothing here was changed. Look into it, then run 'sshvault accept-remote ${o.vaultName}' to take the remote's state as it is`,
    );
  }
  let counter = mark?.counter ?? 0;
  if (o.flush) {
    counter++;
    await writeImageSequence(layout, { counter, runId: o.runId, at: new Date().toISOString() });
    await o.flush();
  }
  return { seen: { counter, snapshots: complete }, verdict };
}
