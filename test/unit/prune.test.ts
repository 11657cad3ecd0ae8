import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { snapshotName } from '../../src/snapshot/naming.js';
import { planPrune } from '../../src/snapshot/prune.js';

/** Directory names, one per ISO time; a trailing '+' marks an interrupted push. */
function dirs(...times: string[]): string[] {
  return times.map((t) => (t.endsWith('+') ? `${snapshotName(new Date(t.slice(0, -1)))}.partial` : snapshotName(new Date(t))));
}

function names(list: { dir: string }[]): string[] {
  return list.map((i) => i.dir);
}

// Twice a day for 10 days (2026-03-01 is a Sunday), plus a week-old and a year-old one.
const history = dirs(
  '2025-02-10T12:00:00Z',
  '2026-02-20T09:00:00Z',
  ...Array.from({ length: 10 }, (_, d) => [`2026-03-${String(d + 1).padStart(2, '0')}T03:00:00Z`, `2026-03-${String(d + 1).padStart(2, '0')}T15:00:00Z`]).flat(),
);

describe('planPrune', () => {
  it('keep-last keeps the N newest complete snapshots and removes the rest', () => {
    const plan = planPrune(history, { last: 3 });
    expect(names(plan.keep)).toEqual(dirs('2026-03-09T15:00:00Z', '2026-03-10T03:00:00Z', '2026-03-10T15:00:00Z'));
    expect(plan.remove).toHaveLength(history.length - 3);
    expect(plan.keep.every((k) => k.reasons.includes('last snapshot'))).toBe(true);
  });

  it('keep-daily keeps the newest snapshot of each of the last N days', () => {
    const plan = planPrune(history, { daily: 3 });
    expect(names(plan.keep)).toEqual(dirs('2026-03-08T15:00:00Z', '2026-03-09T15:00:00Z', '2026-03-10T15:00:00Z'));
  });

  it('daily and weekly and yearly together, with the reasons of each kept snapshot', () => {
    const plan = planPrune(history, { daily: 2, weekly: 2, yearly: 3 });
    // Weeks: 2026-03-09..10 is W11, 2026-03-02..08 is W10; years: 2026, 2025.
    expect(names(plan.keep)).toEqual(dirs('2025-02-10T12:00:00Z', '2026-03-08T15:00:00Z', '2026-03-09T15:00:00Z', '2026-03-10T15:00:00Z'));
    const why = Object.fromEntries(plan.keep.map((k) => [k.dir, k.reasons]));
    expect(why[dirs('2026-03-10T15:00:00Z')[0]!]).toEqual(['daily snapshot', 'weekly snapshot', 'yearly snapshot']);
    expect(why[dirs('2026-03-08T15:00:00Z')[0]!]).toEqual(['weekly snapshot']);
    expect(why[dirs('2025-02-10T12:00:00Z')[0]!]).toEqual(['yearly snapshot']);
    expect(plan.keep.length + plan.remove.length).toBe(history.length);
  });

  it('monthly keeps one per month, the oldest too while count is left', () => {
    const plan = planPrune(history, { monthly: 6 });
    expect(names(plan.keep)).toEqual(dirs('2025-02-10T12:00:00Z', '2026-02-20T09:00:00Z', '2026-03-10T15:00:00Z'));
  });

  it('removes interrupted pushes older than the newest complete snapshot, keeps a newer one to resume', () => {
    const list = [...dirs('2026-03-01T03:00:00Z', '2026-03-02T03:00:00Z+', '2026-03-03T03:00:00Z', '2026-03-04T03:00:00Z+')];
    const plan = planPrune(list, { last: 10 });
    expect(names(plan.keep)).toEqual(dirs('2026-03-01T03:00:00Z', '2026-03-03T03:00:00Z', '2026-03-04T03:00:00Z+'));
    expect(names(plan.remove)).toEqual(dirs('2026-03-02T03:00:00Z+'));
    expect(plan.remove[0]!.partial).toBe(true);
    expect(plan.keep.find((k) => k.partial)!.reasons).toEqual(['interrupted push the next push resumes']);
  });

  it('keeps every partial when there is no complete snapshot yet', () => {
    const list = dirs('2026-03-01T03:00:00Z+');
    expect(names(planPrune(list, { last: 1 }).keep)).toEqual(list);
  });

  it('never removes the newest complete snapshot, whatever the policy', () => {
    for (const policy of [{ last: 1 }, { hourly: 1 }, { yearly: 1 }, { weekly: 1, monthly: 1 }]) {
      const newest = history[history.length - 1];
      expect(names(planPrune(history, policy).keep)).toContain(newest);
    }
  });

  it('ignores directories that are not snapshots', () => {
    const plan = planPrune(['lost+found', ...dirs('2026-03-01T03:00:00Z')], { last: 1 });
    expect(names(plan.keep)).toEqual(dirs('2026-03-01T03:00:00Z'));
    expect(plan.remove).toEqual([]);
  });

  it('refuses a policy without a rule above 0, even on an empty vault', () => {
    expect(() => planPrune(history, {})).toThrow(UsageError);
    expect(() => planPrune([], { last: 0 })).toThrow(UsageError);
  });
});
