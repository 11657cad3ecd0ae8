import { UNIT, type BlockCache } from './block-cache.js';
import type { BlockBackend } from './nbd-server.js';

/** The remote image as the cache sees it: positional reads and writes, and a flush. */
export interface RemoteImage {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Buffer): Promise<void>;
  flush(): Promise<void>;
}

/**
 * Reads up to this size fill the cache: filesystem metadata (inode tables
 * with their readahead, directory blocks, bitmaps). Larger ones are file data
 * read back by a restore or a check, which a push never needs again.
 */
export const READ_FILL_MAX = 64 * 1024;

/**
 * Writes are acknowledged once sent, as sshfs does; a flush waits for the
 * server's answers. Up to this many bytes may be waiting: one round trip per
 * write would hold the many small writes of a push to the link's latency.
 */
export const UNACKED_MAX = 32 << 20;

export interface CacheCounters {
  hitBytes: number;
  missBytes: number;
}

/**
 * The remote image with a write-through cache of its blocks in front:
 * reads of cached units cost nothing on the wire, every write goes
 * to the remote and into the cache, since what a push writes (new
 * directories, inode tables) is what the next push reads. A write the remote
 * fails fails the next write or flush, and the run with it.
 * The LUKS header and key material (below `headerEnd`) are cached whatever
 * the request size: qemu reads a key slot's 250 KB in one request at every
 * open. Key commands change them with cryptsetup, outside this path, but they
 * also replace the generation, which empties the cache.
 */
export class CachedImage implements BlockBackend {
  readonly counters: CacheCounters = { hitBytes: 0, missBytes: 0 };
  private writeSeq = 0;
  private readsInFlight = 0;
  /** Writes that happened while some read was fetching, so a fetch never caches what a newer write replaced. */
  private recentWrites: { from: number; to: number; seq: number }[] = [];
  private readonly unacked = new Set<Promise<void>>();
  private unackedBytes = 0;
  private writeError: Error | undefined;
  /** Why the cache was dropped in this run: a local disk problem must not fail a backup. */
  cacheError: Error | undefined;

  constructor(
    private readonly remote: RemoteImage,
    private cache: BlockCache | undefined,
    private readonly headerEnd: number,
    readonly readOnly: boolean,
  ) {}

  get size(): number {
    return this.remote.size;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const cache = this.cache;
    if (!cache) return this.fetch(offset, length);
    const out = Buffer.alloc(length);
    const end = offset + length;
    const fill = length <= READ_FILL_MAX || end <= this.headerEnd;
    const missing: { from: number; to: number }[] = [];
    // Cached runs are copied now, in one go, before anything can change the cache.
    try {
      for (const run of cache.runs(Math.floor(offset / UNIT), Math.ceil(end / UNIT))) {
        const from = Math.max(offset, run.from * UNIT);
        const to = Math.min(end, run.to * UNIT);
        if (run.present) {
          cache.read(from, to - from).copy(out, from - offset);
          this.counters.hitBytes += to - from;
        } else {
          const last = missing[missing.length - 1];
          if (last && last.to === run.from) last.to = run.to;
          else missing.push({ from: run.from, to: run.to });
        }
      }
    } catch (e) {
      this.drop(e);
      return this.fetch(offset, length);
    }
    if (!missing.length) return out;
    const seq = this.writeSeq;
    this.readsInFlight++;
    try {
      await Promise.all(
        missing.map(async (run) => {
          const from = Math.max(offset, run.from * UNIT);
          const to = Math.min(end, run.to * UNIT);
          if (!fill) {
            (await this.fetch(from, to - from)).copy(out, from - offset);
            return;
          }
          // Whole units, so that they can be cached.
          const unitFrom = run.from * UNIT;
          const unitTo = Math.min(run.to * UNIT, this.size);
          const got = await this.fetch(unitFrom, unitTo - unitFrom);
          got.copy(out, from - offset, from - unitFrom, to - unitFrom);
          if (!this.writtenSince(seq, unitFrom, unitTo)) this.store(unitFrom, got);
        }),
      );
    } finally {
      if (--this.readsInFlight === 0) this.recentWrites = [];
    }
    return out;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    if (this.writeError) throw this.writeError;
    const seq = ++this.writeSeq;
    const end = offset + data.length;
    if (this.readsInFlight) this.recentWrites.push({ from: offset, to: end, seq });
    this.store(offset, data);
    // Sent now, in order with any later read on the same channel: SFTP servers answer in order.
    const sent = this.remote.write(offset, data).then(
      () => {},
      (e: Error) => {
        // The remote may hold part of it: what the cache has of this range can no longer be trusted.
        this.cache?.forget(Math.floor(offset / UNIT), Math.ceil(end / UNIT));
        this.writeError ??= e;
      },
    );
    this.unacked.add(sent);
    this.unackedBytes += data.length;
    void sent.finally(() => {
      this.unacked.delete(sent);
      this.unackedBytes -= data.length;
    });
    while (this.unackedBytes > UNACKED_MAX) await Promise.race(this.unacked);
    if (this.writeError) throw this.writeError;
  }

  async flush(): Promise<void> {
    await Promise.all([...this.unacked]);
    if (this.writeError) throw this.writeError;
    await this.remote.flush();
  }

  private store(offset: number, data: Buffer): void {
    try {
      this.cache?.store(offset, data);
    } catch (e) {
      this.drop(e);
    }
  }

  private drop(e: unknown): void {
    this.cacheError ??= e as Error;
    this.cache = undefined;
  }

  private async fetch(offset: number, length: number): Promise<Buffer> {
    this.counters.missBytes += length;
    return this.remote.read(offset, length);
  }

  private writtenSince(seq: number, from: number, to: number): boolean {
    return this.recentWrites.some((w) => w.seq > seq && w.from < to && w.to > from);
  }
}
