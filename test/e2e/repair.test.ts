import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForSync } from '../helpers/proc.js';
import { BIN } from '../helpers/cli.js';
import { compareTrees, decryptImage, rdump } from '../helpers/independent.js';
import { setupVault, withPlaintext, type TestVault } from '../helpers/vault.js';

async function imageHash(v: TestVault): Promise<string> {
  return createHash('sha256').update(await readFile(v.image)).digest('hex');
}

/**
 * Through a loop device: nbdfuse's file refuses the fsync debugfs closes
 * with, and the superblock change may not land. withPlaintext's cleanup
 * detaches the loop device if this fails half-way.
 */
async function debugfsWrite(plain: string, ...requests: string[]): Promise<void> {
  const dev = (await execa('losetup', ['-f', '--show', plain])).stdout.trim();
  try {
    for (const request of requests) {
      const r = await execa('debugfs', ['-w', '-R', request, dev]);
      expect(r.stderr.split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l))).toEqual([]);
    }
  } finally {
    await execa('losetup', ['-d', dev]);
  }
}

async function fsState(v: TestVault): Promise<string> {
  return withPlaintext(v.image, v.ws.passphrase, async (plain) => /^Filesystem state:\s*(.*)$/m.exec((await execa('dumpe2fs', ['-h', plain])).stdout)![1]!);
}

/**
 * A push may repair only what its interrupted predecessor left: a filesystem
 * marked with errors, or one whose repair would touch a complete snapshot,
 * stays as it is (exit 7) until the user runs `check --repair`.
 */
describe('unattended repair never touches complete snapshots', () => {
  let v: TestVault;
  const snapshots: string[] = [];
  /** The inode the first two snapshots share that check --repair clears. */
  let guideCleared = false;

  beforeAll(async () => {
    v = await setupVault('rep', { size: '1G' });
    snapshots.push(await v.push());
    snapshots.push(await v.push());
  });

  afterAll(async () => {
    await v?.dispose();
  });

  it('a filesystem marked with errors is not repaired by push: exit 7, image unchanged', async () => {
    await withPlaintext(v.image, v.ws.passphrase, (plain) => debugfsWrite(plain, 'ssv state 2'));
    const before = await imageHash(v);
    const r = await v.ws.sv(['push', v.name]);
    expect(r.exitCode, r.stderr).toBe(7);
    expect(r.stderr).toContain('sshvault check --repair');
    expect(await imageHash(v)).toBe(before);
    expect(await fsState(v)).toMatch(/error/);
    expect(await v.leftovers()).toEqual([]);
    await withPlaintext(v.image, v.ws.passphrase, (plain) => debugfsWrite(plain, 'ssv state 1'));
  });

  it('a repair that would change a complete snapshot is rolled back: exit 7, image unchanged; check --repair then fixes it and says how to undo', async () => {
    const file = `/snapshots/${snapshots[0]}${v.src}/docs/guide.md`;
    await withPlaintext(v.image, v.ws.passphrase, async (plain) => {
      // The extent header of an inode both complete snapshots share: e2fsck -y would clear it.
      await debugfsWrite(plain, `sif "${file}" block[0] 999999999`, 'ssv state 0');
    });
    const before = await imageHash(v);
    const r = await v.ws.sv(['push', v.name]);
    expect(r.exitCode, r.stderr).toBe(7);
    expect(r.stderr).toContain('sshvault check --repair');
    expect(await imageHash(v)).toBe(before);
    expect(await v.leftovers()).toEqual([]);

    const fix = await v.ws.sv(['check', v.name, '--repair']);
    expect(fix.exitCode, fix.stdout + fix.stderr).toBe(0);
    expect(fix.stdout).toContain('sshvault check --undo-repair');
    expect((await v.ws.sv(['check', v.name])).exitCode).toBe(0);

    const undo = await v.ws.sv(['check', v.name, '--undo-repair']);
    expect(undo.exitCode, undo.stdout + undo.stderr).toBe(0);
    expect(await imageHash(v)).toBe(before);
    // Undone once: the kept file no longer matches the filesystem.
    expect((await v.ws.sv(['check', v.name, '--undo-repair'])).exitCode).not.toBe(0);
    expect(await imageHash(v)).toBe(before);

    const again = await v.ws.sv(['check', v.name, '--repair']);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    guideCleared = true;
    expect(await v.leftovers()).toEqual([]);
  });

  it('an interrupted push is repaired by the next one, and every complete snapshot still equals its source', async () => {
    const big = join(v.src, 'big-for-the-cut.bin');
    await execa('sh', ['-c', `head -c 200M /dev/urandom > '${big}'`]);
    const push = execa(BIN, ['push', v.name], { env: v.ws.env, reject: false });
    await Promise.race([
      waitForSync(v.ws.env.XDG_STATE_HOME, 120_000),
      push.then((r) => {
        throw new Error(`the push ended (exit ${r.exitCode}) before its sync phase: ${String(r.stdout)} ${String(r.stderr)}`);
      }),
    ]);
    push.kill('SIGKILL');
    await push;
    await rm(big);
    const next = await v.ws.sv(['push', v.name, '--json']);
    expect(next.exitCode, next.stderr).toBe(0);
    expect(next.stderr).toContain('e2fsck -f -y, with an undo file');
    expect(next.stderr).not.toContain('Refused repair');
    snapshots.push((JSON.parse(next.stdout) as { snapshot: string }).snapshot);
    expect(await v.leftovers()).toEqual([]);

    const out = await mkdtemp(join(tmpdir(), 'sshvault-rep-out-'));
    try {
      const raw = join(out, 'plain.raw');
      await decryptImage(v.image, v.ws.passphrase, raw);
      const fsck = await execa('e2fsck', ['-fn', raw], { reject: false });
      expect(fsck.exitCode, fsck.stdout).toBe(0);
      for (const [i, s] of snapshots.entries()) {
        const dump = join(out, s);
        await rdump(raw, `/snapshots/${s}`, dump);
        expect(await compareTrees(v.src, join(dump, s, v.src)), s).toEqual(i < 2 && guideCleared ? ['only in a: docs/guide.md'] : []);
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 900_000);
});
