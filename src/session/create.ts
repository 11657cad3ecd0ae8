import { rm } from 'node:fs/promises';
import type { SFTPWrapper } from 'ssh2';
import { UsageError, VaultFullError } from '../errors.js';
import type { Connection } from '../remote/connection.js';
import { probeImage } from '../remote/image-probe.js';
import { createImage, freeBytes, mkdirp, PRIVATE_DIR, PRIVATE_FILE, rmdir, stat, unlink, writeRange } from '../remote/sftp.js';
import { formatHeader } from '../stack/luks-header.js';
import { formatBytes } from '../ui/format.js';

/**
 * What init made so far, so that a failed init can take it away again:
 * running init again then meets neither a half-made image nor a header
 * backup of a vault that never was.
 */
export class CreatedFiles {
  readonly dirs: string[] = [];
  image = false;
  generation = false;
  headerBackup = false;

  constructor(
    private readonly paths: { image: string; generation: string; headerBackup: string },
    private readonly notice: (message: string) => void,
  ) {}

  async makeDir(sftp: SFTPWrapper, dir: string): Promise<void> {
    await mkdirp(sftp, dir, PRIVATE_DIR, this.dirs);
  }

  /** The empty image file, refused where one exists or where it cannot fit preallocated. */
  async makeImage(sftp: SFTPWrapper, dir: string, size: number, preallocate: boolean, explain: (e: unknown) => Promise<unknown>): Promise<void> {
    const image = this.paths.image;
    if (await stat(sftp, image)) {
      throw new UsageError(`a vault image already exists at ${image}; choose another remote directory`);
    }
    const free = await freeBytes(sftp, dir);
    if (free !== undefined && preallocate && free < size) {
      throw new VaultFullError(`the remote has ${formatBytes(free)} free, less than the ${formatBytes(size)} image; choose a smaller --size`);
    }
    if (free !== undefined && free < size) {
      this.notice(`The remote has only ${formatBytes(free)} free for a ${formatBytes(size)} sparse image; backups fail once it runs out.`);
    }
    this.image = true;
    await createImage(sftp, image, size, { mode: PRIVATE_FILE, preallocate, explain });
    await probeImage(sftp, image, size);
  }

  /**
   * Formats LUKS here and writes the header area to the new image: the local
   * backup is what was formatted, and what runs decrypt with.
   */
  async formatImage(sftp: SFTPWrapper, runDir: string, size: number, passphrase: string): Promise<Buffer> {
    this.headerBackup = true;
    const header = await formatHeader(runDir, size, passphrase, this.paths.headerBackup);
    await writeRange(sftp, this.paths.image, 0, header);
    return header;
  }

  /** After the stack is closed and before the lock goes. */
  async removeFiles(conn: Connection | undefined): Promise<void> {
    if (this.headerBackup) await rm(this.paths.headerBackup, { force: true });
    const files = [...(this.image ? [this.paths.image] : []), ...(this.generation ? [this.paths.generation] : [])];
    if (!files.length) return;
    if (!conn || conn.lost) {
      this.notice(`The failed init could not remove what it made on the remote: remove ${files.join(' and ')} before running init again.`);
      return;
    }
    const sftp = await conn.sftp();
    for (const f of files) await unlink(sftp, f);
  }

  /** After the lock is released: the lock lived in the directory. */
  async removeDirs(conn: Connection | undefined): Promise<void> {
    if (!conn || conn.lost) return;
    const sftp = await conn.sftp();
    for (const dir of [...this.dirs].reverse()) await rmdir(sftp, dir);
  }
}
