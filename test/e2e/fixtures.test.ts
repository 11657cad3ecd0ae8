import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forceCleanup, leftovers } from '../helpers/cleanup.js';
import {
  churnSourceTree, compareTrees, debugfsCat, debugfsLs, debugfsStat, debugfsXattrs, decryptImage, makeSourceTree, rdump,
  type SourceManifest,
} from '../helpers/independent.js';
import { cmdline, processTable, sleep } from '../helpers/proc.js';
import { startRelay, type Relay } from '../helpers/relay.js';
import { startSshd, type SshdFixture } from '../helpers/sshd.js';

/**
 * The fixtures test themselves before anything trusts them: a relay that
 * miscounts, a tree comparison that misses a difference, or a cleanup that
 * leaves a mount would make every end-to-end verdict worthless.
 */

let root: string;
let sshd: SshdFixture;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sshvault-fixtures-'));
  sshd = await startSshd();
});

afterAll(async () => {
  if (root) await forceCleanup(root);
  await sshd?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

const PASSPHRASE = 'fixture passphrase, with a comma';
const MiB = 1 << 20;

function ssh(port: number, command: string, extra: string[] = []) {
  return execa('ssh', [
    '-p', String(port), '-i', sshd.userKeyPath,
    '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
    ...extra, 'root@127.0.0.1', command,
  ], { reject: false, timeout: 60_000, encoding: 'buffer', stdin: 'ignore' });
}

async function withRelay<T>(opts: Parameters<typeof startRelay>[1], body: (r: Relay) => Promise<T>): Promise<T> {
  const relay = await startRelay({ host: sshd.host, port: sshd.port }, opts);
  try {
    return await body(relay);
  } finally {
    await relay.close();
  }
}

describe('sshd and the relay', () => {
  it('sshd serves the known host key and the user key; the relay counts the wire', async () => {
    const fp = await execa('ssh-keygen', ['-l', '-E', 'sha256', '-F', `[127.0.0.1]:${sshd.port}`, '-f', sshd.knownHostsPath]);
    expect(fp.stdout).toContain(sshd.hostKeyFingerprint);
    await withRelay({}, async (relay) => {
      const r = await ssh(relay.port, 'head -c 1000000 /dev/zero');
      expect(r.exitCode).toBe(0);
      expect(r.stdout.length).toBe(1_000_000);
      expect(relay.downBytes()).toBeGreaterThan(1_000_000);
      expect(relay.downBytes()).toBeLessThan(1_100_000);
      expect(relay.upBytes()).toBeGreaterThan(1000);
      expect(relay.connections()).toBe(1);
    });
  });

  it('cutAfterBytes resets the connection at exactly that many bytes', async () => {
    await withRelay({ cutAfterBytes: 200_000 }, async (relay) => {
      const r = await ssh(relay.port, 'head -c 1000000 /dev/zero');
      expect(r.exitCode).toBe(255);
      expect(relay.upBytes() + relay.downBytes()).toBe(200_000);
      expect(r.stdout.length).toBeLessThan(200_000);
    });
  });

  it('a blackholed link is noticed only by a keepalive', async () => {
    await withRelay({ cutAfterBytes: 200_000, mode: 'blackhole' }, async (relay) => {
      const t0 = Date.now();
      const r = await ssh(relay.port, 'head -c 1000000 /dev/zero', ['-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=2']);
      expect(r.exitCode).toBe(255);
      expect(Buffer.from(r.stderr).toString()).toMatch(/not responding/);
      expect(Date.now() - t0).toBeLessThan(20_000);
      expect(relay.upBytes() + relay.downBytes()).toBe(200_000);
    });
  });

  it('cut() breaks live connections and lets new ones through', async () => {
    await withRelay({}, async (relay) => {
      const running = ssh(relay.port, 'sleep 30');
      while (relay.downBytes() < 2000) await sleep(20);
      await sleep(300);
      const t0 = Date.now();
      relay.cut();
      expect((await running).exitCode).toBe(255);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect((await ssh(relay.port, 'true')).exitCode).toBe(0);
      expect(relay.connections()).toBe(2);
    });
  });

  it('sftpOnly refuses commands and serves sftp', async () => {
    const box = await startSshd({ sftpOnly: true });
    try {
      const args = ['-P', String(box.port), '-i', box.userKeyPath, '-o', `UserKnownHostsFile=${box.knownHostsPath}`, '-o', 'BatchMode=yes'];
      const dir = box.remoteDir('vault');
      const exec = await execa('ssh', [...args.map((a) => (a === '-P' ? '-p' : a)), 'root@127.0.0.1', `touch ${dir}/x`], { reject: false, stdin: 'ignore' });
      expect(exec.exitCode).not.toBe(0);
      await expect(stat(join(dir, 'x'))).rejects.toThrow();
      const sftp = await execa('sftp', [...args, '-b', '-', 'root@127.0.0.1'], { input: `mkdir ${dir}/made-by-sftp\n` });
      expect(sftp.exitCode).toBe(0);
      expect((await stat(join(dir, 'made-by-sftp'))).isDirectory()).toBe(true);
    } finally {
      await box.stop();
    }
    await expect(stat(box.dir)).rejects.toThrow();
  });
});

async function mkext4(src: string, raw: string, size: string): Promise<void> {
  await execa('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', src, raw, size]);
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

describe('independent verification', () => {
  let src: string;
  let manifest: SourceManifest;
  let raw: string;

  beforeAll(async () => {
    src = join(root, 'src');
    manifest = await makeSourceTree(src);
    raw = join(root, 'plain.raw');
    await mkext4(src, raw, '64M');
  });

  it('makeSourceTree makes one of everything', () => {
    expect(manifest.paths).toEqual(expect.arrayContaining(['café/naïve-ñ.txt', 'docs/readme.txt', 'empty-dir', 'links/dangling', 'hard/two.txt']));
    expect(manifest.paths.some((p) => /[\u3040-\u30ff]/.test(p))).toBe(true);
    expect(manifest.hardlinks).toEqual([['hard/one.txt', 'hard/two.txt']]);
    expect(manifest.xattrFile).toBe('xattr/tagged.txt');
    expect(manifest.regularBytes).toBeGreaterThan(4 * MiB);
  });

  it('rdump of an mke2fs -d image equals the source, hard links, owners and file mtimes included', async () => {
    const out = join(root, 'rdump-root');
    await rdump(raw, '/', out);
    await rm(join(out, 'lost+found'), { recursive: true });
    expect(await compareTrees(src, out)).toEqual([]);

    const sub = join(root, 'rdump-sub');
    await rdump(raw, '/hard', sub);
    expect(await compareTrees(join(src, 'hard'), join(sub, 'hard'))).toEqual([]);
  });

  it('debugfs helpers read inodes, directories, contents and xattrs', async () => {
    const one = await debugfsStat(raw, '/hard/one.txt');
    const two = await debugfsStat(raw, '/hard/two.txt');
    expect(two.inode).toBe(one.inode);
    expect(one.links).toBe(2);
    const owned = await debugfsStat(raw, '/owned/uid1234-gid2345.txt');
    expect([owned.uid, owned.gid, owned.mode]).toEqual([1234, 2345, 0o100644]);
    const local = await stat(join(src, 'owned/uid1234-gid2345.txt'));
    expect(owned.mtime).toBe(Math.floor(local.mtimeMs / 1000));
    expect((await debugfsStat(raw, '/links/dangling')).mode).toBe(0o120777);
    expect((await debugfsStat(raw, '/modes/private-dir-0700')).mode).toBe(0o040700);

    const odd = await debugfsLs(raw, '/odd names');
    expect(odd.map((e) => e.name).sort()).toEqual([
      '  leading spaces', '"double"', '-leading-dash', 'back\\slash', "with spaces and 'quotes' (1) [x] {y} #$%&!;=@^~,+.txt",
    ].sort());
    expect(await debugfsCat(raw, '/odd names/"double"')).toEqual(await readFile(join(src, 'odd names/"double"')));
    // Buffer.equals: toEqual walks a 3 MiB buffer byte by byte, for seconds.
    expect((await debugfsCat(raw, `/${manifest.bigFile}`)).equals(await readFile(join(src, manifest.bigFile)))).toBe(true);
    expect(await debugfsXattrs(raw, '/xattr/tagged.txt')).toEqual({ 'user.test': Buffer.from('sshvault-xattr') });
    await expect(debugfsStat(raw, '/no/such/file')).rejects.toThrow(/not found/);
  });

  it('compareTrees reports every kind of churn, and xattrs on request', async () => {
    const copy = join(root, 'copy');
    await execa('cp', ['-a', src, copy]);
    expect(await compareTrees(src, copy, { xattrs: true })).toEqual([]);

    await execa('setfattr', ['-n', 'user.test', '-v', 'changed', join(copy, 'xattr/tagged.txt')]);
    expect(await compareTrees(src, copy)).toEqual([]);
    expect(await compareTrees(src, copy, { xattrs: true })).toEqual([expect.stringMatching(/^xattr\/tagged\.txt: xattrs/)]);

    const churn = await churnSourceTree(copy);
    const diffs = await compareTrees(src, copy);
    const about = (p: string) => diffs.filter((d) => d.includes(p));
    for (const p of churn.added) expect(about(`only in b: ${p}`)).toHaveLength(1);
    for (const p of churn.removed) expect(about(`only in a: ${p}`)).toHaveLength(1);
    expect(about('docs/guide.md: content differs')).toHaveLength(1);
    expect(about('docs/guide.md: mtime')).toHaveLength(1);
    expect(about('data/small-1.bin: mode 100644 in a, 100640 in b')).toHaveLength(1);
    expect(about('data/small-4095.bin: file in a, symlink in b')).toHaveLength(1);
    // hard/three.txt joins an existing pair: reported as a new name, the pair itself is intact.
    expect(diffs.filter((d) => d.includes('hard-linked'))).toEqual([]);
    expect(churn.newContentBytes).toBe(20_000 + 3000 + 400 + 500 + 10_000);

    // Same names and contents, different link structure and owner: still caught.
    await rm(join(copy, 'hard/two.txt'));
    await cp(join(copy, 'hard/one.txt'), join(copy, 'hard/two.txt'), { preserveTimestamps: true });
    await execa('chown', ['-h', '7:8', join(copy, 'links/relative')]);
    const more = await compareTrees(src, copy);
    expect(more.filter((d) => d.includes('hard-linked'))).toEqual(['hard/one.txt: hard-linked with [hard/one.txt, hard/two.txt] in a, with [hard/one.txt] in b']);
    expect(more).toContain('links/relative: owner 0:0 in a, 7:8 in b');
  });

  it('decryptImage reads what cryptsetup formatted and qemu encrypted, and refuses a wrong passphrase', async () => {
    const secret = join(root, 'secret');
    await mkdir(secret, { mode: 0o700 });
    const keyFile = join(secret, 'key');
    await writeFile(keyFile, PASSPHRASE, { mode: 0o600 });
    const image = join(root, 'luks.img');
    await writeFile(image, '');
    await truncate(image, 64 * MiB + 2 * MiB);
    await execa('cryptsetup', [
      'luksFormat', '--batch-mode', '--type', 'luks1', '--cipher', 'aes-xts-plain64', '--key-size', '512', '--hash', 'sha256',
      '--pbkdf-force-iterations', '1000', '--key-file', keyFile, image,
    ]);
    expect((await execa('cryptsetup', ['luksDump', image])).stdout).toMatch(/Payload offset:\s+4096/);
    const header = await readFile(image);
    expect(header.subarray(0, 6).toString('latin1')).toBe('LUKS\xba\xbe');
    expect(header.readUInt16BE(6)).toBe(1);

    const fresh = join(root, 'fresh.raw');
    await decryptImage(image, PASSPHRASE, fresh);
    expect((await stat(fresh)).size).toBe(64 * MiB);

    // cryptsetup cannot write plaintext without device-mapper; qemu's LUKS driver can.
    await execa('qemu-img', [
      'convert', '-n', '--object', `secret,id=s0,file=${keyFile}`, '-f', 'raw', raw,
      '--target-image-opts', `driver=luks,key-secret=s0,file.filename=${image}`,
    ]);
    const back = join(root, 'back.raw');
    await decryptImage(image, PASSPHRASE, back);
    expect(await sha256(back)).toBe(await sha256(raw));
    expect((await readFile(image)).includes(Buffer.from('sshvault-xattr'))).toBe(false);

    await expect(decryptImage(image, 'not the passphrase', join(root, 'wrong.raw'))).rejects.toThrow(/Invalid password/i);
  });
});

describe('leftovers and forceCleanup', () => {
  /**
   * The userspace stack by hand (sshfs, qemu-nbd, nbdfuse, loop, ext4), so
   * that cleanup is tested on the real thing without sshvault's code.
   */
  async function stack(name: string, relay: Relay) {
    const dir = join(root, name);
    const remote = sshd.remoteDir(name);
    await execa('cp', ['--sparse=always', join(root, 'luks.img'), join(remote, 'vault.img')]);
    for (const d of ['remote', 'plain', 'fs']) await mkdir(join(dir, d), { recursive: true });
    await execa('sshfs', [
      '-p', String(relay.port), '-o', `IdentityFile=${sshd.userKeyPath},UserKnownHostsFile=${sshd.knownHostsPath},StrictHostKeyChecking=yes,BatchMode=yes`,
      `root@127.0.0.1:${remote}`, join(dir, 'remote'),
    ]);
    const keyFile = join(root, 'secret', 'key');
    const socket = join(dir, 'nbd.sock');
    await execa('qemu-nbd', [
      '--fork', '--persistent', '-k', socket, '--object', `secret,id=s0,file=${keyFile}`,
      '--image-opts', `driver=luks,key-secret=s0,file.filename=${join(dir, 'remote', 'vault.img')}`,
    ]);
    spawn('nbdfuse', [join(dir, 'plain', 'disk'), '--unix', socket], { stdio: 'ignore', detached: true }).unref();
    const disk = join(dir, 'plain', 'disk');
    for (let i = 0; !(await stat(disk).catch(() => null))?.size; i++) {
      if (i > 200) throw new Error('nbdfuse did not come up');
      await sleep(50);
    }
    const loop = (await execa('losetup', ['-f', '--show', disk])).stdout.trim();
    await execa('mount', ['-o', 'noatime', loop, join(dir, 'fs')]);
    return { dir, remote, fs: join(dir, 'fs') };
  }

  it('sees and tears down a healthy stack top-down, so its data reaches the image', async () => {
    await withRelay({}, async (relay) => {
      const s = await stack('live', relay);
      const payload = Buffer.from('written just before the teardown\n');
      await writeFile(join(s.fs, 'last-words.txt'), payload);

      const seen = await leftovers(s.dir);
      expect(seen.filter((l) => l.startsWith('loop mount:'))).toHaveLength(1);
      expect(seen.filter((l) => l.startsWith('loop device:'))).toHaveLength(1);
      expect(seen.filter((l) => l.startsWith('fuse mount:')).map((l) => l.split(' (')[1].split(',')[0]).sort()).toEqual(['fuse', 'fuse.sshfs']);
      expect(seen.filter((l) => l.startsWith('process:')).map((l) => l.split(' ')[1]).sort()).toEqual(['nbdfuse', 'qemu-nbd', 'sshfs']);
      expect(await leftovers(join(root, 'elsewhere'))).toEqual([]);

      expect(await forceCleanup(s.dir)).toEqual([]);
      const plain = join(root, 'live.raw');
      await decryptImage(join(s.remote, 'vault.img'), PASSPHRASE, plain);
      expect(await debugfsCat(plain, '/last-words.txt')).toEqual(payload);
    });
  });

  it('tears down a stack whose link went silent, writers blocked in the kernel and all', async () => {
    await withRelay({}, async (relay) => {
      const s = await stack('dead', relay);
      await writeFile(join(s.fs, 'dirty.bin'), Buffer.alloc(4 * MiB, 7));
      relay.cut('blackhole');
      const t0 = Date.now();
      expect(await forceCleanup(s.dir)).toEqual([]);
      expect(Date.now() - t0).toBeLessThan(90_000);
    });
    // sshfs's ssh child waits for the server until the relay closes its socket.
    for (let i = 0; processTable().some((p) => p.comm === 'ssh' && cmdline(p.pid).join(' ').includes(sshd.userKeyPath)); i++) {
      if (i > 100) throw new Error('an ssh client of the dead sshfs is still running');
      await sleep(50);
    }
  });

  it('sees and ends rsync processes and key files below the prefix', async () => {
    const dir = join(root, 'rsync');
    const run = join(dir, 'state', 'sshvault', 'v', 'run');
    await mkdir(join(dir, 'src'), { recursive: true });
    await mkdir(run, { recursive: true });
    await writeFile(join(run, 'key-0123456789ab'), 'secret', { mode: 0o600 });
    await writeFile(join(dir, 'key-not-in-a-run-dir'), 'not a key file');
    // A remote shell that never answers keeps rsync waiting, as a writer blocked on a dead mount would.
    const rsync = spawn('rsync', ['-a', '-e', 'sh -c "cat >/dev/null; :"', `${join(dir, 'src')}/`, `h:${join(dir, 'dst')}`], {
      stdio: 'ignore',
      detached: true,
    });
    rsync.unref();
    for (let i = 0; !(await leftovers(dir)).some((l) => l.startsWith('process: rsync')); i++) {
      if (i > 200) throw new Error('rsync did not start');
      await sleep(50);
    }
    expect((await leftovers(dir)).map((l) => l.split(' (')[0].split(': ').slice(0, 2).join(': ')).sort()).toEqual([
      `key file: ${join(run, 'key-0123456789ab')}`,
      'process: rsync',
    ]);
    expect(await leftovers(join(root, 'elsewhere'))).toEqual([]);
    expect(await forceCleanup(dir)).toEqual([]);
    expect(processTable().some((p) => p.pid === rsync.pid && p.state !== 'Z')).toBe(false);
  });

  it('leaves nothing behind', async () => {
    // Scoped: other sessions on this machine run sshvault stacks of their own.
    expect(await leftovers(root)).toEqual([]);
    expect(await leftovers(sshd.dir)).toEqual([]);
  });
});
