import type { RunRecord } from './runs.js';

/**
 * Whether a vault's backups are keeping up, from its run history alone: a
 * backup that silently stopped running is the failure a person notices last.
 */
export interface VaultHealth {
  /** The newest push that finished with a snapshot. */
  lastSuccess?: RunRecord;
  /** The newest push that failed, whether or not a success came after it. */
  lastFailure?: RunRecord;
  /** How long ago the last success finished; undefined when there was none. */
  ageMs?: number;
  maxAgeMs: number;
  stale: boolean;
  /** The remote's free space as the newest run that asked saw it. */
  remoteFree?: { bytes: number; at: string };
}

function newest(runs: RunRecord[], pick: (r: RunRecord) => boolean): RunRecord | undefined {
  let found: RunRecord | undefined;
  for (const r of runs) if (pick(r) && (!found || r.finished > found.finished)) found = r;
  return found;
}

export function vaultHealth(runs: RunRecord[], now: Date, maxAgeMs: number): VaultHealth {
  const lastSuccess = newest(runs, (r) => r.command === 'push' && r.ok);
  const lastFailure = newest(runs, (r) => r.command === 'push' && !r.ok);
  const ageMs = lastSuccess ? now.getTime() - new Date(lastSuccess.finished).getTime() : undefined;
  const seen = newest(runs, (r) => r.remoteFreeBytes !== undefined);
  return {
    lastSuccess,
    lastFailure,
    ageMs,
    maxAgeMs,
    stale: ageMs === undefined || ageMs > maxAgeMs,
    ...(seen ? { remoteFree: { bytes: seen.remoteFreeBytes!, at: seen.finished } } : {}),
  };
}
