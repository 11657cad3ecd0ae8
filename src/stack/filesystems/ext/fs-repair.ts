import { chmod, readFile, rm, stat } from 'node:fs/promises';
import { CheckFailedError, CommandError, UsageError } from '../../../errors.js';
import { run, succeeds, type RunResult } from '../../../exec.js';
import { parseUndoFile } from './e2undo.js';
import { auditRepair, matchesUndo } from './repair-audit.js';

/**
 * e2fsck with an undo file (`-z`): the old contents of every block it
 * changes, kept in the vault's private state directory so a repair can be
 * judged and rolled back. Exit codes 1, 2 (fixed) and 4 (errors left) are
 * results, not failures.
 */
async function e2fsckWithUndo(device: string, args: string[], undoFile: string): Promise<RunResult> {
  // An existing undo file would be appended to if it matched: every repair starts its own.
  await rm(undoFile, { force: true });
  try {
    return await run('e2fsck', [...args, '-z', undoFile, device], { okExitCodes: [1, 2, 4] });
  } finally {
    await chmod(undoFile, 0o600).catch(() => {});
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

const REPAIR_BY_HAND = "run 'sshvault check' to see the errors and 'sshvault check --repair' to fix them (it keeps an undo file)";

/**
 * After an unclean stop. e2fsck -y may change only what the interrupted run
 * was writing: the audit reads back every block it changed. Anything else,
 * or errors it could not fix, and the repair is rolled back with e2undo and
 * checked to be gone, so the image is exactly as the interrupted run left it.
 */
export async function repairAfterCrash(device: string, undoFile: string, notice: (message: string) => void): Promise<void> {
  notice('The last run did not finish cleanly; repairing what it left (e2fsck -f -y, with an undo file) and checking that no complete snapshot changes.');
  if (await exists(undoFile)) {
    // A repair cut off before its audit: what it changed was never judged, so it goes first.
    if (!(await succeeds('e2undo', [undoFile, device]))) {
      throw new CheckFailedError(`an earlier repair was interrupted before it could be checked, and its undo file (${undoFile}) no longer fits; ${REPAIR_BY_HAND}`);
    }
    await rm(undoFile, { force: true });
  }
  let result: RunResult;
  try {
    result = await e2fsckWithUndo(device, ['-f', '-y'], undoFile);
  } catch (e) {
    // Kept if the rollback fails too: the next run starts by replaying it.
    if (!(e instanceof CommandError) || !(await exists(undoFile)) || !(await succeeds('e2undo', [undoFile, device]))) throw e;
    await rm(undoFile, { force: true });
    throw new CheckFailedError(`e2fsck failed on the vault's filesystem (${e.message}); its changes were rolled back; ${REPAIR_BY_HAND}`, { cause: e });
  }
  const undo = parseUndoFile(await readFile(undoFile));
  const problems = result.exitCode === 4 ? ['e2fsck could not fix every error'] : await auditRepair(device, undo);
  if (!problems.length) {
    await rm(undoFile, { force: true });
    return;
  }
  for (const p of problems) notice(`Refused repair: ${p}.`);
  await run('e2undo', [undoFile, device]);
  if (!(await matchesUndo(device, undo))) {
    throw new CheckFailedError(`the refused repair could not be rolled back completely; keep ${undoFile} and ${REPAIR_BY_HAND}`);
  }
  await rm(undoFile, { force: true });
  throw new CheckFailedError(`repairing the interrupted run would have changed complete snapshots, so nothing was changed; ${REPAIR_BY_HAND}`);
}

/** `check --repair`: e2fsck -fy, its undo file kept for `check --undo-repair`. */
export async function repairKeepingUndo(device: string, undoFile: string): Promise<RunResult> {
  const r = await e2fsckWithUndo(device, ['-f', '-y'], undoFile);
  if (r.exitCode === 0) await rm(undoFile, { force: true });
  return r;
}

/** `check --undo-repair`: e2undo refuses on its own if the filesystem changed since (superblock mismatch). */
export async function undoRepair(device: string, undoFile: string): Promise<void> {
  if (!(await exists(undoFile))) throw new UsageError("there is no repair to undo: 'sshvault check --repair' keeps an undo file only when it changed something");
  const undo = parseUndoFile(await readFile(undoFile));
  try {
    await run('e2undo', [undoFile, device]);
  } catch (e) {
    if (e instanceof CommandError && /doesn't match|does not match/.test(e.stderr + e.message)) {
      throw new UsageError(`the vault changed since the repair, so its undo file (${undoFile}) no longer fits; nothing was undone`, { cause: e });
    }
    throw e;
  }
  if (!(await matchesUndo(device, undo))) throw new CheckFailedError(`e2undo did not restore every block; keep ${undoFile} and run 'sshvault check'`);
  await rm(undoFile, { force: true });
}
