/**
 * Snapshot directory names (docs/design.md, "On-image layout"): `2026-11-22T030000Z`, UTC to
 * the second, with no colons so the names are safe on every filesystem and
 * sort lexically in time order. An interrupted snapshot carries `.partial`.
 */

export interface SnapshotRef {
  /** The snapshot's name without `.partial`: the same name before and after completion. */
  name: string;
  time: Date;
  partial: boolean;
}

const PARTIAL_SUFFIX = '.partial';
const DELETING_SUFFIX = '.deleting';
const NAME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

export function snapshotName(d: Date): string {
  const date = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  return `${date}T${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}Z`;
}

function parseName(name: string): Date | null {
  const m = NAME.exec(name);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const time = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Date.UTC rolls 2026-02-30 over into March; a name that does not survive the round trip is not ours.
  return snapshotName(time) === name ? time : null;
}

/** Reads a directory name under `snapshots/`; anything that is not a snapshot (lost+found, a stray file) is null. */
export function parseSnapshotDir(dirName: string): SnapshotRef | null {
  const partial = dirName.endsWith(PARTIAL_SUFFIX);
  const name = partial ? dirName.slice(0, -PARTIAL_SUFFIX.length) : dirName;
  const time = parseName(name);
  return time ? { name, time, partial } : null;
}

/**
 * Where prune moves a snapshot directory before deleting it: a cut in the
 * middle of a deletion leaves `<dir>.deleting`, which nothing reads as a
 * snapshot and the next writing run finishes, never half a snapshot under a
 * snapshot's name.
 */
export function deletingDir(dir: string): string {
  return `${dir}${DELETING_SUFFIX}`;
}

/** The snapshot a `.deleting` directory was; null for anything else. */
export function parseDeletingDir(dirName: string): SnapshotRef | null {
  if (!dirName.endsWith(DELETING_SUFFIX)) return null;
  return parseSnapshotDir(dirName.slice(0, -DELETING_SUFFIX.length));
}

/** Oldest first; the name format makes lexical order chronological order. */
export function sortSnapshots<T extends { name: string }>(list: T[]): T[] {
  return [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The name for a snapshot taken at `now`. Two pushes within one second would
 * collide, so the later one moves to the next second nobody uses yet.
 * `existing` may hold names or directory names: a `.partial` or `.deleting` holds its name too.
 */
export function nextSnapshotName(now: Date, existing: string[]): string {
  const taken = new Set(existing.map((e) => (parseSnapshotDir(e) ?? parseDeletingDir(e))?.name ?? e));
  let t = Math.floor(now.getTime() / 1000) * 1000;
  while (taken.has(snapshotName(new Date(t)))) t += 1000;
  return snapshotName(new Date(t));
}
