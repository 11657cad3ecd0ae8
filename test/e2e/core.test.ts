import { readdir, readFile, rm, mkdtemp, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup, leftovers } from '../helpers/cleanup.js';
import { btrfsExtents, btrfsRestore, btrfsSubvolumes, compareTrees, debugfsStat, decryptImage, makeSourceTree, churnSourceTree, rdump } from '../helpers/independent.js';
import { startRelay, type Relay } from '../helpers/relay.js';
import { startSshd, type SshdFixture } from '../helpers/sshd.js';

/**
 * The core pipeline against a real OpenSSH sshd, checked from outside
 * sshvault's code: qemu-img's LUKS driver decrypts the image, debugfs reads
 * the filesystem without mounting it (debugfs for ext4, btrfs restore and
 * dump-tree for btrfs), and a counting relay measures the wire.
 */
describe.each(['ext4', 'btrfs'] as const)('init, push, change, push, list, stats (%s)', (fs) => {
  let sshd: SshdFixture;
  let relay: Relay;
  let ws: Workspace;
  let scratch: string;
  let src: string;
  let remoteDir: string;
  const snapshots: string[] = [];

  beforeAll(async () => {
    sshd = await startSshd();
    relay = await startRelay({ host: '127.0.0.1', port: sshd.port });
    ws = await workspace();
    scratch = await mkdtemp(join(tmpdir(), 'sshvault-core-'));
    src = join(scratch, 'src');
    await makeSourceTree(src);
    remoteDir = sshd.remoteDir('vault');
  });

  afterAll(async () => {
    if (ws) await forceCleanup(ws.dir);
    await relay?.close();
    await sshd?.stop();
    await ws?.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const remote = () => `ssh://root@127.0.0.1:${relay.port}${remoteDir}`;

  async function pushWatchingArgv(): Promise<{ exitCode: number; stdout: string; stderr: string; argvLeaks: string[] }> {
    // Sample every process's argv and environment while the push runs: the passphrase must never be there.
    const leaks: string[] = [];
    let running = true;
    const watcher = (async () => {
      while (running) {
        for (const pid of await readdir('/proc').catch(() => [])) {
          if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
          for (const f of ['cmdline', 'environ']) {
            const text = await readFile(`/proc/${pid}/${f}`, 'latin1').catch(() => '');
            if (text.includes(ws.passphrase)) leaks.push(`${pid} ${f}: ${text.split('\0')[0]}`);
          }
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const r = await ws.sv(['push', 'core']);
    running = false;
    await watcher;
    return { ...r, argvLeaks: leaks };
  }

  it('init creates a LUKS1 image that an independent decryptor opens', async () => {
    const r = await ws.sv([
      'init', 'core', '--remote', remote(), '--size', '256M', '--fs', fs,
      '--identity', sshd.userKeyPath, '--known-hosts', join(ws.dir, 'known_hosts'), '--accept-new-host-key',
      '--passphrase-file', ws.passphraseFile, '--source', src,
    ]);
    expectOk(r, 'init');
    expect(r.stderr).toContain('Recorded new host key');
    const head = Buffer.alloc(8);
    const fh = await open(join(remoteDir, 'vault.img'), 'r');
    await fh.read(head, 0, 8, 0);
    await fh.close();
    expect(head.subarray(0, 6).toString('latin1')).toBe('LUKS\xba\xbe');
    expect(head.readUInt16BE(6)).toBe(1);
    expect(await leftovers(ws.dir)).toEqual([]);
  });

  it('first push: the snapshot equals the source, the passphrase never shows', async () => {
    const r = await pushWatchingArgv();
    expectOk(r, 'push');
    expect(r.argvLeaks).toEqual([]);
    expect(r.stdout + r.stderr).not.toContain(ws.passphrase);
    const list = JSON.parse((await ws.sv(['list', 'core', '--json'])).stdout);
    expect(list).toHaveLength(1);
    expect(list[0].complete).toBe(true);
    snapshots.push(list[0].name);
    expect(await leftovers(ws.dir)).toEqual([]);
  });

  it('second push after churn: equal to the source, unchanged files hard-linked to the first snapshot', async () => {
    await churnSourceTree(src);
    await new Promise((r) => setTimeout(r, 1100));
    const up0 = relay.upBytes();
    const down0 = relay.downBytes();
    const r = await pushWatchingArgv();
    expectOk(r, 'push');
    expect(r.argvLeaks).toEqual([]);
    const relayUp = relay.upBytes() - up0;
    const relayDown = relay.downBytes() - down0;

    const list = JSON.parse((await ws.sv(['list', 'core', '--json'])).stdout);
    expect(list.map((s: { name: string }) => s.name)[0]).toBe(snapshots[0]);
    expect(list).toHaveLength(2);
    snapshots.push(list[1].name);

    const stats = JSON.parse((await ws.sv(['stats', 'core', '--json'])).stdout);
    const push2 = stats.runs.filter((x: { command: string }) => x.command === 'push').pop();
    expect(push2.ok).toBe(true);
    expect(push2.snapshot).toBe(snapshots[1]);
    expect(push2.phases.map((p: { name: string }) => p.name)).toEqual(['connect', 'open', 'sync', 'close']);
    const sumUp = push2.phases.reduce((t: number, p: { upBytes: number }) => t + p.upBytes, 0);
    expect(push2.upBytes).toBe(sumUp);
    // The meter reads the client's socket; the relay counts the same stream from outside.
    expect(Math.abs(push2.upBytes - relayUp) / relayUp).toBeLessThan(0.03);
    expect(Math.abs(push2.downBytes - relayDown) / relayDown).toBeLessThan(0.03);
    expect(push2.changedBytes).toBeGreaterThan(0);

    const table = await ws.sv(['stats', 'core']);
    expectOk(table, 'stats');
    expect(table.stdout).toContain('sync');
    expect(table.stdout).toContain(snapshots[1]);
    expect(await leftovers(ws.dir)).toEqual([]);
  });

  it('the image, read without sshvault, holds both snapshots exactly', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sshvault-verify-'));
    try {
      const raw = join(out, 'plain.raw');
      await decryptImage(join(remoteDir, 'vault.img'), ws.passphrase, raw);
      const dump = join(out, 'dump');
      if (fs === 'btrfs') {
        await btrfsRestore(raw, snapshots[1]!, dump);
        expect(await compareTrees(src, join(dump, src), { xattrs: true })).toEqual([]);
        // Complete snapshots are read-only subvolumes; an unchanged file's data is shared, not copied.
        const subvolumes = await btrfsSubvolumes(raw);
        expect(snapshots.map((n) => subvolumes.get(n)?.readOnly)).toEqual([true, true]);
        const unchanged = join(src, 'data', 'one-mib.bin');
        const a = await btrfsExtents(raw, snapshots[0]!, unchanged);
        expect(a.length).toBeGreaterThan(0);
        expect(await btrfsExtents(raw, snapshots[1]!, unchanged)).toEqual(a);
      } else {
        await rdump(raw, `/snapshots/${snapshots[1]}`, dump);
        expect(await compareTrees(src, join(dump, snapshots[1], src))).toEqual([]);

        const unchanged = join(src, 'docs', 'readme.txt');
        const a = await debugfsStat(raw, `/snapshots/${snapshots[0]}${unchanged}`);
        const b = await debugfsStat(raw, `/snapshots/${snapshots[1]}${unchanged}`);
        expect(b.inode).toBe(a.inode);
      }

      // Ciphertext only: the passphrase and plaintext file names never reach the remote.
      const img = await readFile(join(remoteDir, 'vault.img'));
      expect(img.includes(Buffer.from(ws.passphrase))).toBe(false);
      expect(img.includes(Buffer.from('readme.txt'))).toBe(false);
      const log = await readFile(join(ws.env.XDG_STATE_HOME, 'sshvault', 'core', 'last-run.log'), 'utf8').catch(() => '');
      expect(log).not.toContain(ws.passphrase);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
