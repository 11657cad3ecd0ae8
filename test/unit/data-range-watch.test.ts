import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DATA_RANGES_EVERY_MS, DataRangeWatch } from '../../src/stack/data-range-watch.js';

describe('DataRangeWatch', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('on a filesystem being written, looks at once, every few seconds, and once more when stopped', async () => {
    let looks = 0;
    const told: number[] = [];
    const w = new DataRangeWatch(
      async () => [{ from: 0, to: ++looks }],
      (r) => told.push(r[0]!.to),
    );
    w.start(true);
    await vi.advanceTimersByTimeAsync(2 * DATA_RANGES_EVERY_MS + 10);
    expect(told).toEqual([1, 2, 3]);
    await w.stop();
    expect(told).toEqual([1, 2, 3, 4]);
    await vi.advanceTimersByTimeAsync(3 * DATA_RANGES_EVERY_MS);
    expect(told).toHaveLength(4);
  });

  it('read-only: one look, none at stop', async () => {
    let looks = 0;
    const w = new DataRangeWatch(async () => (looks++, []), () => {});
    w.start(false);
    await vi.advanceTimersByTimeAsync(3 * DATA_RANGES_EVERY_MS);
    await w.stop();
    expect(looks).toBe(1);
  });

  it('a failed look tells nothing and fails nothing; a look still running is not started twice', async () => {
    let release!: () => void;
    let looks = 0;
    const told = vi.fn();
    const w = new DataRangeWatch(() => {
      looks++;
      if (looks === 1) return new Promise((_, reject) => (release = () => reject(new Error('device gone'))));
      return Promise.resolve([]);
    }, told);
    w.start(true);
    await vi.advanceTimersByTimeAsync(2 * DATA_RANGES_EVERY_MS);
    expect(looks).toBe(1);
    release();
    await w.stop();
    expect(looks).toBe(2);
    expect(told).toHaveBeenCalledTimes(1);
  });
});
