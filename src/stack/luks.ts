import { readFile } from 'node:fs/promises';
import { AuthError, CommandError } from '../errors.js';
import { run } from '../exec.js';
import { handOver, withSecretFifo } from './secret-fifo.js';

/**
 * LUKS header operations that need no device-mapper: cryptsetup formats,
 * backs up and edits key slots of an image file directly.
 */

/** Always LUKS1 (every engine and live CD opens it), AES-XTS-plain64, 512-bit key (docs/design.md, "Layers and engines"). */
export async function luksFormat(image: string, passphrase: string): Promise<void> {
  const args = ['luksFormat', '--type', 'luks1', '--batch-mode', '--cipher', 'aes-xts-plain64', '--key-size', '512', '--hash', 'sha256'];
  args.push(...pbkdfArgs(), '--key-file', '-', image);
  await run('cryptsetup', args, { input: passphrase });
}

/** Test-only: the default benchmark-based PBKDF2 count takes minutes under emulation in the VM lane. */
function pbkdfArgs(): string[] {
  const iterations = process.env.SSHVAULT_TEST_PBKDF_ITERATIONS;
  return iterations ? ['--pbkdf-force-iterations', iterations] : [];
}

/** cryptsetup exits 2 when no key slot accepts the passphrase. */
function wrongPassphrase(e: unknown): Error {
  if (e instanceof CommandError && e.commandExitCode === 2) {
    return new AuthError('wrong passphrase: no LUKS key slot of the vault opens with it; nothing was changed', { cause: e });
  }
  return e as Error;
}

/**
 * A second secret reaches cryptsetup through a FIFO in the vault's private
 * run directory (stdin carries the first); `args` gets the FIFO's path.
 */
async function withSecondKey(dir: string, passphrase: string, secret: string, args: (file: string) => string[]): Promise<void> {
  await withSecretFifo(dir, async (file) => {
    let done = false;
    const cryptsetup = run('cryptsetup', args(file), { input: passphrase });
    const settled = cryptsetup.then(
      () => (done = true),
      () => (done = true),
    );
    await handOver(file, secret, () => !done);
    await settled;
    await cryptsetup.catch((e) => {
      throw wrongPassphrase(e);
    });
  });
}

/** Key slots in use, from the header alone. */
export async function activeSlots(image: string): Promise<number[]> {
  const { stdout } = await run('cryptsetup', ['luksDump', image]);
  return [...stdout.matchAll(/^Key Slot (\d+): ENABLED$/gm)].map((m) => Number(m[1]));
}

/** The key slot a passphrase opens, or undefined when none does. Reads the header only; opens nothing. */
export async function slotOf(image: string, passphrase: string): Promise<number | undefined> {
  try {
    const { stdout } = await run('cryptsetup', ['open', '--test-passphrase', '--verbose', '--key-file', '-', image], { input: passphrase });
    const m = /Key slot (\d+) unlocked/.exec(stdout);
    return m ? Number(m[1]) : undefined;
  } catch (e) {
    if (e instanceof CommandError && e.commandExitCode === 2) return undefined;
    throw e;
  }
}

/** Adds `secret` in a free slot; `passphrase` (any working key) authorises it. Returns the new slot. */
export async function luksAddKey(image: string, passphrase: string, secret: string, keyDir: string): Promise<number> {
  const before = await activeSlots(image);
  await withSecondKey(keyDir, passphrase, secret, (file) => ['luksAddKey', '--batch-mode', ...pbkdfArgs(), '--key-file', '-', image, file]);
  return (await activeSlots(image)).find((s) => !before.includes(s))!;
}

/** Replaces the key in the slot `passphrase` opens (LUKS1 writes a new slot, then wipes the old one). */
export async function luksChangeKey(image: string, passphrase: string, secret: string, keyDir: string): Promise<void> {
  await withSecondKey(keyDir, passphrase, secret, (file) => ['luksChangeKey', '--batch-mode', ...pbkdfArgs(), '--key-file', '-', image, file]);
}

/** Wipes a key slot. cryptsetup accepts only the passphrase of another slot: a key that works always remains. */
export async function luksKillSlot(image: string, slot: number, otherPassphrase: string): Promise<void> {
  await run('cryptsetup', ['luksKillSlot', '--key-file', '-', image, String(slot)], { input: otherPassphrase }).catch((e) => {
    throw wrongPassphrase(e);
  });
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

/** Where the encrypted payload starts, in bytes: everything before it is header and key material. */
export function phdrPayloadOffset(phdr: Buffer): number {
  return phdr.readUInt32BE(104) * 512;
}

export function phdrUuid(phdr: Buffer): string {
  return phdr.subarray(168, 208).toString('latin1').replace(/\0.*$/s, '');
}
