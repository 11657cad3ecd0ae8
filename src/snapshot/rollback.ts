/**
 * Whether the vault a run finds is at least as new as what this machine saw
 * last. The counter lives inside the encrypted filesystem, so only a key
 * holder can move it forward; the host can only put back an older copy.
 */
export interface SeenState {
  /** The highest counter this machine saw on the image (0: none yet). */
  counter: number;
  /** The complete snapshots the image held when this machine last looked. */
  snapshots: string[];
}

export type Verdict =
  | { kind: 'ok' }
  /** A key holder wrote after our last look (another machine): what it left is taken as it is, pruned snapshots included. */
  | { kind: 'adopt' }
  | { kind: 'rollback'; reason: string };

/**
 * `remoteCounter` undefined: the image has no counter file (a vault made
 * before counters existed), which counts as 0.
 */
export function judge(seen: SeenState | undefined, remoteCounter: number | undefined, remoteComplete: string[]): Verdict {
  const remote = remoteCounter ?? 0;
  const local = seen?.counter ?? 0;
  if (remote > local) return { kind: 'adopt' };
  if (remote < local) {
    const found = remoteCounter === undefined ? 'has no write counter' : `is at write counter ${remote}`;
    return { kind: 'rollback', reason: `the vault ${found}, behind ${local} which this machine saw` };
  }
  const present = new Set(remoteComplete);
  const missing = (seen?.snapshots ?? []).filter((s) => !present.has(s));
  if (missing.length) {
    const more = missing.length > 1 ? ` and ${missing.length - 1} more` : '';
    return { kind: 'rollback', reason: `snapshot ${missing[0]}${more}, complete when this machine last saw the vault, is missing at the same write counter ${remote}` };
  }
  return { kind: 'ok' };
}
