import { readFile } from 'node:fs/promises';
import { run } from '../exec.js';

/**
 * LUKS header operations that need no device-mapper: cryptsetup formats,
 * backs up and edits key slots of an image file directly.
 */

/** Always LUKS1 (every engine and live CD opens it), AES-XTS-plain64, 512-bit key (DESIGN section 2). */
export async function luksFormat(image: string, passphrase: string): Promise<void> {
  const args = ['luksFormat', '--type', 'luks1', '--batch-mode', '--cipher', 'aes-xts-plain64', '--key-size', '512', '--hash', 'sha256'];
  // Test-only: the default benchmark-based PBKDF2 count takes minutes under emulation in the VM lane.
  const iterations = process.env.SSHVAULT_TEST_PBKDF_ITERATIONS;
  if (iterations) args.push('--pbkdf-force-iterations', iterations);
  args.push('--key-file', '-', image);
  await run('cryptsetup', args, { input: passphrase });
}

export async function luksHeaderBackup(image: string, backupFile: string): Promise<void> {
  await run('cryptsetup', ['luksHeaderBackup', image, '--header-backup-file', backupFile]);
}

/**
 * The LUKS1 phdr: magic, cipher, master-key digest, UUID and all eight key
 * slot descriptors. Comparing it with the local backup detects a replaced
 * image or a key change made elsewhere for the price of 592 bytes.
 */
export const PHDR_BYTES = 592;

export async function backupPhdr(backupFile: string): Promise<Buffer | undefined> {
  try {
    return (await readFile(backupFile)).subarray(0, PHDR_BYTES);
  } catch {
    return undefined;
  }
}

export function isLuks1(phdr: Buffer): boolean {
  return phdr.length >= 8 && phdr.subarray(0, 6).equals(Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe])) && phdr.readUInt16BE(6) === 1;
}

export function phdrUuid(phdr: Buffer): string {
  return phdr.subarray(168, 208).toString('latin1').replace(/\0.*$/s, '');
}
