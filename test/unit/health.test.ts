import { describe, expect, it } from 'vitest';
import { vaultHealth } from '../../src/snapshot/health.js';
import type { RunRecord } from '../../src/snapshot/runs.js';
import { parseDuration, plural } from '../../src/ui/format.js';
import { formatAge, formatTime } from '../../src/ui/time.js';

function run(command: string, finished: string, ok: boolean, extra: Partial<RunRecord> = {}): RunRecord {
  return { id: finished, command, vault: 'v', started: finished, finished, ok, exitCode: ok ? 0 : 4, changedBytes: 0, upBytes: 0, downBytes: 0, phases: [], ...extra };
}

const DAY = 86_400_000;
const now = new Date('2026-11-30T12:00:00Z');

describe('vaultHealth', () => {
  it('fresh: a push within maxAge; the newest failure and free space are reported', () => {
    const h = vaultHealth(
      [
        run('push', '2026-11-28T12:00:00Z', true, { snapshot: 'a' }),
        run('push', '2026-11-29T12:00:00Z', false, { error: 'link lost' }),
        run('push', '2026-11-30T06:00:00Z', true, { snapshot: 'b', remoteFreeBytes: 5 }),
        run('list', '2026-11-30T07:00:00Z', true),
      ],
      now,
      3 * DAY,
    );
    expect(h.stale).toBe(false);
    expect(h.lastSuccess?.snapshot).toBe('b');
    expect(h.lastFailure?.error).toBe('link lost');
    expect(h.ageMs).toBe(6 * 3600_000);
    expect(h.remoteFree).toEqual({ bytes: 5, at: '2026-11-30T06:00:00Z' });
  });

  it('stale: the last success is older than maxAge, whatever else ran since', () => {
    const h = vaultHealth([run('push', '2026-11-26T11:59:59Z', true), run('check', '2026-11-30T11:00:00Z', true), run('push', '2026-11-30T11:00:00Z', false)], now, 3 * DAY);
    expect(h.stale).toBe(true);
  });

  it('stale: never pushed', () => {
    expect(vaultHealth([], now, DAY).stale).toBe(true);
    expect(vaultHealth([run('init', '2026-11-30T11:00:00Z', true)], now, DAY).stale).toBe(true);
  });
});

describe('durations, plurals and times', () => {
  it.each([
    ['3d', 3 * DAY],
    ['36h', 36 * 3600_000],
    ['90m', 90 * 60_000],
    ['1w', 7 * DAY],
    [60, 60_000],
  ])('parseDuration(%j)', (s, ms) => {
    expect(parseDuration(s)).toBe(ms);
  });

  it('rejects what is not a duration', () => {
    expect(() => parseDuration('3 days')).toThrow(/not a duration/);
    expect(() => parseDuration(0)).toThrow();
  });

  it('plural', () => {
    expect(plural(1, 'run')).toBe('1 run');
    expect(plural(0, 'run')).toBe('0 runs');
    expect(plural(3, 'run')).toBe('3 runs');
  });

  it('ISO 8601 in UTC, or with the local offset', () => {
    expect(formatTime('2026-11-30T04:04:13.123Z')).toBe('2026-11-30T04:04:13Z');
    expect(formatTime('2026-11-30T04:04:13.123Z', { local: true })).toMatch(/^2026-11-30T\d\d:04:13[+-]\d\d:\d\d$/);
    expect(formatTime('nonsense')).toBe('-');
  });

  it('ages', () => {
    expect(formatAge(12_000)).toBe('12s');
    expect(formatAge(40 * 60_000)).toBe('40m');
    expect(formatAge(5 * 3600_000 + 12 * 60_000)).toBe('5h 12m');
    expect(formatAge(3 * DAY + 4 * 3600_000)).toBe('3d 4h');
  });
});
