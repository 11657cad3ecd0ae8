import cliProgress from 'cli-progress';
import type { SyncProgress } from '../snapshot/rsync.js';
import { formatBytes } from './format.js';

/** The `sync` phase's progress bar: shown on a terminal only, never mixed into piped or JSON output. */
export class SyncProgressBar {
  private bar: cliProgress.SingleBar | undefined;

  constructor(enabled: boolean) {
    if (!enabled || !process.stderr.isTTY) return;
    this.bar = new cliProgress.SingleBar(
      {
        format: 'sync  {bar} {percentage}% | {done} | {rate} | {files} files',
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
