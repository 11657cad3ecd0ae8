import { describe, expect, it } from 'vitest';
import { judge } from '../../src/snapshot/rollback.js';

const A = '2026-11-20T030000Z';
const B = '2026-11-21T030000Z';
const C = '2026-11-22T030000Z';

describe('judge', () => {
  it('the same counter and every known snapshot still there: ok', () => {
    expect(judge({ counter: 3, snapshots: [A, B] }, 3, [A, B])).toEqual({ kind: 'ok' });
  });

  it('a snapshot the image has that this machine did not know is fine at the same counter', () => {
    expect(judge({ counter: 3, snapshots: [A] }, 3, [A, B])).toEqual({ kind: 'ok' });
  });

  it('a counter behind the local one is a rollback, whatever the snapshots', () => {
    const v = judge({ counter: 4, snapshots: [A] }, 3, [A, B, C]);
    expect(v.kind).toBe('rollback');
    expect(v.kind === 'rollback' && v.reason).toMatch(/write counter 3, behind 4/);
  });

  it('the same counter with a known complete snapshot missing is a rollback', () => {
    const v = judge({ counter: 3, snapshots: [A, B, C] }, 3, [A]);
    expect(v.kind).toBe('rollback');
    expect(v.kind === 'rollback' && v.reason).toMatch(new RegExp(`snapshot ${B} and 1 more`));
  });

  it('a counter ahead is adopted, even with a known snapshot gone (another machine pruned it)', () => {
    expect(judge({ counter: 3, snapshots: [A, B] }, 5, [B, C])).toEqual({ kind: 'adopt' });
  });

  it('no counter on the image and none here: a vault from before counters, ok', () => {
    expect(judge(undefined, undefined, [A])).toEqual({ kind: 'ok' });
    expect(judge({ counter: 0, snapshots: [] }, undefined, [])).toEqual({ kind: 'ok' });
  });

  it('no counter on the image but one here is a rollback', () => {
    const v = judge({ counter: 2, snapshots: [] }, undefined, []);
    expect(v.kind).toBe('rollback');
    expect(v.kind === 'rollback' && v.reason).toMatch(/has no write counter/);
  });

  it('a machine that never looked adopts whatever counter the image has', () => {
    expect(judge(undefined, 7, [A])).toEqual({ kind: 'adopt' });
  });
});
