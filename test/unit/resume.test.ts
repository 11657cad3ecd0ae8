import { describe, expect, it } from 'vitest';
import { parseSnapshotDir, type SnapshotRef } from '../../src/snapshot/naming.js';
import { planLinks } from '../../src/snapshot/resume.js';

const refs = (...dirs: string[]): SnapshotRef[] => dirs.map((d) => parseSnapshotDir(d)!);

describe('planLinks', () => {
  it('without an interrupted run links only from the base', () => {
    const r = refs('2026-11-20T030000Z', '2026-11-21T030000Z');
    expect(planLinks(r, r[1], '/s', true)).toEqual({ linkDests: ['/s/2026-11-21T030000Z'], stalePartials: [] });
  });

  it('the first push has nothing to link from', () => {
    expect(planLinks([], undefined, '/s', true)).toEqual({ linkDests: [], stalePartials: [] });
  });

  it('looks in interrupted runs first, newest first, then the base, and replaces every interrupted run', () => {
    const r = refs('2026-11-20T030000Z', '2026-11-21T030000Z.partial', '2026-11-22T030000Z.partial');
    expect(planLinks(r, r[0], '/s', true)).toEqual({
      linkDests: ['/s/2026-11-22T030000Z.partial', '/s/2026-11-21T030000Z.partial', '/s/2026-11-20T030000Z'],
      stalePartials: ['/s/2026-11-22T030000Z.partial', '/s/2026-11-21T030000Z.partial'],
    });
  });

  it('after a cut-off run links only from the base, and still replaces the interrupted runs', () => {
    const r = refs('2026-11-20T030000Z', '2026-11-21T030000Z.partial');
    expect(planLinks(r, r[0], '/s', false)).toEqual({ linkDests: ['/s/2026-11-20T030000Z'], stalePartials: ['/s/2026-11-21T030000Z.partial'] });
  });

  it("stays within rsync's 20 link-dest directories and keeps the base", () => {
    const partials = Array.from({ length: 25 }, (_, i) => `2026-11-${String(i + 1).padStart(2, '0')}T030000Z.partial`);
    const r = refs('2026-10-01T030000Z', ...partials);
    const plan = planLinks(r, r[0], '/s', true);
    expect(plan.linkDests).toHaveLength(20);
    expect(plan.linkDests[0]).toBe('/s/2026-11-25T030000Z.partial');
    expect(plan.linkDests[19]).toBe('/s/2026-10-01T030000Z');
    expect(plan.stalePartials).toHaveLength(25);
  });
});
