import { Duplex } from 'node:stream';
import { UsageError } from '../errors.js';
import { parseLinkRate } from '../ui/format.js';

/**
 * `--limit-upload`: the run's upload paced on the SSH connection itself, so a
 * backup on a shared uplink leaves room for a video call. The pacing sits
 * above the socket, whose counters still count every byte that leaves.
 */
let flagRate: string | undefined;

/** The command line's `--limit-upload`, which overrides the vault's config. */
export function setUploadLimitFlag(rate: string | undefined): void {
  if (rate !== undefined) {
    try {
      parseLinkRate(rate);
    } catch (e) {
      throw new UsageError(`--limit-upload ${rate}: ${(e as Error).message}`, { cause: e });
    }
  }
  flagRate = rate;
}

/** Bytes per second from a link rate like `2mbit`, or undefined for no limit. */
export function uploadLimit(configured: string | undefined): number | undefined {
  const rate = flagRate ?? configured;
  return rate === undefined ? undefined : parseLinkRate(rate) / 8;
}

/** Writes leave in slices so that the pace stays even at low rates. */
const SLICE = 16 * 1024;
/**
 * Credit banked while the writer is idle (rsync walking the tree, a flush
 * waiting for answers), so that brief pauses do not pull the average below
 * the cap; short enough that no burst a video call would notice builds up.
 */
const BURST_MS = 250;

/**
 * A Duplex in front of `inner` whose writes leave no faster than
 * `bytesPerSecond`; reads pass straight through.
 */
export function throttled(inner: Duplex, bytesPerSecond: number): Duplex {
  let nextFree = performance.now();
  const outer = new Duplex({
    read() {
      inner.resume();
    },
    write(chunk: Buffer, _enc, done) {
      const send = async () => {
        for (let at = 0; at < chunk.length; at += SLICE) {
          const slice = chunk.subarray(at, at + SLICE);
          const start = Math.max(performance.now() - BURST_MS, nextFree);
          nextFree = start + (slice.length / bytesPerSecond) * 1000;
          const wait = start - performance.now();
          if (wait > 1) await new Promise((r) => setTimeout(r, wait));
          if (!inner.write(slice)) await new Promise((r) => inner.once('drain', r));
        }
      };
      send().then(() => done(), done);
    },
    final(done) {
      inner.end();
      done();
    },
    destroy(err, done) {
      inner.destroy(err ?? undefined);
      done(err);
    },
  });
  inner.on('data', (b: Buffer) => {
    if (!outer.push(b)) inner.pause();
  });
  inner.on('end', () => outer.push(null));
  inner.on('error', (e) => outer.destroy(e));
  inner.on('close', () => outer.destroy());
  return outer;
}
