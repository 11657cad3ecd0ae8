import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockCache, CHUNK_UNITS, KEEP_RUNS, UNIT } from '../../src/stack/block/block-cache.js';

const CHUNK = CHUNK_UNITS * UNIT;
const IMAGE = 64 * CHUNK;

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('BlockCache', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sv-cache-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('marks only the units a store covers whole, and reads them back', () => {
    const c = BlockCache.open(dir, IMAGE, 'g1', 16 * CHUNK);
    const data = pattern(3 * UNIT, 1);
    c.store(UNIT / 2, data);
    expect([0, 1, 2, 3].map((u) => c.has(u))).toEqual([false, true, true, false]);
    expect(c.read(UNIT, 2 * UNIT).equals(data.subarray(UNIT / 2, UNIT / 2 + 2 * UNIT))).toBe(true);
    expect(c.cachedBytes).toBe(2 * UNIT);
    c.discard();
  });

  it('splits runs at chunk boundaries and where presence changes', () => {
    const c = BlockCache.open(dir, IMAGE, 'g1', 16 * CHUNK);
    c.store((CHUNK_UNITS - 2) * UNIT, pattern(4 * UNIT, 2));
    expect(c.runs(CHUNK_UNITS - 4, CHUNK_UNITS + 4)).toEqual([
      { from: CHUNK_UNITS - 4, to: CHUNK_UNITS - 2, present: false },
      { from: CHUNK_UNITS - 2, to: CHUNK_UNITS, present: true },
      { from: CHUNK_UNITS, to: CHUNK_UNITS + 2, present: true },
      { from: CHUNK_UNITS + 2, to: CHUNK_UNITS + 4, present: false },
    ]);
    c.discard();
  });

  it('comes back after a commit at the generation it was committed with, and only then', () => {
    const data = pattern(8 * UNIT, 3);
    const a = BlockCache.open(dir, IMAGE, undefined, 16 * CHUNK);
    expect(a.reused).toBe(false);
    a.store(5 * CHUNK, data);
    a.commit('g2', true);

    const b = BlockCache.open(dir, IMAGE, 'g2', 16 * CHUNK);
    expect(b.reused).toBe(true);
    expect(b.read(5 * CHUNK, data.length).equals(data)).toBe(true);
    b.commit('g3', true);

    const other = BlockCache.open(dir, IMAGE, 'g2', 16 * CHUNK);
    expect(other.reused).toBe(false);
    expect(other.has((5 * CHUNK) / UNIT)).toBe(false);
    other.discard();
  });

  it('is discarded when a run ends without committing (a crash)', () => {
    const a = BlockCache.open(dir, IMAGE, undefined, 16 * CHUNK);
    a.store(0, pattern(UNIT, 4));
    a.commit('g1', true);
    const b = BlockCache.open(dir, IMAGE, 'g1', 16 * CHUNK);
    b.discard();
    const c = BlockCache.open(dir, IMAGE, 'g1', 16 * CHUNK);
    expect(c.reused).toBe(false);
    c.discard();
  });

  it('starts empty for an image of another size', () => {
    const a = BlockCache.open(dir, IMAGE, undefined, 16 * CHUNK);
    a.store(0, pattern(UNIT, 5));
    a.commit('g1', true);
    const b = BlockCache.open(dir, 2 * IMAGE, 'g1', 16 * CHUNK);
    expect(b.reused).toBe(false);
    b.discard();
  });

  it('evicts the least recently used chunk when full, and never grows its file past the limit', () => {
    const c = BlockCache.open(dir, IMAGE, 'g1', 2 * CHUNK);
    c.store(0, pattern(CHUNK, 6));
    c.store(CHUNK, pattern(CHUNK, 7));
    c.read(0, UNIT); // chunk 0 is now the most recently used
    c.store(2 * CHUNK, pattern(CHUNK, 8));
    expect(c.has(0)).toBe(true);
    expect(c.has(CHUNK_UNITS)).toBe(false);
    expect(c.has(2 * CHUNK_UNITS)).toBe(true);
    expect(c.read(2 * CHUNK, CHUNK).equals(pattern(CHUNK, 8))).toBe(true);
    expect(c.read(0, CHUNK).equals(pattern(CHUNK, 6))).toBe(true);
    expect(c.cachedBytes).toBe(2 * CHUNK);
    c.commit('g2', true);
    expect(statSync(join(dir, 'data')).size).toBeLessThanOrEqual(2 * CHUNK);
  });

  it('drops what no longer fits when the limit shrinks', () => {
    const a = BlockCache.open(dir, IMAGE, undefined, 4 * CHUNK);
    for (let k = 0; k < 4; k++) a.store(k * CHUNK, pattern(CHUNK, k));
    a.commit('g1', true);
    const b = BlockCache.open(dir, IMAGE, 'g1', 2 * CHUNK);
    expect(b.cachedBytes).toBeLessThanOrEqual(2 * CHUNK);
    for (let k = 0; k < 4; k++) if (b.has(k * CHUNK_UNITS)) expect(b.read(k * CHUNK, CHUNK).equals(pattern(CHUNK, k))).toBe(true);
    b.commit('g1', true);
    expect(statSync(join(dir, 'data')).size).toBeLessThanOrEqual(2 * CHUNK);
  });

  it('caches nothing with a limit of 0', () => {
    const c = BlockCache.open(dir, IMAGE, 'g1', 0);
    c.store(0, pattern(CHUNK, 9));
    expect(c.has(0)).toBe(false);
    c.discard();
  });

  it('forgets units', () => {
    const c = BlockCache.open(dir, IMAGE, 'g1', 4 * CHUNK);
    c.store(0, pattern(4 * UNIT, 10));
    c.forget(1, 3);
    expect([0, 1, 2, 3].map((u) => c.has(u))).toEqual([true, false, false, true]);
    expect(c.cachedBytes).toBe(2 * UNIT);
    c.discard();
  });

  it('keeps nothing of excluded ranges: drops what it held there and stores around them', () => {
    const c = BlockCache.open(dir, IMAGE, 'g1', 16 * CHUNK);
    c.store(0, pattern(4 * CHUNK, 11));
    c.exclude([{ from: CHUNK, to: 3 * CHUNK }]);
    expect(c.cachedBytes).toBe(2 * CHUNK);
    expect([0, CHUNK_UNITS, 2 * CHUNK_UNITS, 3 * CHUNK_UNITS].map((u) => c.has(u))).toEqual([true, false, false, true]);
    c.store(CHUNK - 2 * UNIT, pattern(4 * UNIT, 12));
    expect(c.has(CHUNK_UNITS - 1)).toBe(true);
    expect(c.has(CHUNK_UNITS)).toBe(false);
    expect(c.read(CHUNK - 2 * UNIT, 2 * UNIT).equals(pattern(4 * UNIT, 12).subarray(0, 2 * UNIT))).toBe(true);
    c.commit('g2', true);
    expect(statSync(join(dir, 'data')).size).toBeLessThanOrEqual(4 * CHUNK);
  });

  it('drops chunks no writing run used in KEEP_RUNS runs; reading keeps them, read-only runs do not age them', () => {
    const a = BlockCache.open(dir, IMAGE, undefined, 16 * CHUNK);
    a.store(0, pattern(CHUNK, 13));
    a.store(CHUNK, pattern(CHUNK, 14));
    a.commit('g1', true);
    let gen = 1;
    for (let run = 1; run <= KEEP_RUNS; run++) {
      const reader = BlockCache.open(dir, IMAGE, `g${gen}`, 16 * CHUNK);
      reader.commit(`g${gen}`, false);
      const writer = BlockCache.open(dir, IMAGE, `g${gen}`, 16 * CHUNK);
      expect(writer.has(0) && writer.has(CHUNK_UNITS)).toBe(true);
      writer.read(0, UNIT);
      writer.commit(`g${++gen}`, true);
    }
    const last = BlockCache.open(dir, IMAGE, `g${gen}`, 16 * CHUNK);
    expect(last.has(0)).toBe(true);
    expect(last.has(CHUNK_UNITS)).toBe(false);
    expect(last.read(0, CHUNK).equals(pattern(CHUNK, 13))).toBe(true);
    last.commit(`g${gen}`, false);
    expect(statSync(join(dir, 'data')).size).toBeLessThanOrEqual(CHUNK);
  });

  it('moves what it keeps into the lowest slots at commit, and cuts the file after them', () => {
    const a = BlockCache.open(dir, IMAGE, undefined, 16 * CHUNK);
    for (let k = 0; k < 8; k++) a.store(k * CHUNK, pattern(CHUNK, 20 + k));
    a.exclude([{ from: 0, to: 6 * CHUNK }]);
    a.commit('g1', true);
    expect(statSync(join(dir, 'data')).size).toBe(2 * CHUNK);
    const b = BlockCache.open(dir, IMAGE, 'g1', 16 * CHUNK);
    for (const k of [6, 7]) expect(b.read(k * CHUNK, CHUNK).equals(pattern(CHUNK, 20 + k))).toBe(true);
    b.store(0, pattern(CHUNK, 30));
    expect(b.read(0, CHUNK).equals(pattern(CHUNK, 30))).toBe(true);
    expect(b.read(7 * CHUNK, CHUNK).equals(pattern(CHUNK, 27))).toBe(true);
    b.discard();
  });
});
