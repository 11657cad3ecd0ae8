/**
 * What rsync says on stderr about files it skipped (exit 23: some files could
 * not be read or written; exit 24: some vanished while it ran). The snapshot
 * is complete without them, but the run must not look like a clean success.
 */

/** Paths kept per snapshot in the catalog; the count is always exact. */
export const MAX_WARNING_PATHS = 100;

/** One line per skipped file, without rsync's closing summary ("rsync error: some files ..."). */
export function rsyncWarnings(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(rsync|file has vanished)/.test(l) && !/^rsync (error|warning): some files/.test(l));
}

/** rsync quotes the path it complains about; a line without one is kept whole. */
export function warningPath(line: string): string {
  return /"(.*)"/.exec(line)?.[1] ?? line;
}

export function warningPaths(lines: string[]): string[] {
  return [...new Set(lines.map(warningPath))].slice(0, MAX_WARNING_PATHS);
}
