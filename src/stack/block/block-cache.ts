import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, writeSync, ftruncateSync, fstatSync } from 'node:fs';
import { join } from 'node:path';

/** Cache granularity: the filesystem's block size (docs/design.md, "The block path"), so one directory block is one unit. */
export const UNIT = 1024;
/** Units per chunk; a chunk is what takes a slot in the data file and what is evicted. */
export const CHUNK_UNITS = 64;
const CHUNK_SIZE = CHUNK_UNITS * UNIT;
const BITS_BYTES = CHUNK_UNITS / 8;
/** Chunk number, slot, the writing run that last used it, then its bitmap. */
const RECORD = 12 + BITS_BYTES;
const STATE_VERSION = 3;
/**
 * A chunk no writing run read or wrote in this many runs is dropped: it
 * holds what the walks no longer read, such as the old copies of tree nodes
 * a copy-on-write filesystem replaced (docs/design.md, "The block path").
 */
export const KEEP_RUNS = 3;

interface CacheState {
  version: number;
  /** The remote generation the cached blocks belong to; null while a run has the cache open. */
  generation: string | null;
  imageSize: number;
  /** Writing runs committed so far: the clock of chunks' last use. */
  runs: number;
}

interface Chunk {
  slot: number;
  bits: Buffer;
  /** The run that last read or wrote it. */
  used: number;
}

/** Units [from, to). */
interface UnitRange {
  from: number;
  to: number;
}

export interface Run extends UnitRange {
  present: boolean;
}

/**
 * The persistent local copy of image blocks (ciphertext only: it sits below
 * LUKS). Chunks of 64 KiB of the image live in slots of a data file no larger
 * than the size limit, least recently used evicted first; a bitmap per chunk
 * says which 1 KiB units hold what the remote holds. Ranges the filesystem
 * says hold file data are never kept, and chunks no recent writing run used
 * are dropped, so it holds what a walk reads rather than everything a push
 * wrote. Valid only for the
 * remote generation it was committed with, and marked invalid on disk while a
 * run has it open, so a run that dies leaves nothing that could be trusted.
 *
 * Synchronous on purpose: a lookup and the read or write it decides on
 * happen with nothing in between, so no eviction can slip under them.
 */
export class BlockCache {
  /** In least-recently-used order: a use moves a chunk to the end. */
  private readonly chunks = new Map<number, Chunk>();
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private units = 0;
  /** Unit ranges never kept, in order. */
  private excluded: UnitRange[] = [];

  private constructor(
    private readonly dir: string,
    private readonly fd: number,
    readonly imageSize: number,
    private readonly maxSlots: number,
    /** True when the cache came back from disk rather than starting empty. */
    readonly reused: boolean,
    /** This run's number on the clock of last use. */
    private readonly run: number,
  ) {}

  /** Opens the cache of `dir` for a run; starts empty unless it was committed at `generation` for an image of this size. */
  static open(dir: string, imageSize: number, generation: string | undefined, maxBytes: number): BlockCache {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const state = readState(dir);
    const reuse = !!generation && state?.version === STATE_VERSION && state.generation === generation && state.imageSize === imageSize;
    // Invalid from here until commit: a run that dies leaves a cache the next run discards.
    const run = (reuse ? state.runs : 0) + 1;
    writeState(dir, { version: STATE_VERSION, generation: null, imageSize, runs: run - 1 });
    if (!reuse) {
      rmSync(join(dir, 'data'), { force: true });
      rmSync(join(dir, 'map'), { force: true });
    }
    const maxSlots = Math.floor(maxBytes / CHUNK_SIZE);
    const fd = openSync(join(dir, 'data'), reuse ? 'r+' : 'w+', 0o600);
    const cache = new BlockCache(dir, fd, imageSize, maxSlots, reuse, run);
    if (reuse) {
      let map = Buffer.alloc(0);
      try {
        map = readFileSync(join(dir, 'map'));
      } catch {
        // No map: nothing is known to be cached.
      }
      cache.load(map);
    }
    return cache;
  }

  get cachedBytes(): number {
    return this.units * UNIT;
  }

  has(unit: number): boolean {
    const c = this.chunks.get(Math.floor(unit / CHUNK_UNITS));
    return !!c && bit(c.bits, unit % CHUNK_UNITS);
  }

  /** Runs of units in [from, to) that are all present or all absent and lie in one chunk, in order. */
  runs(from: number, to: number): Run[] {
    const out: Run[] = [];
    for (let u = from; u < to; u++) {
      const present = this.has(u);
      const last = out[out.length - 1];
      if (last && last.present === present && u % CHUNK_UNITS !== 0) last.to = u + 1;
      else out.push({ from: u, to: u + 1, present });
    }
    return out;
  }

  /**
   * Up to `count` distinct cached units at or above `minUnit`, chosen with
   * `random` (returns [0, 1)); fewer when the cache holds fewer.
   */
  sampleUnits(count: number, minUnit: number, random: () => number): number[] {
    const candidates = [...this.chunks.entries()].filter(([k]) => (k + 1) * CHUNK_UNITS > minUnit);
    const picked = new Set<number>();
    for (let tries = 0; picked.size < count && candidates.length && tries < count * 8; tries++) {
      const [k, c] = candidates[Math.floor(random() * candidates.length)]!;
      const present: number[] = [];
      for (let i = 0; i < CHUNK_UNITS; i++) if (bit(c.bits, i) && k * CHUNK_UNITS + i >= minUnit) present.push(k * CHUNK_UNITS + i);
      if (present.length) picked.add(present[Math.floor(random() * present.length)]!);
    }
    return [...picked].sort((a, b) => a - b);
  }

  /** Reads a range inside one chunk whose units are present. */
  read(offset: number, length: number): Buffer {
    const c = this.use(Math.floor(offset / CHUNK_SIZE));
    if (!c) throw new Error(`block cache: read of an uncached range at ${offset}`);
    const buf = Buffer.alloc(length);
    const n = readSync(this.fd, buf, 0, length, c.slot * CHUNK_SIZE + (offset % CHUNK_SIZE));
    if (n !== length) throw new Error(`the block cache in ${this.dir} is shorter than it should be`);
    return buf;
  }

  /**
   * Stores `data` at `offset` (any range) and marks the units it covers
   * whole; units it covers in part keep their state, their cached bytes updated.
   */
  store(offset: number, data: Buffer): void {
    if (this.maxSlots === 0) return;
    for (const piece of this.keptParts(offset, offset + data.length)) this.storeRange(piece.from, data.subarray(piece.from - offset, piece.to - offset));
  }

  private storeRange(offset: number, data: Buffer): void {
    const end = offset + data.length;
    for (let at = offset; at < end; ) {
      const k = Math.floor(at / CHUNK_SIZE);
      const stop = Math.min(end, (k + 1) * CHUNK_SIZE);
      const c = this.use(k) ?? this.allocate(k);
      writeSync(this.fd, data, at - offset, stop - at, c.slot * CHUNK_SIZE + (at % CHUNK_SIZE));
      const first = Math.ceil(at / UNIT) - k * CHUNK_UNITS;
      const last = Math.floor(stop / UNIT) - k * CHUNK_UNITS;
      for (let i = first; i < last; i++) {
        if (!bit(c.bits, i)) {
          c.bits[i >> 3] = c.bits[i >> 3]! | (1 << (i & 7));
          this.units++;
        }
      }
      at = stop;
    }
  }

  /** Forgets units [from, to). */
  forget(from: number, to: number): void {
    for (let k = Math.floor(from / CHUNK_UNITS); k * CHUNK_UNITS < to; k++) {
      const c = this.chunks.get(k);
      if (c) this.clearUnits(k, c, Math.max(from, k * CHUNK_UNITS), Math.min(to, (k + 1) * CHUNK_UNITS));
    }
  }

  /**
   * Byte ranges of the image whose units are never kept from now on (file
   * data, which no walk reads again); what the cache holds of them goes.
   * Replaces the ranges given before.
   */
  exclude(ranges: readonly { from: number; to: number }[]): void {
    this.excluded = ranges.map((r) => ({ from: Math.floor(r.from / UNIT), to: Math.ceil(r.to / UNIT) })).sort((a, b) => a.from - b.from);
    for (const [k, c] of [...this.chunks]) {
      for (const r of this.excluded) {
        if (r.from < (k + 1) * CHUNK_UNITS && r.to > k * CHUNK_UNITS && this.clearUnits(k, c, Math.max(r.from, k * CHUNK_UNITS), Math.min(r.to, (k + 1) * CHUNK_UNITS))) break;
      }
    }
  }

  /**
   * Makes the cache valid for `generation` (what the remote now holds) and
   * closes it. A writing run advances the clock of last use, and what no
   * writing run used in `KEEP_RUNS` goes.
   */
  commit(generation: string, writing: boolean): void {
    if (writing) {
      for (const [k, c] of [...this.chunks]) if (c.used <= this.run - KEEP_RUNS) this.release(k, c);
    }
    this.compact();
    fsyncSync(this.fd);
    closeSync(this.fd);
    const tmp = join(this.dir, 'map.tmp');
    writeFileSync(tmp, this.save(), { mode: 0o600 });
    renameSync(tmp, join(this.dir, 'map'));
    writeState(this.dir, { version: STATE_VERSION, generation, imageSize: this.imageSize, runs: writing ? this.run : this.run - 1 });
  }

  /** Closes without committing: the next run starts empty. */
  discard(): void {
    closeSync(this.fd);
  }

  private use(k: number): Chunk | undefined {
    const c = this.chunks.get(k);
    if (c) {
      this.chunks.delete(k);
      this.chunks.set(k, c);
      c.used = this.run;
    }
    return c;
  }

  /** The parts of bytes [from, to) outside the excluded ranges. */
  private keptParts(from: number, to: number): { from: number; to: number }[] {
    const out: { from: number; to: number }[] = [];
    let at = from;
    for (const r of this.excluded) {
      const rFrom = r.from * UNIT;
      const rTo = r.to * UNIT;
      if (rTo <= at || rFrom >= to) continue;
      if (rFrom > at) out.push({ from: at, to: rFrom });
      at = Math.max(at, rTo);
    }
    if (at < to) out.push({ from: at, to });
    return out;
  }

  /** Clears units [from, to) of chunk `k`, which holds them all; an emptied chunk gives back its slot (then true). */
  private clearUnits(k: number, c: Chunk, from: number, to: number): boolean {
    for (let u = from; u < to; u++) {
      const i = u % CHUNK_UNITS;
      if (bit(c.bits, i)) {
        c.bits[i >> 3] = c.bits[i >> 3]! & ~(1 << (i & 7));
        this.units--;
      }
    }
    if (c.bits.some((b) => b !== 0)) return false;
    this.release(k, c);
    return true;
  }

  private release(k: number, c: Chunk): void {
    this.chunks.delete(k);
    this.units -= c.bits.reduce((n, b) => n + popcount(b), 0);
    this.freeSlots.push(c.slot);
  }

  /**
   * Moves the chunks in the highest slots into free lower ones, copying only
   * their cached units, and cuts the data file after the last slot in use:
   * what the cache drops leaves the disk.
   */
  private compact(): void {
    const bySlot = new Map([...this.chunks.values()].map((c) => [c.slot, c]));
    const free = [...this.freeSlots].sort((a, b) => a - b);
    let top = this.nextSlot - 1;
    for (const slot of free) {
      while (top > slot && !bySlot.has(top)) top--;
      if (top <= slot) break;
      const c = bySlot.get(top)!;
      for (let i = 0; i < CHUNK_UNITS; i++) {
        if (!bit(c.bits, i)) continue;
        const unit = Buffer.alloc(UNIT);
        readSync(this.fd, unit, 0, UNIT, top * CHUNK_SIZE + i * UNIT);
        writeSync(this.fd, unit, 0, UNIT, slot * CHUNK_SIZE + i * UNIT);
      }
      bySlot.delete(top);
      bySlot.set(slot, c);
      c.slot = slot;
      top--;
    }
    this.nextSlot = bySlot.size ? Math.max(...bySlot.keys()) + 1 : 0;
    this.freeSlots.length = 0;
    for (let s = 0; s < this.nextSlot; s++) if (!bySlot.has(s)) this.freeSlots.push(s);
    if (fstatSync(this.fd).size > this.nextSlot * CHUNK_SIZE) ftruncateSync(this.fd, this.nextSlot * CHUNK_SIZE);
  }

  private allocate(k: number): Chunk {
    let slot = this.freeSlots.pop();
    if (slot === undefined && this.nextSlot < this.maxSlots) slot = this.nextSlot++;
    if (slot === undefined) {
      const [oldest, victim] = this.chunks.entries().next().value as [number, Chunk];
      this.chunks.delete(oldest);
      this.units -= victim.bits.reduce((n, b) => n + popcount(b), 0);
      slot = victim.slot;
    }
    const c = { slot, bits: Buffer.alloc(BITS_BYTES), used: this.run };
    this.chunks.set(k, c);
    return c;
  }

  private save(): Buffer {
    const out = Buffer.alloc(this.chunks.size * RECORD);
    let p = 0;
    for (const [k, c] of this.chunks) {
      out.writeUInt32BE(k, p);
      out.writeUInt32BE(c.slot, p + 4);
      out.writeUInt32BE(c.used, p + 8);
      c.bits.copy(out, p + 12);
      p += RECORD;
    }
    return out;
  }

  /** Takes back a saved map, dropping what no longer fits a smaller size limit. */
  private load(map: Buffer): void {
    const used = new Set<number>();
    for (let p = 0; p + RECORD <= map.length; p += RECORD) {
      const slot = map.readUInt32BE(p + 4);
      if (slot >= this.maxSlots || used.has(slot)) continue;
      used.add(slot);
      const bits = Buffer.from(map.subarray(p + 12, p + RECORD));
      this.chunks.set(map.readUInt32BE(p), { slot, bits, used: map.readUInt32BE(p + 8) });
      this.units += bits.reduce((n, b) => n + popcount(b), 0);
    }
    for (const s of used) this.nextSlot = Math.max(this.nextSlot, s + 1);
    for (let s = 0; s < this.nextSlot; s++) if (!used.has(s)) this.freeSlots.push(s);
    if (fstatSync(this.fd).size > this.maxSlots * CHUNK_SIZE) ftruncateSync(this.fd, this.maxSlots * CHUNK_SIZE);
  }
}

function bit(bits: Buffer, i: number): boolean {
  return (bits[i >> 3]! & (1 << (i & 7))) !== 0;
}

function popcount(b: number): number {
  let n = 0;
  for (; b; b &= b - 1) n++;
  return n;
}

function readState(dir: string): CacheState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as CacheState;
  } catch {
    return undefined;
  }
}

function writeState(dir: string, state: CacheState): void {
  const tmp = join(dir, 'state.json.tmp');
  writeFileSync(tmp, JSON.stringify(state) + '\n', { mode: 0o600 });
  renameSync(tmp, join(dir, 'state.json'));
}
