import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { snapshotName } from '../../src/snapshot/naming.js';
import { applyRetention, type RetentionPolicy } from '../../src/snapshot/retention.js';

interface Snap {
  name: string;
  time: Date;
}

function snap(iso: string): Snap {
  const time = new Date(iso);
  return { name: snapshotName(time), time };
}

/** Every `stepHours` from `start`, `count` times, oldest first. */
function timeline(start: string, stepHours: number, count: number): Snap[] {
  const t0 = new Date(start).getTime();
  return Array.from({ length: count }, (_, i) => snap(new Date(t0 + i * stepHours * 3_600_000).toISOString()));
}

function kept(list: Snap[], policy: RetentionPolicy): string[] {
  return applyRetention(list, policy).keep.map((k) => k.item.time.toISOString());
}

function reasons(list: Snap[], policy: RetentionPolicy): Record<string, string[]> {
  return Object.fromEntries(applyRetention(list, policy).keep.map((k) => [k.item.time.toISOString(), k.reasons]));
}

// 2026-01-01 is a Thursday: ISO week 2026-W01 runs from Monday 2025-12-29 to Sunday 2026-01-04.
const SIX_HOURLY = timeline('2026-01-01T00:00:00Z', 6, 60);

describe('applyRetention over 15 days of snapshots every 6 hours', () => {
  it('keeps the newest N with last', () => {
    expect(kept(SIX_HOURLY, { last: 5 })).toEqual([
      '2026-01-14T18:00:00.000Z',
      '2026-01-15T00:00:00.000Z',
      '2026-01-15T06:00:00.000Z',
      '2026-01-15T12:00:00.000Z',
      '2026-01-15T18:00:00.000Z',
    ]);
  });

  it('keeps the newest snapshot of each of the last N days with daily', () => {
    expect(kept(SIX_HOURLY, { daily: 7 })).toEqual([9, 10, 11, 12, 13, 14, 15].map((d) => `2026-01-${String(d).padStart(2, '0')}T18:00:00.000Z`));
  });

  it('keeps the oldest snapshot too when a rule has count left at the end', () => {
    const r = reasons(SIX_HOURLY, { daily: 20 });
    expect(Object.keys(r)).toHaveLength(16);
    expect(r['2026-01-01T00:00:00.000Z']).toEqual(['oldest daily snapshot']);
    expect(r['2026-01-01T18:00:00.000Z']).toEqual(['daily snapshot']);
  });

  it('keeps every snapshot when last covers them all', () => {
    const d = applyRetention(SIX_HOURLY, { last: 100 });
    expect(d.keep).toHaveLength(60);
    expect(d.remove).toEqual([]);
  });

  it('treats each 6-hour snapshot as its own hour', () => {
    expect(kept(SIX_HOURLY, { hourly: 3 })).toEqual(['2026-01-15T06:00:00.000Z', '2026-01-15T12:00:00.000Z', '2026-01-15T18:00:00.000Z']);
  });

  it('buckets weeks by ISO week, Monday to Sunday', () => {
    expect(kept(SIX_HOURLY, { weekly: 2 })).toEqual(['2026-01-11T18:00:00.000Z', '2026-01-15T18:00:00.000Z']);
    expect(reasons(SIX_HOURLY, { weekly: 5 })).toEqual({
      '2026-01-01T00:00:00.000Z': ['oldest weekly snapshot'],
      '2026-01-04T18:00:00.000Z': ['weekly snapshot'],
      '2026-01-11T18:00:00.000Z': ['weekly snapshot'],
      '2026-01-15T18:00:00.000Z': ['weekly snapshot'],
    });
  });

  it('combines rules, each counting on its own, and lists every reason in rule order', () => {
    const d = applyRetention(SIX_HOURLY, { last: 2, daily: 3, weekly: 2, monthly: 1 });
    expect(d.keep.map((k) => [k.item.time.toISOString(), k.reasons])).toEqual([
      ['2026-01-11T18:00:00.000Z', ['weekly snapshot']],
      ['2026-01-13T18:00:00.000Z', ['daily snapshot']],
      ['2026-01-14T18:00:00.000Z', ['daily snapshot']],
      ['2026-01-15T12:00:00.000Z', ['last snapshot']],
      ['2026-01-15T18:00:00.000Z', ['last snapshot', 'daily snapshot', 'weekly snapshot', 'monthly snapshot']],
    ]);
    expect(d.remove).toHaveLength(55);
  });

  it('returns both lists oldest first, splitting the input exactly', () => {
    const d = applyRetention(SIX_HOURLY, { daily: 4, weekly: 3 });
    const keepNames = d.keep.map((k) => k.item.name);
    const removeNames = d.remove.map((s) => s.name);
    expect(keepNames).toEqual([...keepNames].sort());
    expect(removeNames).toEqual([...removeNames].sort());
    expect([...keepNames, ...removeNames].sort()).toEqual(SIX_HOURLY.map((s) => s.name));
    expect(d.keep.every((k) => SIX_HOURLY.includes(k.item))).toBe(true);
  });

  it.each<RetentionPolicy>([{ last: 1 }, { hourly: 1 }, { daily: 1 }, { weekly: 1 }, { monthly: 1 }, { yearly: 1 }, { last: 0, yearly: 2 }])(
    'always keeps the newest snapshot (%j)',
    (policy) => {
      const d = applyRetention(SIX_HOURLY, policy);
      expect(d.keep[d.keep.length - 1]!.item).toBe(SIX_HOURLY[SIX_HOURLY.length - 1]);
    },
  );

  it('does not depend on the order of its input, nor change it', () => {
    const shuffled = [...SIX_HOURLY].reverse();
    shuffled.push(...shuffled.splice(0, 17));
    const before = [...shuffled];
    expect(kept(shuffled, { daily: 5, weekly: 2 })).toEqual(kept(SIX_HOURLY, { daily: 5, weekly: 2 }));
    expect(shuffled).toEqual(before);
  });
});

describe('applyRetention across calendar boundaries', () => {
  const NEW_YEAR = timeline('2025-12-25T12:00:00Z', 24, 12);

  it('splits years and months at midnight UTC', () => {
    expect(kept(NEW_YEAR, { yearly: 2 })).toEqual(['2025-12-31T12:00:00.000Z', '2026-01-05T12:00:00.000Z']);
    expect(reasons(NEW_YEAR, { monthly: 3 })).toEqual({
      '2025-12-25T12:00:00.000Z': ['oldest monthly snapshot'],
      '2025-12-31T12:00:00.000Z': ['monthly snapshot'],
      '2026-01-05T12:00:00.000Z': ['monthly snapshot'],
    });
  });

  it('uses UTC days, not local ones', () => {
    const list = [snap('2026-03-01T23:30:00Z'), snap('2026-03-02T00:30:00Z'), snap('2026-03-02T01:00:00+02:00')];
    // The last one is 2026-03-01T23:00Z: in UTC it shares its day with the first.
    expect(kept(list, { daily: 2 })).toEqual(['2026-03-01T23:30:00.000Z', '2026-03-02T00:30:00.000Z']);
  });

  it('puts the last days of December in ISO week 53 with the first days of January (2026-W53)', () => {
    const list = ['2026-12-27', '2026-12-28', '2027-01-01', '2027-01-03', '2027-01-04'].map((d) => snap(`${d}T12:00:00Z`));
    expect(kept(list, { weekly: 3 })).toEqual(['2026-12-27T12:00:00.000Z', '2027-01-03T12:00:00.000Z', '2027-01-04T12:00:00.000Z']);
  });

  it('puts the last days of December in week 1 of the next ISO year (2025-W01)', () => {
    const list = ['2024-12-29', '2024-12-30', '2025-01-05'].map((d) => snap(`${d}T12:00:00Z`));
    expect(kept(list, { weekly: 2 })).toEqual(['2024-12-29T12:00:00.000Z', '2025-01-05T12:00:00.000Z']);
  });

  it('puts 2021-01-03 in week 53 of 2020 with the Monday before', () => {
    const list = ['2020-12-27', '2020-12-28', '2021-01-03', '2021-01-04'].map((d) => snap(`${d}T12:00:00Z`));
    expect(kept(list, { weekly: 3 })).toEqual(['2020-12-27T12:00:00.000Z', '2021-01-03T12:00:00.000Z', '2021-01-04T12:00:00.000Z']);
  });

  it('ends every week on a Sunday, across ten year boundaries', () => {
    const daily = timeline('2019-06-01T12:00:00Z', 24, 3650);
    const keep = applyRetention(daily, { weekly: 10_000 }).keep.map((k) => k.item.time);
    const inner = keep.slice(1, -1);
    expect(inner.length).toBeGreaterThan(500);
    expect(inner.filter((t) => t.getUTCDay() !== 0)).toEqual([]);
    // Saturday 2019-06-01 to Monday 2029-05-28 touch 523 ISO weeks; each gives its newest day, and the oldest day is kept too.
    expect(keep).toHaveLength(524);
    expect([keep[0]!.getUTCDay(), keep[keep.length - 1]!.getUTCDay()]).toEqual([6, 1]);
  });

  it('splits hours at the full hour', () => {
    const list = ['10:00:00', '10:59:59', '11:00:00', '11:30:00'].map((t) => snap(`2026-05-05T${t}Z`));
    expect(kept(list, { hourly: 2 })).toEqual(['2026-05-05T10:59:59.000Z', '2026-05-05T11:30:00.000Z']);
  });
});

describe('applyRetention edge cases', () => {
  it('keeps a single snapshot and handles an empty list', () => {
    const one = [snap('2026-01-01T00:00:00Z')];
    expect(applyRetention(one, { last: 1 })).toEqual({ keep: [{ item: one[0], reasons: ['last snapshot'] }], remove: [] });
    expect(applyRetention([], { daily: 7 })).toEqual({ keep: [], remove: [] });
  });

  it('keeps the rest of T', () => {
    const list = [{ ...snap('2026-01-01T00:00:00Z'), files: 3 }, { ...snap('2026-01-01T06:00:00Z'), files: 4 }];
    const d = applyRetention(list, { last: 1 });
    expect(d.keep[0]!.item.files).toBe(4);
    expect(d.remove[0]!.files).toBe(3);
  });

  it.each<RetentionPolicy>([{}, { last: 0 }, { daily: 0, weekly: 0, monthly: 0 }])('refuses a policy without a rule above 0 (%j)', (policy) => {
    expect(() => applyRetention(SIX_HOURLY, policy)).toThrow(UsageError);
    expect(() => applyRetention(SIX_HOURLY, policy)).toThrow(/prune needs at least one --keep-\* rule/);
  });

  it.each<RetentionPolicy>([{ daily: -1 }, { weekly: 1.5 }, { last: Number.NaN }])('refuses a count that is not a whole number (%j)', (policy) => {
    expect(() => applyRetention(SIX_HOURLY, policy)).toThrow(/must be a whole number/);
  });
});
