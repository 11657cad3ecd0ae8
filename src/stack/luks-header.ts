import { randomBytes } from 'node:crypto';
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { isLuks1, luksFormat, luksHeaderBackup, phdrPayloadOffset } from './luks.js';

/**
 * The LUKS header area (phdr and key material, up to the payload offset) as
 * runs decrypt with it: the local backup, then zeros, which is what
 * luksFormat leaves between the last key slot and the payload. Undefined
 * when there is no backup.
 */
export async function readHeaderArea(backupFile: string): Promise<Buffer | undefined> {
  let backup: Buffer;
  try {
    backup = await readFile(backupFile);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if (!isLuks1(backup)) throw new UsageError(`the local header backup ${backupFile} is not a LUKS1 header; move it away and run 'sshvault key backup-header'`);
  const area = Buffer.alloc(phdrPayloadOffset(backup));
  backup.copy(area, 0, 0, Math.min(backup.length, area.length));
  return area;
}

/**
 * Formats LUKS on a sparse local file of the image's size and keeps its
 * header backup: the backup is what was formatted here, not what the host
 * returns. Returns the header area, for the caller to write to the remote.
 */
export async function formatHeader(workDir: string, size: number, passphrase: string, backupFile: string): Promise<Buffer> {
  const file = join(workDir, `format-${randomBytes(6).toString('hex')}.img`);
  await writeFile(file, '', { mode: 0o600 });
  try {
    await truncate(file, size);
    await luksFormat(file, passphrase);
    await luksHeaderBackup(file, backupFile);
  } finally {
    await rm(file, { force: true });
  }
  return (await readHeaderArea(backupFile))!;
}
