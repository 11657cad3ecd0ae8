import { describe, expect, it } from 'vitest';
import { holderGone, parseHolder } from '../../src/stack/run-lock.js';

const proc = { alive: (pid: number) => pid === 10, start: (pid: number) => (pid === 10 ? 500 : undefined) };

describe('run lock staleness', () => {
  it('reads this version\'s files and older ones', () => {
    expect(parseHolder('{"pid":10,"start":500}\n')).toEqual({ pid: 10, start: 500 });
    expect(parseHolder('10\n')).toEqual({ pid: 10 });
    expect(parseHolder('')).toBeUndefined();
    expect(parseHolder('{"pid":"x"}')).toBeUndefined();
    expect(parseHolder('-3')).toBeUndefined();
  });
  it('a live process started when the lock says holds it', () => {
    expect(holderGone({ pid: 10, start: 500 }, proc)).toBe(false);
  });
  it('a dead pid, or a pid now naming a process started at another time, holds nothing', () => {
    expect(holderGone({ pid: 11, start: 500 }, proc)).toBe(true);
    expect(holderGone({ pid: 10, start: 499 }, proc)).toBe(true);
  });
  it('an older lock without a start time holds while its pid lives', () => {
    expect(holderGone({ pid: 10 }, proc)).toBe(false);
    expect(holderGone({ pid: 11 }, proc)).toBe(true);
  });
  it('a file without a holder holds nothing: this version never writes one', () => {
    expect(holderGone(undefined, proc)).toBe(true);
  });
});
