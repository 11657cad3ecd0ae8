import { describe, expect, it } from 'vitest';
import { emptyCatalog, upsert, type Catalog, type CatalogEntry } from '../../src/snapshot/catalog.js';
import { parseSnapshotDir, type SnapshotRef } from '../../src/snapshot/naming.js';
import { futureDated, latestComplete, nextSeq } from '../../src/snapshot/order.js';

const refs = (...dirs: string[]): SnapshotRef[] => dirs.map((d) => parseSnapshotDir(d)!);

function catalog(...entries: Partial<CatalogEntry>[]): Catalog {
  return entries.reduce<Catalog>(
    (c, e) => upsert(c, { name: e.name!, time: '', complete: e.complete ?? true, files: 0, bytes: 0, ...(e.seq !== undefined ? { seq: e.seq } : {}) }),
    emptyCatalog('v'),
  );
}

describe('run order', () => {
  it('without numbers in the catalog, latest is the newest complete by name', () => {
    const r = refs('2026-11-20T030000Z', '2026-11-21T030000Z', '2026-11-22T030000Z.partial');
    expect(latestComplete(r, undefined)?.name).toBe('2026-11-21T030000Z');
    expect(latestComplete(r, catalog({ name: '2026-11-20T030000Z' }, { name: '2026-11-21T030000Z' }))?.name).toBe('2026-11-21T030000Z');
  });

  it('a snapshot named by a clock set years ahead is not latest once a later push completes', () => {
    // Pushed second, with the clock in 2031; the third push, with the clock right again, is the latest.
    const r = refs('2026-11-20T030000Z', '2031-01-01T000000Z', '2026-11-22T030000Z');
    const c = catalog({ name: '2026-11-20T030000Z', seq: 1 }, { name: '2031-01-01T000000Z', seq: 2 }, { name: '2026-11-22T030000Z', seq: 3 });
    expect(latestComplete(r, c)?.name).toBe('2026-11-22T030000Z');
    expect(latestComplete(r.slice(0, 2), c)?.name).toBe('2031-01-01T000000Z');
  });

  it('numbered snapshots come after those from before the numbering', () => {
    const r = refs('2031-01-01T000000Z', '2026-11-22T030000Z');
    expect(latestComplete(r, catalog({ name: '2031-01-01T000000Z' }, { name: '2026-11-22T030000Z', seq: 1 }))?.name).toBe('2026-11-22T030000Z');
  });

  it('a number of a partial entry does not count, nor does a partial snapshot', () => {
    const r = refs('2026-11-20T030000Z', '2026-11-21T030000Z.partial');
    expect(latestComplete(r, catalog({ name: '2026-11-20T030000Z', seq: 1 }, { name: '2026-11-21T030000Z', seq: 2, complete: false }))?.name).toBe(
      '2026-11-20T030000Z',
    );
    expect(latestComplete(refs('2026-11-21T030000Z.partial'), undefined)).toBeUndefined();
  });

  it('numbers each completed push after every number still in the catalog', () => {
    expect(nextSeq(undefined)).toBe(1);
    expect(nextSeq(catalog({ name: '2026-11-20T030000Z' }))).toBe(1);
    expect(nextSeq(catalog({ name: '2026-11-20T030000Z', seq: 4 }, { name: '2026-11-21T030000Z', seq: 2 }))).toBe(5);
  });
});

describe('futureDated', () => {
  const now = new Date('2026-11-30T06:00:00Z');

  it('finds the snapshot dated furthest beyond a day ahead of the clock', () => {
    const r = refs('2026-11-29T030000Z', '2031-01-01T000000Z.partial', '2027-03-01T000000Z');
    expect(futureDated(r, now)?.name).toBe('2031-01-01T000000Z');
  });

  it('tolerates a clock up to a day behind', () => {
    expect(futureDated(refs('2026-12-01T055959Z'), now)).toBeUndefined();
    expect(futureDated(refs('2026-12-01T060001Z'), now)?.name).toBe('2026-12-01T060001Z');
  });
});
