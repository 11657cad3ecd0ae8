import cliProgress from 'cli-progress';
import type { TrafficMeter } from '../remote/traffic.js';
import type { SyncProgress } from '../snapshot/rsync.js';
import { isQuiet } from './console.js';
import { formatBytes, formatDuration } from './format.js';

/** The `sync` phase's progress bar: shown on a terminal only, never mixed into piped or JSON output. */
export class SyncProgressBar {
  private bar: cliProgress.SingleBar | undefined;

  constructor(enabled: boolean) {
    if (!enabled || !process.stderr.isTTY || isQuiet()) return;
    this.bar = new cliProgress.SingleBar(
      {
        format: 'sync  {bar} {percentage}% | {done} | {rate} | ETA {eta_formatted} | {files} files',
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(100, 0, { done: formatBytes(0), rate: '-', files: 0 });
  }

  update(p: SyncProgress): void {
    this.bar?.update(p.percent, { done: formatBytes(p.bytes), rate: p.rate, files: p.files ?? 0 });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/**
 * A phase that knows how many bytes it will read (`check --verify-data`):
 * a bar with bytes done of the total, rate and ETA, on a terminal only.
 */
export class ByteProgressBar {
  private bar: cliProgress.SingleBar | undefined;
  private done = 0;
  private t0 = 0;

  constructor(
    private readonly label: string,
    private readonly enabled: boolean,
  ) {}

  start(total: number): void {
    if (!this.enabled || !process.stderr.isTTY || isQuiet()) return;
    this.bar = new cliProgress.SingleBar(
      {
        format: `${this.label}  {bar} {percentage}% | {done} of {all} | {rate} | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    this.t0 = performance.now();
    this.bar.start(Math.max(total, 1), 0, { done: formatBytes(0), all: formatBytes(total), rate: '-' });
  }

  add(bytes: number): void {
    this.done += bytes;
    const seconds = (performance.now() - this.t0) / 1000;
    this.bar?.update(this.done, { done: formatBytes(this.done), rate: seconds > 0 ? `${formatBytes(this.done / seconds)}/s` : '-' });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** Phases that draw a bar of their own, with a total to count towards. */
const OWN_BAR = new Set(['sync', 'restore', 'verify']);
const TICK_MS = 250;
const QUIET_FIRST_MS = 1000;

/**
 * Every other phase that lasts longer than a second shows what it moves on
 * the wire while it runs: bytes up and down, rate, time. Only on a terminal;
 * off one, nothing is drawn and stderr keeps plain lines.
 */
export class PhaseTicker {
  private timer: NodeJS.Timeout | undefined;
  private shown = false;

  constructor(private readonly meter: TrafficMeter) {
    if (!process.stderr.isTTY || isQuiet()) return;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  private tick(): void {
    const live = this.meter.live();
    if (!live || OWN_BAR.has(live.name) || live.ms < QUIET_FIRST_MS) {
      this.clear();
      return;
    }
    const rate = ((live.upBytes + live.downBytes) / live.ms) * 1000;
    process.stderr.write(`\r\x1b[K${live.name}  up ${formatBytes(live.upBytes)}  down ${formatBytes(live.downBytes)}  ${formatBytes(rate)}/s  ${formatDuration(live.ms)}`);
    this.shown = true;
  }

  private clear(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
    this.shown = false;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }
}
