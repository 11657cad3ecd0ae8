import { SshvaultError } from '../errors.js';
import type { PhaseRecord } from '../remote/traffic.js';
import type { RunRecord } from '../snapshot/runs.js';

/** What the command learned that goes into its run record, filled in as it goes so a failed run keeps it too. */
export interface RunFacts {
  snapshot?: string;
  changedBytes?: number;
  rsync?: RunRecord['rsync'];
  remoteFreeBytes?: number;
  /** A run that succeeded with something to report (a snapshot complete with warnings). */
  exitCode?: number;
}

/** Who ran: fixed when the session starts. */
export interface RunIdentity {
  id: string;
  command: string;
  vault: string;
  fs: string;
  started: Date;
}

/**
 * The one place a run record is put together, for the local `runs.jsonl` and
 * for the copy a writer keeps inside the image (docs/design.md, "A run"). The
 * image's copy is written before the run ends: it has the phases finished so
 * far, and none of what only this machine knows (remote free space, cache).
 */
export function assembleRun(
  who: RunIdentity,
  facts: RunFacts,
  outcome: { phases: PhaseRecord[]; engine?: string; error?: Error; cache?: RunRecord['cache']; where: 'local' | 'image' },
): RunRecord {
  const { error, phases } = outcome;
  const local = outcome.where === 'local';
  return {
    id: who.id,
    command: who.command,
    vault: who.vault,
    snapshot: facts.snapshot,
    started: who.started.toISOString(),
    finished: new Date().toISOString(),
    ok: !error,
    exitCode: error ? (error instanceof SshvaultError ? error.exitCode : 1) : (facts.exitCode ?? 0),
    ...(error ? { error: error.message } : {}),
    engine: outcome.engine,
    fs: who.fs,
    changedBytes: facts.changedBytes ?? 0,
    upBytes: phases.reduce((t, p) => t + p.upBytes, 0),
    downBytes: phases.reduce((t, p) => t + p.downBytes, 0),
    phases,
    ...(facts.rsync ? { rsync: facts.rsync } : {}),
    ...(local && facts.remoteFreeBytes !== undefined ? { remoteFreeBytes: facts.remoteFreeBytes } : {}),
    ...(local && outcome.cache ? { cache: { ...outcome.cache } } : {}),
  };
}
