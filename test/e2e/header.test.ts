import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk } from '../helpers/cli.js';
import { setupVault, type TestVault } from '../helpers/vault.js';

/** Key slot 0's material starts at sector 8; the phdr (592 bytes) before it stays as it is. */
const KEY_MATERIAL = 4096;
/** A 512-bit key split in 4000 stripes. */
const KEY_MATERIAL_BYTES = 64 * 4000;
/** The payload offset of sshvault's LUKS1 images: everything before it is header. */
const HEADER_AREA = 2 << 20;

async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(length);
    await fh.read(b, 0, length, offset);
    return b;
  } finally {
    await fh.close();
  }
}

async function writeAt(file: string, offset: number, data: Buffer): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(data, 0, data.length, offset);
  } finally {
    await fh.close();
  }
}

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

/**
 * What is opened is what was checked: runs decrypt with the local header
 * backup, not with the header the host serves after the check.
 */
describe('the LUKS header comes from the local backup', () => {
  let v: TestVault;
  let backup: string;

  beforeAll(async () => {
    v = await setupVault('header');
    backup = join(v.ws.env.XDG_STATE_HOME, 'sshvault', 'header', 'luks-header.img');
  });

  afterAll(async () => {
    await v?.dispose();
  });

  it('init keeps as backup exactly the header area it wrote to the remote', async () => {
    const local = await readFile(backup);
    const remote = await readAt(v.image, 0, HEADER_AREA);
    expect(remote.subarray(0, local.length).equals(local)).toBe(true);
    expect(remote.subarray(local.length).equals(Buffer.alloc(HEADER_AREA - local.length))).toBe(true);
  });

  it('key material garbled by the host behind the phdr: a push decrypts with the local copy and never writes the header area', async () => {
    const good = await readAt(v.image, KEY_MATERIAL, KEY_MATERIAL_BYTES);
    const garbled = randomBytes(KEY_MATERIAL_BYTES);
    await writeAt(v.image, KEY_MATERIAL, garbled);
    // Without the block cache, which would otherwise answer for the header it saw at init.
    await rm(join(v.ws.env.XDG_CACHE_HOME, 'sshvault', 'header'), { recursive: true, force: true });
    try {
      await v.push();
      expect((await readAt(v.image, KEY_MATERIAL, KEY_MATERIAL_BYTES)).equals(garbled)).toBe(true);
      expect(await v.leftovers()).toEqual([]);
    } finally {
      await writeAt(v.image, KEY_MATERIAL, good);
    }
  });

  it('no local backup: a push refuses with exit 3 naming --trust-remote-header; with it, the push works and saves one', async () => {
    const saved = await readFile(backup);
    await rm(backup, { force: true });
    const before = await sha256(v.image);
    const refused = await v.ws.sv(['push', 'header']);
    expect(refused.exitCode, refused.stderr).toBe(3);
    expect(refused.stderr).toContain('--trust-remote-header');
    expect(await sha256(v.image)).toBe(before);
    expect(existsSync(backup)).toBe(false);

    const listed = await v.ws.sv(['list', 'header', '--refresh']);
    expect(listed.exitCode, listed.stderr).toBe(0);

    expectOk(await v.ws.sv(['push', 'header', '--trust-remote-header']), 'push --trust-remote-header');
    expect((await readFile(backup)).equals(saved)).toBe(true);
    expect(await v.leftovers()).toEqual([]);
  });
});
