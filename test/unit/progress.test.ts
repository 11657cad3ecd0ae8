import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { TrafficMeter } from '../../src/remote/traffic.js';
import { ByteProgressBar, PhaseTicker } from '../../src/ui/progress.js';

/** What is written to stderr, which claims to be a terminal. */
let written: string[];
let tty: boolean | undefined;
beforeEach(() => {
  written = [];
  tty = process.stderr.isTTY;
  process.stderr.isTTY = true;
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    written.push(String(s));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
  process.stderr.isTTY = tty as boolean;
});

describe('PhaseTicker', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const meterAt = (live: ReturnType<TrafficMeter['live']>) => ({ live: () => live }) as unknown as TrafficMeter;

  it('shows a phase past its first second with bytes, rate and time, and clears the line at the end', () => {
    let live: ReturnType<TrafficMeter['live']> = { name: 'fsck', upBytes: 1024, downBytes: 3 << 20, ms: 400 };
    const t = new PhaseTicker({ live: () => live } as unknown as TrafficMeter);
    vi.advanceTimersByTime(300);
    expect(written).toEqual([]);
    live = { name: 'fsck', upBytes: 1024, downBytes: 3 << 20, ms: 2000 };
    vi.advanceTimersByTime(250);
    expect(written.pop()).toBe('\r\x1b[Kfsck  up 1 KiB  down 3 MiB  1.5 MiB/s  2.0 s');
    t.stop();
    expect(written.pop()).toBe('\r\x1b[K');
  });

  it('leaves sync and restore to their own bars', () => {
    const t = new PhaseTicker(meterAt({ name: 'sync', upBytes: 1, downBytes: 1, ms: 5000 }));
    vi.advanceTimersByTime(1000);
    t.stop();
    expect(written).toEqual([]);
  });

  it('draws nothing off a terminal', () => {
    process.stderr.isTTY = false;
    const t = new PhaseTicker(meterAt({ name: 'fsck', upBytes: 1, downBytes: 1, ms: 5000 }));
    vi.advanceTimersByTime(1000);
    t.stop();
    expect(written).toEqual([]);
  });
});

describe('ByteProgressBar', () => {
  it('shows bytes done of the total, the rate and an ETA', () => {
    const bar = new ByteProgressBar('verify', true);
    bar.start(4 << 20);
    bar.add(1 << 20);
    bar.stop();
    const text = written.join('');
    expect(text).toMatch(/verify .* \| 0 B of 4 MiB \| - \| ETA/);
    expect(text).not.toMatch(/undefined/);
  });

  it('stays silent for --json, off a terminal', () => {
    new ByteProgressBar('verify', false).start(10);
    process.stderr.isTTY = false;
    new ByteProgressBar('verify', true).start(10);
    expect(written).toEqual([]);
  });
});
