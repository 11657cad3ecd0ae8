import { join } from 'node:path';
import { sortSnapshots, type SnapshotRef } from './naming.js';

/** rsync takes at most 20 --link-dest directories. */
const MAX_LINK_DESTS = 20;

export interface LinkPlan {
  /** What rsync may hard-link from, in the order it looks: interrupted runs' work first, newest first, then the base. */
  linkDests: string[];
  /** The .partial directories this push replaces: removed once its snapshot is complete. */
  stalePartials: string[];
}

/**
 * A resume never writes into an old .partial: its files may be hard links to
 * inodes a complete snapshot shares, and rsync would apply a changed mode,
 * owner, ACL or xattr to them in place. The new .partial starts empty and
 * links from the old ones, and rsync links only files equal in content and
 * every attribute it keeps; any other file gets a new inode.
 * A run that was cut off (the filesystem was not clean) may have left files
 * whose size and mtime reached the remote but whose data did not: rsync's
 * quick check would take them as equal, so their partials are not trusted.
 */
export function planLinks(refs: SnapshotRef[], base: SnapshotRef | undefined, snapshotsDir: string, trustPartials: boolean): LinkPlan {
  const partials = sortSnapshots(refs.filter((r) => r.partial))
    .reverse()
    .map((r) => join(snapshotsDir, `${r.name}.partial`));
  const room = MAX_LINK_DESTS - (base ? 1 : 0);
  return {
    linkDests: [...(trustPartials ? partials.slice(0, room) : []), ...(base ? [join(snapshotsDir, base.name)] : [])],
    stalePartials: partials,
  };
}
