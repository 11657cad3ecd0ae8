import type { Catalog } from './catalog.js';
import { parseSnapshotDir, type SnapshotRef } from './naming.js';
import { latestComplete } from './order.js';
import { applyRetention, type RetentionPolicy } from './retention.js';

export interface PruneItem {
  /** The directory under `snapshots/`: the name, with `.partial` for an interrupted push. */
  dir: string;
  name: string;
  partial: boolean;
  reasons: string[];
}

export interface PrunePlan {
  keep: PruneItem[];
  remove: PruneItem[];
}

/**
 * What `prune` keeps: the retention policy decides among complete snapshots
 * (the latest complete one, by push order, always stays: it is the next
 * push's --link-dest, and a wrong clock must not make another look newest);
 * an interrupted push older than the newest complete snapshot is stale, a
 * newer one is what the next push resumes. Oldest first.
 */
export function planPrune(dirNames: string[], policy: RetentionPolicy, catalog?: Catalog): PrunePlan {
  const refs = dirNames.map(parseSnapshotDir).filter((r): r is SnapshotRef => r !== null);
  const item = (r: SnapshotRef, reasons: string[]): PruneItem => ({ dir: r.partial ? `${r.name}.partial` : r.name, name: r.name, partial: r.partial, reasons });
  const complete = refs.filter((r) => !r.partial);
  const newest = latestComplete(refs, catalog);
  const keep: PruneItem[] = [];
  const remove: PruneItem[] = [];
  if (complete.length) {
    const decision = applyRetention(complete, policy);
    for (const k of decision.keep) keep.push(item(k.item, k.reasons));
    for (const r of decision.remove) {
      if (r === newest) keep.push(item(r, ['newest complete snapshot']));
      else remove.push(item(r, ['no rule keeps it']));
    }
  } else {
    // Validates the policy even when there is nothing to apply it to.
    applyRetention([], policy);
  }
  for (const p of refs.filter((r) => r.partial)) {
    if (newest && p.time < newest.time) remove.push(item(p, ['interrupted push, older than the newest complete snapshot']));
    else keep.push(item(p, ['interrupted push the next push resumes']));
  }
  const order = (a: PruneItem, b: PruneItem) => (a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0);
  return { keep: keep.sort(order), remove: remove.sort(order) };
}
