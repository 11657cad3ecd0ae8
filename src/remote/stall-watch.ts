import { Transform } from 'node:stream';
import { UsageError } from '../errors.js';

/** How long a remote request may go unanswered before the run gives the server up. */
export const DEFAULT_REQUEST_TIMEOUT_SECONDS = 120;

/**
 * The request timeout in seconds: SSHVAULT_REQUEST_TIMEOUT if set (a one-off
 * override, and how tests make a stall quick), else the vault's
 * `requestTimeoutSeconds`, else the default.
 */
export function requestTimeoutSeconds(configured: number | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SSHVAULT_REQUEST_TIMEOUT;
  if (raw === undefined || raw === '') return configured ?? DEFAULT_REQUEST_TIMEOUT_SECONDS;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`SSHVAULT_REQUEST_TIMEOUT=${raw} is not a positive number of seconds`);
  return n;
}

/**
 * Notices a server that keeps the connection up (keepalives are answered by
 * sshd itself) but stops answering requests: while any request waits, some
 * answer must arrive every `ms`. Measured from the last answer, not per
 * request, so requests queued behind a slow but moving link do not count as
 * a stall.
 */
export class StallWatch {
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    readonly ms: number,
    private readonly onStall: () => void,
  ) {}

  /** A request went out. */
  begin(): void {
    if (this.stopped) return;
    this.pending++;
    if (!this.timer) this.arm();
  }

  /** An answer came back (or the request was given up). */
  end(): void {
    if (this.stopped) return;
    this.pending = Math.max(0, this.pending - 1);
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending) this.arm();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped && this.pending) this.onStall();
    }, this.ms);
  }
}

/**
 * Passes an SFTP byte stream through unchanged and calls `onPacket` at the
 * start of each packet (uint32 length, then the body). SFTP answers every
 * client packet with exactly one server packet (INIT with VERSION), so
 * counting both directions of sshfs's stream tells how many of its requests
 * wait.
 */
export function countSftpPackets(onPacket: () => void): Transform {
  let header = Buffer.alloc(0);
  let rest = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      let at = 0;
      while (at < chunk.length) {
        if (rest > 0) {
          const n = Math.min(rest, chunk.length - at);
          rest -= n;
          at += n;
          continue;
        }
        const take = Math.min(4 - header.length, chunk.length - at);
        header = Buffer.concat([header, chunk.subarray(at, at + take)]);
        at += take;
        if (header.length === 4) {
          rest = header.readUInt32BE(0);
          header = Buffer.alloc(0);
          onPacket();
        }
      }
      done(null, chunk);
    },
  });
}
