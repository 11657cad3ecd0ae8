import { randomBytes } from 'node:crypto';
import type { SFTPWrapper } from 'ssh2';
import { PRIVATE_FILE, readFile, writeFile } from './sftp.js';

/**
 * A token next to the image (`GENERATION_FILE` in layout.ts) that every
 * writing run replaces before it writes (under the remote lock): a machine's
 * block cache is valid only for the token it last saw, so a write from
 * anywhere else invalidates it.
 */
export async function readGeneration(sftp: SFTPWrapper, path: string): Promise<string | undefined> {
  const text = (await readFile(sftp, path))?.toString('utf8').trim();
  return text && /^[0-9a-f]{32}$/.test(text) ? text : undefined;
}

export async function newGeneration(sftp: SFTPWrapper, path: string): Promise<string> {
  const token = randomBytes(16).toString('hex');
  await writeFile(sftp, path, token + '\n', PRIVATE_FILE);
  return token;
}
