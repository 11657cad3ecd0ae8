import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup, leftovers } from '../helpers/cleanup.js';
import { compareTrees, decryptImage } from '../helpers/independent.js';
import { startSshd, type SshdFixture } from '../helpers/sshd.js';
import { setupVault, type TestVault } from '../helpers/vault.js';

/**
 * A remote whose disk is smaller than the vault: each remote directory is a
 * small tmpfs of this test's own, served by a real sshd. init must refuse or
 * clean up with exit 6, a push that fills the disk must exit 6 with the
 * snapshot partial, and what the complete snapshots hold is read back from
 * outside sshvault.
 */
describe('a full remote disk', () => {
  let scratch: string;
  let sshd: SshdFixture;
  let ws: Workspace;
  const tmpfs: string[] = [];

  async function smallRemote(name: string, size: string): Promise<string> {
    const dir = join(scratch, name);
    await mkdir(dir);
    await execa('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'sshvault-test', dir]);
    tmpfs.push(dir);
    return dir;
  }

  function init(name: string, dir: string, size: string, extra: string[] = []) {
    return ws.sv([
      'init', name, '--remote', `ssh://root@127.0.0.1:${sshd.port}${dir}`, '--size', size, '--fs', 'ext4',
      '--identity', sshd.userKeyPath, '--known-hosts', sshd.knownHostsPath, '--passphrase-file', ws.passphraseFile, ...extra,
    ]);
  }

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'sshvault-full-'));
    sshd = await startSshd();
    ws = await workspace();
  });

  afterAll(async () => {
    if (ws) await forceCleanup(ws.dir);
    await sshd?.stop();
    for (const dir of tmpfs) await execa('umount', [dir], { reject: false });
    if (scratch) {
      await forceCleanup(scratch);
      await rm(scratch, { recursive: true, force: true });
    }
    await ws?.dispose();
  });

  it('init --preallocate refuses a remote smaller than the image with exit 6, before creating anything', async () => {
    const dir = await smallRemote('prealloc', '16m');
    const r = await init('prealloc', dir, '64M', ['--preallocate']);
    expect(r.exitCode).toBe(6);
    expect(r.stderr).toMatch(/the remote has 16 MiB free, less than the 64 MiB image/);
    expect(await readdir(dir)).toEqual([]);
    expect(existsSync(join(ws.env.XDG_CONFIG_HOME, 'sshvault', 'prealloc.json'))).toBe(false);
    expect(await leftovers(ws.dir)).toEqual([]);
  });

  it('init on a remote too small to format the image exits 6 and leaves nothing on the remote', async () => {
    const dir = await smallRemote('tiny', '1m');
    const r = await init('tiny', dir, '64M');
    expect(r.exitCode).toBe(6);
    expect(r.stderr).toMatch(/only \d+ KiB free for a 64 MiB sparse image/);
    expect(r.stderr).toMatch(/the remote disk is full \(.* free on .*\); nothing was left on the remote/);
    expect(await readdir(dir)).toEqual([]);
    expect(existsSync(join(ws.env.XDG_CONFIG_HOME, 'sshvault', 'tiny.json'))).toBe(false);
    expect(await leftovers(ws.dir)).toEqual([]);
  });

  describe('a push that fills the remote disk', () => {
    let v: TestVault;
    let bulk: string;

    beforeAll(async () => {
      v = await setupVault('filled', { size: '256M', remoteDir: await smallRemote('filled', '24m') });
      bulk = join(v.scratch, 'bulk');
      await mkdir(bulk);
    });

    afterAll(async () => {
      await v?.dispose();
    });

    it('init warned, with a real number, that the sparse image is larger than the remote', () => {
      expect(v.init.stderr + v.init.stdout).toMatch(/only \d[\d.]* MiB free for a 256 MiB sparse image/);
    });

    it('exits 6 with the snapshot partial; the complete snapshot stays intact', async () => {
      const first = await v.push();
      // Random, so nothing compresses it: more than the remote disk holds.
      await writeFile(join(bulk, 'random.bin'), randomBytes(40 << 20));
      const r = await v.ws.sv(['push', v.name, v.src, bulk]);
      expect(r.exitCode).toBe(6);
      expect(r.stderr).toMatch(/the remote disk is full \(.* free on .*\); the snapshot stays partial: free space on the remote or prune old snapshots, then push again/);
      expect(await v.leftovers()).toEqual([]);
      expect(await readdir(v.remoteDir)).not.toContain('vault.lock');

      // Writes the remote refused leave holes in the image, so the filesystem's
      // own bookkeeping (bitmaps) may be damaged: read with the kernel's ext4,
      // read-only, which needs none of it to read files.
      const raw = join(v.scratch, 'plain.raw');
      const mnt = join(v.scratch, 'mnt');
      await decryptImage(v.image, v.ws.passphrase, raw);
      await mkdir(mnt);
      await execa('mount', ['-o', 'ro,loop,noload', raw, mnt]);
      try {
        // The new snapshot is partial, or not there at all when the remote refused its directory too.
        const names = (await readdir(join(mnt, 'snapshots'))).sort();
        expect(names[0]).toBe(first);
        expect(names.slice(1).every((n) => n.endsWith('.partial'))).toBe(true);
        expect(names.length).toBeLessThanOrEqual(2);
        expect(await compareTrees(v.src, join(mnt, 'snapshots', first, v.src))).toEqual([]);
      } finally {
        await execa('umount', [mnt]);
        await rm(raw, { force: true });
      }

    });
  });
});
