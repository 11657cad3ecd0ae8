import { execa } from 'execa';
import { open } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { btrfsExtents, churnSourceTree } from '../helpers/independent.js';
import { jsonOf, setupVault, withPlaintext, type TestVault } from '../helpers/vault.js';

interface CheckJson {
  fsck?: { clean: boolean; repaired: boolean };
  verify?: { filesRead: number; bytesRead: number; problems: { snapshot: string; path: string; problem: string }[] };
  run: { ok: boolean; exitCode: number; phases: { name: string; upBytes: number; downBytes: number }[] };
}

async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0] ^= 0x01;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

/** Where a file's first data block lies in the image: past the LUKS payload offset, at its filesystem block. */
async function ciphertextOffset(v: TestVault, pathInFs: string): Promise<number> {
  const payloadSectors = Number(/Payload offset:\s*(\d+)/.exec((await execa('cryptsetup', ['luksDump', v.image])).stdout)![1]);
  return withPlaintext(v.image, v.ws.passphrase, async (plain) => {
    const blockSize = Number(/Block size:\s*(\d+)/.exec((await execa('dumpe2fs', ['-h', plain])).stdout)![1]);
    const block = Number((await execa('debugfs', ['-R', `bmap "${pathInFs}" 0`, plain])).stdout.trim());
    expect(block).toBeGreaterThan(0);
    return payloadSectors * 512 + block * blockSize;
  });
}

/**
 * `check` runs a forced e2fsck as its own metered phase and exits 7
 * on errors; `--verify-data` finds what XTS cannot: a flipped ciphertext byte
 * garbles 16 bytes of plaintext without any error.
 */
describe('check', () => {
  let v: TestVault;
  const snapshots: string[] = [];

  beforeAll(async () => {
    v = await setupVault('chk');
    snapshots.push(await v.push());
    await churnSourceTree(v.src);
    snapshots.push(await v.push());
  });

  afterAll(async () => {
    await v?.dispose();
  });

  const check = (...args: string[]) => v.ws.sv(['check', v.name, '--json', ...args]);

  it('a clean image exits 0, with the fsck traffic as its own phase', async () => {
    const r = jsonOf<CheckJson>(await check(), 'check');
    expect(r.fsck).toMatchObject({ clean: true, repaired: false });
    expect(r.run.phases.map((p) => p.name)).toEqual(['connect', 'open', 'fsck', 'close']);
    expect(r.run.phases[2]!.downBytes).toBeGreaterThan(0);
    expect(await v.leftovers()).toEqual([]);
  });

  it('--verify-data reads every distinct file once and finds nothing on a sound image', async () => {
    const r = jsonOf<CheckJson>(await check('--verify-data'), 'check --verify-data');
    expect(r.verify!.problems).toEqual([]);
    // Files unchanged by the churn are hard links: read once for both snapshots.
    expect(r.verify!.bytesRead).toBeLessThan(v.tree.regularBytes * 1.5);
    expect(r.run.phases.map((p) => p.name)).toEqual(['connect', 'open', 'fsck', 'verify', 'close']);
    expect(r.run.phases[3]!.downBytes).toBeGreaterThan(r.verify!.bytesRead);
  });

  it('--verify-data finds one flipped byte in a file\u2019s ciphertext that fsck cannot see', async () => {
    const file = `${v.src}/data/one-mib.bin`;
    const offset = (await ciphertextOffset(v, `/snapshots/${snapshots[1]}${file}`)) + 1000;
    await flipByte(v.image, offset);
    try {
      expect((await check()).exitCode).toBe(0);
      const r = await check('--verify-data');
      expect(r.exitCode).toBe(7);
      const out = JSON.parse(r.stdout) as CheckJson;
      // Unchanged since the first push: both snapshots hold the damaged inode.
      expect(out.verify!.problems).toEqual(snapshots.map((s) => ({ snapshot: s, path: file, problem: 'content differs' })));
      expect(out.run.ok).toBe(false);
      expect(out.run.exitCode).toBe(7);
      const text = await v.ws.sv(['check', v.name, '--verify-data', snapshots[0]!]);
      expect(text.exitCode).toBe(7);
      expect(text.stdout).toContain(`content differs: ${snapshots[0]}${file}`);
      expect(text.stderr).toContain('no longer match');
    } finally {
      await flipByte(v.image, offset);
    }
    expect((await check('--verify-data')).exitCode).toBe(0);
    expect(await v.leftovers()).toEqual([]);
  });

  it('exits 7 when a metadata block is damaged, and --repair fixes it', async () => {
    // The block bitmap of group 0, overwritten with garbage through qemu's LUKS driver.
    await withPlaintext(v.image, v.ws.passphrase, async (plain) => {
      const blockSize = Number(/Block size:\s*(\d+)/.exec((await execa('dumpe2fs', ['-h', plain])).stdout)![1]);
      const bitmap = Number(/Block bitmap at (\d+)/.exec((await execa('dumpe2fs', [plain])).stdout)![1]);
      const fh = await open(plain, 'r+');
      await fh.write(randomBytes(blockSize), 0, blockSize, bitmap * blockSize);
      await fh.close();
    });
    const bad = await v.ws.sv(['check', v.name]);
    expect(bad.exitCode).toBe(7);
    expect(bad.stdout).toMatch(/bitmap/i);
    expect(bad.stderr).toContain("run 'sshvault check --repair'");
    expect(await v.leftovers()).toEqual([]);

    const fix = await v.ws.sv(['check', v.name, '--repair']);
    expect(fix.exitCode, fix.stdout + fix.stderr).toBe(0);
    expect(fix.stdout).toContain('repaired');
    expect((await check()).exitCode).toBe(0);
    expect((await check('--verify-data')).exitCode).toBe(0);
    expect(await v.leftovers()).toEqual([]);
  });

  it('a push after all this is still a good push', async () => {
    await v.push();
    expect((await check('--verify-data', 'latest')).exitCode).toBe(0);
    expect(await v.leftovers()).toEqual([]);
  });
});

/** Where a file's first data block lies in the image of a btrfs vault: its extent's logical address, mapped by btrfs-map-logical. */
async function btrfsCiphertextOffset(v: TestVault, snapshot: string, path: string): Promise<number> {
  const payloadSectors = Number(/Payload offset:\s*(\d+)/.exec((await execa('cryptsetup', ['luksDump', v.image])).stdout)![1]);
  return withPlaintext(v.image, v.ws.passphrase, async (plain) => {
    const [extent] = await btrfsExtents(plain, snapshot, path);
    const logical = extent!.split('+')[0]!;
    const physical = Number(/physical (\d+)/.exec((await execa('btrfs-map-logical', ['-l', logical, plain])).stdout)![1]);
    return payloadSectors * 512 + physical;
  });
}

/**
 * On btrfs, `check` is `btrfs check --readonly` and `--verify-data` a scrub
 * of every checksum; the damaged file is named in every snapshot that shares it.
 */
describe('check on btrfs', () => {
  let v: TestVault;
  const snapshots: string[] = [];

  beforeAll(async () => {
    v = await setupVault('chkb', { fs: 'btrfs' });
    snapshots.push(await v.push());
    await churnSourceTree(v.src);
    snapshots.push(await v.push());
  });

  afterAll(async () => {
    await v?.dispose();
  });

  const check = (...args: string[]) => v.ws.sv(['check', v.name, '--json', ...args]);

  it('a clean image exits 0 and a scrub finds nothing', async () => {
    const r = jsonOf<CheckJson>(await check('--verify-data'), 'check --verify-data');
    expect(r.fsck).toMatchObject({ clean: true, repaired: false });
    expect(r.verify!.problems).toEqual([]);
    expect(r.run.phases.map((p) => p.name)).toEqual(['connect', 'open', 'fsck', 'verify', 'close']);
    expect(await v.leftovers()).toEqual([]);
  });

  it('--verify-data names the file of an old snapshot whose ciphertext has a flipped byte, and exits 7', async () => {
    // Random bytes: stored uncompressed, and unchanged by the churn, so both snapshots share the extent.
    const file = `${v.src}/data/big-random.bin`;
    const offset = (await btrfsCiphertextOffset(v, snapshots[0]!, file)) + 1000;
    await flipByte(v.image, offset);
    try {
      const r = await check('--verify-data');
      expect(r.exitCode, r.stderr).toBe(7);
      const out = JSON.parse(r.stdout) as CheckJson;
      expect(out.verify!.problems).toEqual(snapshots.map((s) => ({ snapshot: s, path: file, problem: 'checksum error' })));
      const text = await v.ws.sv(['check', v.name, '--verify-data', snapshots[0]!]);
      expect(text.exitCode).toBe(7);
      expect(text.stdout).toContain(`checksum error: ${snapshots[0]}${file}`);
      expect(text.stderr).toContain("checksums show damage");
    } finally {
      await flipByte(v.image, offset);
    }
    expect((await check('--verify-data')).exitCode).toBe(0);
    expect(await v.leftovers()).toEqual([]);
  });

  it('refuses --repair before connecting: sshvault does not repair btrfs', async () => {
    const r = await v.ws.sv(['check', v.name, '--repair']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('does not repair btrfs');
  });
});
