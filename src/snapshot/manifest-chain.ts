import type { ManifestDelta, ManifestEntry } from './manifest-codec.js';

/*
 * Manifest chains (docs/design.md, "Manifest chains"): a snapshot's manifest
 * is either full or a delta against its base snapshot's; these are the pure
 * rules for applying, making and keeping them.
 */

const key = (path: Buffer) => path.toString('latin1');

/** The manifest a delta describes, given its base's; sorted as a full manifest is. */
export function applyDelta(base: ManifestEntry[], delta: Pick<ManifestDelta, 'upserts' | 'removed'>): ManifestEntry[] {
  const byPath = new Map(base.map((e) => [key(e.path), e]));
  for (const path of delta.removed) byPath.delete(key(path));
  for (const e of delta.upserts) byPath.set(key(e.path), e);
  return [...byPath.values()].sort((a, b) => Buffer.compare(a.path, b.path));
}

/** What turns `base` into `next`. */
export function diffManifests(base: ManifestEntry[], next: ManifestEntry[]): Pick<ManifestDelta, 'upserts' | 'removed'> {
  const before = new Map(base.map((e) => [key(e.path), e.hash]));
  const upserts = next.filter((e) => before.get(key(e.path)) !== e.hash);
  const listed = new Set(next.map((e) => key(e.path)));
  const removed = base.filter((e) => !listed.has(key(e.path))).map((e) => e.path);
  return { upserts, removed };
}

/** Where a resolved manifest stands in its chain. */
export interface ChainStats {
  /** Deltas applied on top of the full manifest: 0 for a full one. */
  depth: number;
  /** Lines those deltas hold together. */
  lines: number;
}

/** Longest chain: each link is one more file to read to resolve the newest manifest. */
export const MAX_CHAIN = 32;

/**
 * Whether the new manifest is written full rather than as a delta: when there
 * is no base, when the chain would be longer than MAX_CHAIN, or when its deltas
 * would hold more than half as many lines as the full manifest. Resolving a
 * manifest then reads at most one and a half times a full one, and a full one
 * is uploaded again only after the tree has changed by about half its size.
 */
export function writeFull(base: ChainStats | undefined, deltaLines: number, fullEntries: number): boolean {
  if (!base) return true;
  if (base.depth + 1 > MAX_CHAIN) return true;
  return 2 * (base.lines + deltaLines) > fullEntries;
}

/**
 * Which kept snapshots prune rewrites as full manifests before removing
 * others: each kept one whose delta's base is being removed (or is gone).
 * Every kept chain then ends at a full manifest of a kept snapshot, since
 * following bases from a kept snapshot passes only kept ones until one of
 * them is full or rewritten. `bases` maps each snapshot with a delta to its
 * base; snapshots with a full manifest are absent.
 */
export function planRewrites(bases: ReadonlyMap<string, string>, keep: ReadonlySet<string>): string[] {
  return [...bases].filter(([name, base]) => keep.has(name) && !keep.has(base)).map(([name]) => name).sort();
}
