import { debug } from '../log.js';
import type { ByteRange } from './filesystems/filesystem.js';

/** How often a mounted filesystem is asked again where its data lives: a push allocates new chunks as it writes. */
export const DATA_RANGES_EVERY_MS = 5000;

/**
 * Tells the block cache, while the filesystem is mounted, which ranges hold
 * file data (docs/design.md, "The block path"). A failed look costs only
 * cache room, never the run: it is logged and the next one tries again.
 */
export class DataRangeWatch {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly look: () => Promise<ByteRange[]>,
    private readonly tell: (ranges: ByteRange[]) => void,
  ) {}

  /** Looks now and, on a filesystem being written (`again`), every few seconds until stopped. */
  start(again: boolean): void {
    void this.refresh();
    if (!again) return;
    this.timer = setInterval(() => void this.refresh(), DATA_RANGES_EVERY_MS);
    this.timer.unref();
  }

  /** Looks once, unless a look is still running. */
  refresh(): Promise<void> {
    this.inFlight ??= this.look()
      .then(this.tell, (e: Error) => debug(`where the filesystem keeps file data could not be read: ${e.message}`))
      .finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  /** Stops; after writing, one last look sees what the run's last commit allocated. */
  async stop(): Promise<void> {
    const again = !!this.timer;
    clearInterval(this.timer);
    await this.inFlight;
    if (again) await this.refresh();
  }
}
