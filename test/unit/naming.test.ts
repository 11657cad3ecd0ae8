import { describe, expect, it } from 'vitest';
import { latestComplete } from '../../src/snapshot/order.js';
import { deletingDir, nextSnapshotName, parseDeletingDir, parseSnapshotDir, snapshotName, sortSnapshots } from '../../src/snapshot/naming.js';

describe('snapshotName', () => {
  it('is UTC to the second, without colons', () => {
    expect(snapshotName(new Date('2026-11-22T03:00:00Z'))).toBe('2026-11-22T030000Z');
    expect(snapshotName(new Date('2026-01-02T04:05:06.999Z'))).toBe('2026-01-02T040506Z');
  });

  it('does not depend on the local time zone offset in the input', () => {
    expect(snapshotName(new Date('2026-11-22T23:30:15+05:00'))).toBe('2026-11-22T183015Z');
  });
});

describe('parseSnapshotDir', () => {
  it('reads complete and partial snapshots under the same name', () => {
    expect(parseSnapshotDir('2026-11-22T030000Z')).toEqual({ name: '2026-11-22T030000Z', time: new Date('2026-11-22T03:00:00Z'), partial: false });
    expect(parseSnapshotDir('2026-11-23T030000Z.partial')).toEqual({ name: '2026-11-23T030000Z', time: new Date('2026-11-23T03:00:00Z'), partial: true });
  });

  it.each([
    'lost+found',
    '',
    '.partial',
    '2026-11-22T03:00:00Z',
    '2026-11-22T030000',
    '2026-11-22T030000z',
    '2026-11-22t030000Z',
    '2026-11-22T030000Z.partial.partial',
    '2026-11-22T030000Z.tmp',
    ' 2026-11-22T030000Z',
    '2026-11-22T030000Z/',
    '26-11-22T030000Z',
    '2026-02-30T000000Z',
    '2026-13-01T000000Z',
    '2026-11-22T240000Z',
    '2026-11-22T236000Z',
    '2026-11-22T235960Z',
  ])('rejects %j', (dir) => {
    expect(parseSnapshotDir(dir)).toBeNull();
  });

  it('accepts a leap day only in a leap year', () => {
    expect(parseSnapshotDir('2028-02-29T120000Z')?.time).toEqual(new Date('2028-02-29T12:00:00Z'));
    expect(parseSnapshotDir('2026-02-29T120000Z')).toBeNull();
  });

  it('round-trips with snapshotName', () => {
    const t = new Date('2031-07-09T21:08:07Z');
    expect(parseSnapshotDir(snapshotName(t))?.time).toEqual(t);
  });
});

describe('sortSnapshots', () => {
  it('puts the oldest first without touching the input', () => {
    const input = [{ name: '2026-11-23T030000Z' }, { name: '2025-12-31T235959Z' }, { name: '2026-11-22T030000Z' }];
    const copy = [...input];
    expect(sortSnapshots(input).map((s) => s.name)).toEqual(['2025-12-31T235959Z', '2026-11-22T030000Z', '2026-11-23T030000Z']);
    expect(input).toEqual(copy);
  });

  it('keeps the extra fields of the items', () => {
    const sorted = sortSnapshots([
      { name: '2026-11-23T030000Z', files: 2 },
      { name: '2026-11-22T030000Z', files: 1 },
    ]);
    expect(sorted).toEqual([
      { name: '2026-11-22T030000Z', files: 1 },
      { name: '2026-11-23T030000Z', files: 2 },
    ]);
  });
});

describe('latestComplete without a catalog: by name', () => {
  const refs = ['2026-11-21T030000Z', '2026-11-23T030000Z.partial', '2026-11-22T030000Z', '2026-11-20T030000Z'].map((d) => parseSnapshotDir(d)!);

  it('skips a newer partial snapshot', () => {
    expect(latestComplete(refs, undefined)?.name).toBe('2026-11-22T030000Z');
  });

  it('is undefined with no complete snapshot', () => {
    expect(latestComplete([], undefined)).toBeUndefined();
    expect(latestComplete([parseSnapshotDir('2026-11-23T030000Z.partial')!], undefined)).toBeUndefined();
  });
});

describe('nextSnapshotName', () => {
  const now = new Date('2026-11-22T03:00:00.700Z');

  it('names the snapshot after the current second', () => {
    expect(nextSnapshotName(now, [])).toBe('2026-11-22T030000Z');
    expect(nextSnapshotName(now, ['2026-11-21T030000Z'])).toBe('2026-11-22T030000Z');
  });

  it('moves to the next free second when pushes collide', () => {
    expect(nextSnapshotName(now, ['2026-11-22T030000Z'])).toBe('2026-11-22T030001Z');
    expect(nextSnapshotName(now, ['2026-11-22T030000Z', '2026-11-22T030001Z', '2026-11-22T030003Z'])).toBe('2026-11-22T030002Z');
  });

  it('counts a partial directory as taken', () => {
    expect(nextSnapshotName(now, ['2026-11-22T030000Z.partial'])).toBe('2026-11-22T030001Z');
  });

  it('carries over minute, day and year boundaries', () => {
    expect(nextSnapshotName(new Date('2026-12-31T23:59:59Z'), ['2026-12-31T235959Z'])).toBe('2027-01-01T000000Z');
  });
});

describe('snapshots being deleted', () => {
  it('are renamed to <dir>.deleting, complete or partial', () => {
    expect(deletingDir('2026-11-22T030000Z')).toBe('2026-11-22T030000Z.deleting');
    expect(deletingDir('2026-11-22T030000Z.partial')).toBe('2026-11-22T030000Z.partial.deleting');
  });

  it('are never read as snapshots: not listed, not a link-dest, not resolved by restore', () => {
    expect(parseSnapshotDir('2026-11-22T030000Z.deleting')).toBeNull();
    expect(parseSnapshotDir('2026-11-22T030000Z.partial.deleting')).toBeNull();
    const refs = ['2026-11-21T030000Z', '2026-11-22T030000Z.deleting'].map(parseSnapshotDir).filter((r) => r !== null);
    expect(latestComplete(refs, undefined)?.name).toBe('2026-11-21T030000Z');
  });

  it('name the snapshot they were, so its manifest goes with them', () => {
    expect(parseDeletingDir('2026-11-22T030000Z.deleting')).toEqual({ name: '2026-11-22T030000Z', time: new Date('2026-11-22T03:00:00Z'), partial: false });
    expect(parseDeletingDir('2026-11-22T030000Z.partial.deleting')).toEqual({ name: '2026-11-22T030000Z', time: new Date('2026-11-22T03:00:00Z'), partial: true });
  });

  it.each(['2026-11-22T030000Z', '2026-11-22T030000Z.partial', 'lost+found.deleting', '.deleting', '2026-11-22T030000Z.deleting.deleting'])('%j is not one', (dir) => {
    expect(parseDeletingDir(dir)).toBeNull();
  });

  it('keep their name taken until they are gone', () => {
    expect(nextSnapshotName(new Date('2026-11-22T03:00:00.500Z'), ['2026-11-22T030000Z.deleting'])).toBe('2026-11-22T030001Z');
  });
});
