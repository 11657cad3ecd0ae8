import { execa } from 'execa';
import { appendFile, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, expectOk, workspace, type CliResult, type Workspace } from '../helpers/cli.js';
import { forceCleanup, leftovers } from '../helpers/cleanup.js';
import { debugfsStat, debugfsXattrs, decryptImage } from '../helpers/independent.js';
import { sleep } from '../helpers/proc.js';
import { startRelay, type Relay } from '../helpers/relay.js';
import { startSshd, type SshdFixture } from '../helpers/sshd.js';
import { renameManifest } from '../helpers/manifests.js';
import { withMountedPlaintext } from '../helpers/vault.js';

/** ext4's on-disk ACL entry for a named user: tag 2 (ACL_USER), the permission bits, then the uid. */
function aclUserEntry(uid: number, perm: number): string {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(2, 0);
  b.writeUInt16LE(perm, 2);
  b.writeUInt32LE(uid, 4);
  return b.toString('hex');
}

/**
 * A resumed push must not change a complete snapshot. The interrupted run has
 * hard-linked unchanged files from the previous snapshot into its .partial;
 * the source then changes only in mode, owner, an xattr or an ACL, and the
 * resume must give the new snapshot new inodes instead of changing the shared
 * ones. Checked from outside: qemu-img decrypts the image, debugfs reads it.
 */
describe('pushes that never change a complete snapshot', () => {
  let sshd: SshdFixture;
  let ws: Workspace;
  let scratch: string;
  let src: string;
  let remoteDir: string;
  let configFile: string;
  let knownHosts: string;

  beforeAll(async () => {
    sshd = await startSshd();
    ws = await workspace();
    scratch = await mkdtemp(join(tmpdir(), 'sshvault-resume-'));
    src = join(scratch, 'src');
    await mkdir(src);
    remoteDir = sshd.remoteDir('resume');
    knownHosts = join(scratch, 'known_hosts');
    await copyFile(sshd.knownHostsPath, knownHosts);
    expectOk(
      await ws.sv([
        'init', 'resume', '--remote', remoteUrl(sshd.port), '--size', '1G', '--fs', 'ext4', '--identity', sshd.userKeyPath,
        '--known-hosts', knownHosts, '--passphrase-file', ws.passphraseFile, '--source', src,
      ]),
      'init',
    );
    configFile = join(ws.env.XDG_CONFIG_HOME, 'sshvault', 'resume.json');
  });

  afterAll(async () => {
    if (ws) await forceCleanup(ws.dir);
    if (scratch) await forceCleanup(scratch);
    await sshd?.stop();
    await ws?.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  function remoteUrl(port: number): string {
    return `ssh://root@127.0.0.1:${port}${remoteDir}`;
  }

  async function pointAt(port: number): Promise<void> {
    const c = JSON.parse(await readFile(configFile, 'utf8'));
    c.remote = remoteUrl(port);
    await writeFile(configFile, JSON.stringify(c, null, 2));
  }

  /** The relay has its own port but the sshd's host key. */
  async function trustPort(port: number): Promise<void> {
    const line = (await readFile(sshd.knownHostsPath, 'utf8')).trim().split('\n')[0];
    await appendFile(knownHosts, `[127.0.0.1]:${port} ${line.split(' ').slice(1).join(' ')}\n`);
  }

  // Top-level files sort before the big one, so rsync links them before it starts the long upload.
  const files = { mode: 'a-mode.txt', owner: 'a-owner.txt', xattr: 'a-xattr.txt', acl: 'a-acl.txt' };

  async function initialAttributes(): Promise<void> {
    for (const f of Object.values(files)) {
      await writeFile(join(src, f), `${f}\n`.repeat(100));
      await execa('chmod', ['0644', join(src, f)]);
      await execa('chown', ['0:0', join(src, f)]);
    }
    await execa('setfattr', ['-n', 'user.tag', '-v', 'before', join(src, files.xattr)]);
    await execa('setfacl', ['-b', join(src, files.acl)]);
    await execa('setfacl', ['-m', 'u:1000:r', join(src, files.acl)]);
  }

  async function changeAttributes(): Promise<void> {
    await execa('chmod', ['0600', join(src, files.mode)]);
    await execa('chown', ['1234:1234', join(src, files.owner)]);
    await execa('setfattr', ['-n', 'user.tag', '-v', 'after', join(src, files.xattr)]);
    await execa('setfacl', ['-m', 'u:1234:rw', join(src, files.acl)]);
  }

  async function newestComplete(): Promise<string> {
    const r = await ws.sv(['list', 'resume', '--json', '--refresh']);
    expectOk(r, 'list');
    const list = JSON.parse(r.stdout) as { name: string; complete: boolean }[];
    return list.filter((s) => s.complete).pop()!.name;
  }

  /** By name, not by list order: an earlier test leaves a snapshot dated 2031. */
  function pushedSnapshot(r: CliResult, what: string): string {
    expectOk(r, what);
    return (JSON.parse(r.stdout) as { snapshot: string }).snapshot;
  }

  const fsMount = () => join(ws.env.XDG_STATE_HOME, 'sshvault', 'resume', 'run', 'fs');

  /** Until the running push's .partial holds the last small file as a hard link into the previous snapshot. */
  async function waitForLinkedFiles(timeoutMs = 120_000): Promise<void> {
    const snapshots = join(fsMount(), 'snapshots');
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const partial = (await readdir(snapshots).catch(() => [] as string[])).find((n) => n.endsWith('.partial'));
      if (partial) {
        const st = await lstat(join(snapshots, partial, src, files.acl)).catch(() => undefined);
        if (st && st.nlink > 1) return;
      }
      await sleep(20);
    }
    throw new Error('the push never linked the unchanged files into its .partial');
  }

  async function checkFromOutside(before: string, after: string): Promise<void> {
    const out = await mkdtemp(join(tmpdir(), 'sshvault-resumeverify-'));
    try {
      const raw = join(out, 'plain.raw');
      await decryptImage(join(remoteDir, 'vault.img'), ws.passphrase, raw);
      const at = (snap: string, f: string) => `/snapshots/${snap}${src}/${f}`;

      expect((await debugfsStat(raw, at(before, files.mode))).mode & 0o7777).toBe(0o644);
      expect((await debugfsStat(raw, at(after, files.mode))).mode & 0o7777).toBe(0o600);

      const ownerBefore = await debugfsStat(raw, at(before, files.owner));
      expect([ownerBefore.uid, ownerBefore.gid]).toEqual([0, 0]);
      const ownerAfter = await debugfsStat(raw, at(after, files.owner));
      expect([ownerAfter.uid, ownerAfter.gid]).toEqual([1234, 1234]);

      expect((await debugfsXattrs(raw, at(before, files.xattr)))['user.tag']?.toString()).toBe('before');
      expect((await debugfsXattrs(raw, at(after, files.xattr)))['user.tag']?.toString()).toBe('after');

      const aclBefore = (await debugfsXattrs(raw, at(before, files.acl)))['system.posix_acl_access']?.toString('hex') ?? '';
      expect(aclBefore).toContain(aclUserEntry(1000, 4));
      expect(aclBefore).not.toContain(aclUserEntry(1234, 6));
      const aclAfter = (await debugfsXattrs(raw, at(after, files.acl)))['system.posix_acl_access']?.toString('hex') ?? '';
      expect(aclAfter).toContain(aclUserEntry(1234, 6));

      const fsck = await execa('e2fsck', ['-fn', raw], { reject: false });
      expect(fsck.exitCode, fsck.stdout).toBe(0);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }

  it('flushes the snapshot to the remote before renaming it, and the rename before reporting success', async () => {
    await initialAttributes();
    const r = await ws.sv(['--debug', 'push', 'resume']);
    expectOk(r, 'push');
    const lines = r.stderr.split('\n');
    const at = (re: RegExp, from = 0) => {
      const i = lines.findIndex((l, n) => n >= from && re.test(l));
      expect(i, `no line matching ${re} after line ${from}:\n${r.stderr}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const synced = at(/ push: rsync finished into/);
    const manifest = at(/ push: manifest written/, synced);
    // The image cache's NBD server logs a flush only once the remote has answered every write before it.
    const flushed = at(/ nbd: flush: the remote has answered every write/, manifest);
    const renamed = at(/ push: renamed \S+\.partial to /, flushed);
    const records = at(/ push: run record written/, at(/ push: catalog written/, renamed));
    const flushedAgain = at(/ nbd: flush: the remote has answered every write/, records);
    at(/ push: flushed the rename and the records/, flushedAgain);
    await sleep(1100);
  });

  it('a file rsync cannot read gives a snapshot complete with warnings, listed, and exit 8', async () => {
    // A write-only sysfs attribute: the kernel refuses to open it for reading even for root, so rsync exits 23.
    const unreadable = '/sys/bus/pci/rescan';
    await initialAttributes();
    const r = await ws.sv(['push', 'resume', src, unreadable]);
    expect(r.exitCode, r.stderr).toBe(8);
    expect(r.stderr).toContain(unreadable);
    expect(r.stderr).toMatch(/complete with warnings/);
    const list = JSON.parse((await ws.sv(['list', 'resume', '--json', '--refresh'])).stdout) as {
      name: string;
      complete: boolean;
      warnings?: number;
      warningPaths?: string[];
    }[];
    const newest = list[list.length - 1];
    expect(newest).toMatchObject({ complete: true, warnings: 1, warningPaths: [unreadable] });
    expect((await ws.sv(['list', 'resume'])).stdout).toMatch(new RegExp(`${newest.name}.*complete \\(warnings\\)`));
    // The files it could read are there, seen from outside.
    const out = await mkdtemp(join(tmpdir(), 'sshvault-warnverify-'));
    try {
      await decryptImage(join(remoteDir, 'vault.img'), ws.passphrase, join(out, 'raw'));
      expect((await debugfsStat(join(out, 'raw'), `/snapshots/${newest.name}${src}/${files.mode}`)).size).toBeGreaterThan(0);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
    const runs = JSON.parse((await ws.sv(['stats', 'resume', '--json'])).stdout).runs as { snapshot?: string; ok: boolean; exitCode: number }[];
    expect(runs.find((x) => x.snapshot === newest.name)).toMatchObject({ ok: true, exitCode: 8 });
    await sleep(1100);
  });

  it('a snapshot named by a clock years ahead: the push says so, and latest follows the order of pushes', async () => {
    await initialAttributes();
    expectOk(await ws.sv(['push', 'resume']), 'push');
    const pushed = await newestComplete();
    await sleep(1100);
    // As if that push had run with the clock in 2031: its directory, catalog entry and manifest carry that name.
    const future = '2031-01-01T000000Z';
    await withMountedPlaintext(join(remoteDir, 'vault.img'), ws.passphrase, async (root) => {
      await rename(join(root, 'snapshots', pushed), join(root, 'snapshots', future));
      await renameManifest(root, pushed, future);
      const file = join(root, '.sshvault', 'catalog.json');
      const cat = JSON.parse(await readFile(file, 'utf8')) as { snapshots: { name: string; time: string }[] };
      Object.assign(cat.snapshots.find((e) => e.name === pushed)!, { name: future, time: '2031-01-01T00:00:00.000Z' });
      await writeFile(file, JSON.stringify(cat));
    });

    await writeFile(join(src, files.mode), 'changed after the clock was fixed\n');
    const r = await ws.sv(['push', 'resume']);
    expectOk(r, 'push after the future-dated one');
    const warning = new RegExp(`snapshot ${future} is dated more than a day after this machine's clock .* the newest is (\\S+), and this push \\((\\S+)\\) becomes the latest`);
    expect(r.stderr).toMatch(warning);
    const [, before, first] = warning.exec(r.stderr)!;
    expect(before).toBe(future);
    await sleep(1100);
    const again = await ws.sv(['push', 'resume']);
    expectOk(again, 'second push after the future-dated one');
    expect(again.stderr).toMatch(warning);
    const [, newest, second] = warning.exec(again.stderr)!;
    expect(newest).toBe(first);

    const dest = join(scratch, 'latest');
    expectOk(await ws.sv(['restore', 'resume', `latest:${src}`, dest]), 'restore latest');
    expect(await readFile(join(dest, files.mode), 'utf8')).toBe('changed after the clock was fixed\n');
    await rm(dest, { recursive: true });
    // The second push linked against the first (its run-order predecessor), not against the 2031 one.
    const out = await mkdtemp(join(tmpdir(), 'sshvault-clockverify-'));
    try {
      const raw = join(out, 'raw');
      await decryptImage(join(remoteDir, 'vault.img'), ws.passphrase, raw);
      const inode = async (snap: string) => (await debugfsStat(raw, `/snapshots/${snap}${src}/${files.mode}`)).inode;
      expect(await inode(second!)).toBe(await inode(first));
      expect(await inode(first)).not.toBe(await inode(future));
    } finally {
      await rm(out, { recursive: true, force: true });
    }
    await sleep(1100);
  });

  let round = 0;
  for (const how of ['SIGINT', 'link cut'] as const) {
    it(`after a ${how}, mode, owner, xattr and ACL changes reach only the new snapshot`, async () => {
      round++;
      await pointAt(sshd.port);
      await initialAttributes();
      await rm(join(src, `z-big-${round - 1}.bin`), { force: true });
      const before = pushedSnapshot(await ws.sv(['push', 'resume', '--json']), 'first push');
      await sleep(1100);

      // New data the interrupted push is still uploading when it is stopped.
      await execa('sh', ['-c', `head -c 200M /dev/urandom > ${join(src, `z-big-${round}.bin`)}`]);
      let relay: Relay | undefined;
      if (how === 'link cut') {
        relay = await startRelay({ host: '127.0.0.1', port: sshd.port });
        await trustPort(relay.port);
        await pointAt(relay.port);
      }
      try {
        const push = execa(BIN, ['push', 'resume'], { env: ws.env, reject: false });
        await waitForLinkedFiles();
        if (relay) {
          // What rsync linked must be on the remote before the cut, as it would be after any writeback.
          await execa('sync', ['-f', fsMount()]);
          relay.cut();
        } else {
          push.kill('SIGINT');
        }
        const r = await push;
        expect(r.exitCode, String(r.stderr)).toBe(how === 'SIGINT' ? 130 : 4);
      } finally {
        await relay?.close();
      }
      expect(await leftovers(ws.dir)).toEqual([]);

      await changeAttributes();
      await pointAt(sshd.port);
      await sleep(1100);
      const after = pushedSnapshot(await ws.sv(['push', 'resume', '--json']), 'resumed push');
      expect(after).not.toBe(before);
      expect(await leftovers(ws.dir)).toEqual([]);
      await checkFromOutside(before, after);
    });
  }
});
