import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { countSftpPackets, DEFAULT_REQUEST_TIMEOUT_SECONDS, requestTimeoutSeconds, StallWatch } from '../../src/remote/stall-watch.js';

describe('StallWatch', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('fires when a request waits the whole timeout without any answer', () => {
    const onStall = vi.fn();
    const w = new StallWatch(1000, onStall);
    w.begin();
    vi.advanceTimersByTime(999);
    expect(onStall).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(onStall).toHaveBeenCalledTimes(1);
  });

  it('counts from the last answer while requests are queued, and is quiet when none waits', () => {
    const onStall = vi.fn();
    const w = new StallWatch(1000, onStall);
    w.begin();
    w.begin();
    vi.advanceTimersByTime(900);
    w.end();
    vi.advanceTimersByTime(900);
    expect(onStall).not.toHaveBeenCalled();
    w.end();
    vi.advanceTimersByTime(5000);
    expect(onStall).not.toHaveBeenCalled();
    w.begin();
    vi.advanceTimersByTime(1000);
    expect(onStall).toHaveBeenCalledTimes(1);
  });

  it('never fires once stopped', () => {
    const onStall = vi.fn();
    const w = new StallWatch(1000, onStall);
    w.begin();
    w.stop();
    w.begin();
    vi.advanceTimersByTime(5000);
    expect(onStall).not.toHaveBeenCalled();
  });
});

describe('countSftpPackets', () => {
  function packet(type: number, body: Buffer): Buffer {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(body.length + 1);
    head[4] = type;
    return Buffer.concat([head, body]);
  }

  it('counts packets however the stream is cut, and passes the bytes through unchanged', async () => {
    const stream = Buffer.concat([packet(1, Buffer.from([0, 0, 0, 3])), packet(17, Buffer.alloc(300, 7)), packet(4, Buffer.alloc(0)), packet(5, Buffer.alloc(70_000, 1))]);
    for (const size of [1, 3, 4, 5, 1000, stream.length]) {
      let count = 0;
      const t = countSftpPackets(() => count++);
      const out: Buffer[] = [];
      t.on('data', (b: Buffer) => out.push(b));
      for (let at = 0; at < stream.length; at += size) t.write(stream.subarray(at, at + size));
      t.end();
      await new Promise((r) => t.on('end', r));
      expect(count, `chunks of ${size}`).toBe(4);
      expect(Buffer.concat(out).equals(stream)).toBe(true);
    }
  });
});

describe('requestTimeoutSeconds', () => {
  it('takes the environment over the config over the default', () => {
    expect(requestTimeoutSeconds(undefined, {})).toBe(DEFAULT_REQUEST_TIMEOUT_SECONDS);
    expect(requestTimeoutSeconds(300, {})).toBe(300);
    expect(requestTimeoutSeconds(300, { SSHVAULT_REQUEST_TIMEOUT: '5' })).toBe(5);
  });

  it('refuses an environment value that is not a positive number', () => {
    expect(() => requestTimeoutSeconds(undefined, { SSHVAULT_REQUEST_TIMEOUT: 'soon' })).toThrow(UsageError);
    expect(() => requestTimeoutSeconds(undefined, { SSHVAULT_REQUEST_TIMEOUT: '0' })).toThrow(/positive number of seconds/);
  });
});
