import type { Catalog } from './catalog.js';
import type { SnapshotRef } from './naming.js';

/** A snapshot dated further ahead of this machine's clock than this was named by a wrong clock. */
export const CLOCK_SLACK_MS = 24 * 60 * 60 * 1000;

/**
 * Names carry the pushing machine's clock, which can be wrong; the order of
 * pushes cannot. The catalog numbers each snapshot as its push completes
 * (`seq`). Snapshots without a number (made before the numbering, or found
 * only as directories) were made before every numbered one and are ordered
 * by name among themselves.
 */
export function runOrder(catalog: Catalog | undefined): (a: SnapshotRef, b: SnapshotRef) => number {
  const seq = new Map((catalog?.snapshots ?? []).filter((s) => s.complete && s.seq !== undefined).map((s) => [s.name, s.seq!]));
  return (a, b) => (seq.get(a.name) ?? 0) - (seq.get(b.name) ?? 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** The snapshot `latest` means and a new push links against: the complete one pushed last. */
export function latestComplete(refs: SnapshotRef[], catalog: Catalog | undefined): SnapshotRef | undefined {
  return refs.filter((r) => !r.partial).sort(runOrder(catalog)).pop();
}

/** The number the catalog gives the snapshot a push completes now. */
export function nextSeq(catalog: Catalog | undefined): number {
  return Math.max(0, ...(catalog?.snapshots ?? []).map((s) => s.seq ?? 0)) + 1;
}

/** The snapshot dated furthest ahead, if any is more than a day ahead of `now`. */
export function futureDated(refs: SnapshotRef[], now: Date): SnapshotRef | undefined {
  const ahead = refs.filter((r) => r.time.getTime() > now.getTime() + CLOCK_SLACK_MS);
  return ahead.sort((a, b) => a.time.getTime() - b.time.getTime()).pop();
}
