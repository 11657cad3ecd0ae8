import { describe, expect, it } from 'vitest';
import { MAX_WARNING_PATHS, rsyncWarnings, warningPath, warningPaths } from '../../src/snapshot/rsync-warnings.js';

describe('rsync warnings', () => {
  const stderr = [
    'rsync: [sender] send_files failed to open "/sys/bus/pci/rescan": Permission denied (13)',
    'file has vanished: "/home/u/tmp/lock file"',
    'rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338) [sender=3.2.7]',
    'rsync warning: some files vanished before they could be transferred (code 24) at main.c(1338) [sender=3.2.7]',
    '',
  ].join('\n');

  it("keeps one line per skipped file and drops rsync's summary lines", () => {
    expect(rsyncWarnings(stderr)).toEqual([
      'rsync: [sender] send_files failed to open "/sys/bus/pci/rescan": Permission denied (13)',
      'file has vanished: "/home/u/tmp/lock file"',
    ]);
  });

  it('reads the quoted path, quotes inside it included, and keeps an unquoted line whole', () => {
    expect(warningPaths(rsyncWarnings(stderr))).toEqual(['/sys/bus/pci/rescan', '/home/u/tmp/lock file']);
    expect(warningPath('file has vanished: "/a/say "hi".txt"')).toBe('/a/say "hi".txt');
    expect(warningPath('rsync: something odd')).toBe('rsync: something odd');
  });

  it('lists each path once and at most MAX_WARNING_PATHS of them', () => {
    const lines = Array.from({ length: MAX_WARNING_PATHS + 5 }, (_, i) => `file has vanished: "/f${i}"`);
    expect(warningPaths([...lines, lines[0]!])).toHaveLength(MAX_WARNING_PATHS);
    expect(warningPaths(['file has vanished: "/x"', 'rsync: read errors mapping "/x": Input/output error (5)'])).toEqual(['/x']);
  });
});
