import type { BlockBackend } from './block/nbd-server.js';

/**
 * Serves the LUKS header area from the local copy that was checked (or
 * formatted), the rest from the image: what the host serves there later
 * cannot change the key qemu unlocks. Nothing a run does writes the header,
 * so a write there is refused and fails the run.
 */
export class LocalHeader implements BlockBackend {
  constructor(
    private readonly image: BlockBackend,
    private readonly header: Buffer,
  ) {}

  get size(): number {
    return this.image.size;
  }

  get readOnly(): boolean {
    return this.image.readOnly;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const end = offset + length;
    const split = this.header.length;
    if (offset >= split) return this.image.read(offset, length);
    const local = this.header.subarray(offset, Math.min(end, split));
    if (end <= split) return Buffer.from(local);
    return Buffer.concat([local, await this.image.read(split, end - split)]);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    if (offset < this.header.length) {
      throw new Error(`refused a write at byte ${offset} of the image, inside its LUKS header area (${this.header.length} bytes)`);
    }
    await this.image.write(offset, data);
  }

  flush(): Promise<void> {
    return this.image.flush();
  }
}
