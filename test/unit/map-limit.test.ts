import { describe, expect, it } from 'vitest';
import { mapLimit } from '../../src/map-limit.js';

describe('mapLimit', () => {
  it('calls fn once per item, in order, with never more than limit pending', async () => {
    const started: number[] = [];
    let pending = 0;
    let most = 0;
    await mapLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      started.push(n);
      most = Math.max(most, ++pending);
      await new Promise((r) => setImmediate(r));
      pending--;
    });
    expect(started).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(most).toBe(3);
  });

  it('does nothing for no items, and a failure rejects the whole', async () => {
    let calls = 0;
    await mapLimit([], 4, async () => {
      calls++;
    });
    expect(calls).toBe(0);
    await expect(
      mapLimit([1, 2], 2, async (n) => {
        if (n === 2) throw new Error('two');
      }),
    ).rejects.toThrow('two');
  });
});
