import { createHash } from 'node:crypto';
import { execa } from 'execa';
import { readFile, writeFile, mkdtemp, rm, copyFile, open, mkdir, readdir, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup, leftovers } from '../helpers/cleanup.js';
import { startSshd, type SshdFixture } from '../helpers/sshd.js';

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

/**
 * Bad inputs: each gets a one-line message, its exit code, and
 * leaves the remote image byte for byte as it was where nothing may be written.
 */
describe('bad input', () => {
  let sshd: SshdFixture;
  let ws: Workspace;
  let scratch: string;
  let src: string;
  let remoteDir: string;
  let image: string;
  let configFile: string;
  let config: Record<string, unknown>;

  beforeAll(async () => {
    sshd = await startSshd();
    ws = await workspace();
    scratch = await mkdtemp(join(tmpdir(), 'sshvault-bad-'));
    src = join(scratch, 'src');
    await execa('mkdir', ['-p', src]);
    await writeFile(join(src, 'a.txt'), 'hello\n');
    remoteDir = sshd.remoteDir('bad');
    image = join(remoteDir, 'vault.img');
    expectOk(
      await ws.sv([
        'init', 'bad', '--remote', `ssh://root@127.0.0.1:${sshd.port}${remoteDir}`, '--size', '96M', '--fs', 'ext4',
        '--identity', sshd.userKeyPath, '--known-hosts', sshd.knownHostsPath, '--passphrase-file', ws.passphraseFile, '--source', src,
      ]),
      'init',
    );
    expectOk(await ws.sv(['push', 'bad']), 'first push');
    configFile = join(ws.env.XDG_CONFIG_HOME, 'sshvault', 'bad.json');
    config = JSON.parse(await readFile(configFile, 'utf8'));
  });

  afterAll(async () => {
    if (ws) await forceCleanup(ws.dir);
    await sshd?.stop();
    await ws?.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  /** Runs a push with the config changed as given; the config is put back afterwards. */
  async function pushWith(change: Record<string, unknown>, extra: string[] = [], env: Record<string, string> = {}) {
    await writeFile(configFile, JSON.stringify({ ...config, ...change }));
    try {
      return await ws.sv(['push', 'bad', ...extra], { env });
    } finally {
      await writeFile(configFile, JSON.stringify(config));
    }
  }

  async function expectUntouched<T>(fn: () => Promise<T>): Promise<T> {
    const before = await sha256(image);
    const r = await fn();
    expect(await sha256(image)).toBe(before);
    expect(await leftovers(ws.dir)).toEqual([]);
    return r;
  }

  function oneLine(stderr: string): string {
    const lines = stderr.trim().split('\n').filter((l) => l.startsWith('sshvault:'));
    expect(lines).toHaveLength(1);
    return lines[0];
  }

  it('wrong passphrase: exit 3 before anything is written', async () => {
    const wrong = join(scratch, 'wrong');
    await writeFile(wrong, 'not the passphrase\n');
    const r = await expectUntouched(() => ws.sv(['push', 'bad', '--passphrase-file', wrong]));
    expect(r.exitCode, r.stderr).toBe(3);
    expect(oneLine(r.stderr)).toMatch(/wrong passphrase/);
  });

  it('unknown host key: exit 3, nothing recorded without --accept-new-host-key', async () => {
    const empty = join(scratch, 'empty_known_hosts');
    await writeFile(empty, '');
    const r = await expectUntouched(() => pushWith({ knownHosts: empty }));
    expect(r.exitCode).toBe(3);
    expect(oneLine(r.stderr)).toMatch(/unknown host key .*SHA256:.*--accept-new-host-key/);
    expect(await readFile(empty, 'utf8')).toBe('');
  });

  it('changed host key: exit 3 with the new fingerprint, even where new keys are accepted', async () => {
    const other = join(scratch, 'otherkey');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const pub = (await readFile(`${other}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const kh = join(scratch, 'changed_known_hosts');
    await writeFile(kh, `[127.0.0.1]:${sshd.port} ${pub}\n`);
    const r = await expectUntouched(() => pushWith({ knownHosts: kh }));
    expect(r.exitCode).toBe(3);
    expect(oneLine(r.stderr)).toMatch(/CHANGED .*SHA256:/);
    const elsewhere = sshd.remoteDir('changed-init');
    const init = await ws.sv([
      'init', 'changed', '--remote', `ssh://root@127.0.0.1:${sshd.port}${elsewhere}`, '--size', '64M', '--fs', 'ext4',
      '--identity', sshd.userKeyPath, '--known-hosts', kh, '--accept-new-host-key', '--passphrase-file', ws.passphraseFile,
    ]);
    expect(init.exitCode).toBe(3);
    expect(oneLine(init.stderr)).toMatch(/CHANGED/);
    expect(await readFile(kh, 'utf8')).toBe(`[127.0.0.1]:${sshd.port} ${pub}\n`);
  });

  it('hashed known_hosts entries are honoured', async () => {
    const kh = join(scratch, 'hashed_known_hosts');
    const entry = (await readFile(sshd.knownHostsPath, 'utf8')).trim().split('\n')[0].split(' ').slice(1).join(' ');
    await writeFile(kh, `[127.0.0.1]:${sshd.port} ${entry}\n`);
    await execa('ssh-keygen', ['-H', '-f', kh]);
    expect(await readFile(kh, 'utf8')).toMatch(/^\|1\|/);
    expectOk(await pushWith({ knownHosts: kh }), 'push with hashed known_hosts');
  });

  it('authentication refused: exit 3', async () => {
    const stranger = join(scratch, 'stranger');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
    const r = await expectUntouched(() => pushWith({ identity: stranger }));
    expect(r.exitCode).toBe(3);
    expect(oneLine(r.stderr)).toMatch(/refused our SSH keys/);
  });

  it('host unreachable: exit 4', async () => {
    const closed = await freePort();
    const r = await expectUntouched(() => pushWith({ remote: `ssh://root@127.0.0.1:${closed}${remoteDir}` }));
    expect(r.exitCode).toBe(4);
    expect(oneLine(r.stderr)).toMatch(/cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  });

  it('remote directory missing: exit 4', async () => {
    const r = await expectUntouched(() => pushWith({ remote: `ssh://root@127.0.0.1:${sshd.port}${remoteDir}-gone` }));
    expect(r.exitCode).toBe(4);
    expect(oneLine(r.stderr)).toMatch(/remote directory .* does not exist/);
  });

  it('remote directory not writable: exit 4', async () => {
    await execa('chattr', ['+i', remoteDir]);
    try {
      const r = await expectUntouched(() => ws.sv(['push', 'bad']));
      expect(r.exitCode).toBe(4);
      expect(oneLine(r.stderr)).toMatch(/writable/);
    } finally {
      await execa('chattr', ['-i', remoteDir]);
    }
  });

  /** A PATH with every program of this one but `tool`. */
  async function pathWithout(tool: string): Promise<string> {
    const dir = join(scratch, `path-without-${tool}`);
    await mkdir(dir, { recursive: true });
    for (const d of (process.env.PATH ?? '').split(':').filter(Boolean)) {
      for (const f of await readdir(d).catch(() => [] as string[])) {
        // The first directory of PATH that has a program wins, as it does for a shell.
        if (f !== tool) await symlink(join(d, f), join(dir, f)).catch(() => {});
      }
    }
    return dir;
  }

  it('sshfs not installed: exit 2 naming the package', async () => {
    const r = await expectUntouched(async () => ws.sv(['push', 'bad'], { env: { PATH: await pathWithout('sshfs') } }));
    expect(r.exitCode, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/sshfs could not be started .*apt-get install sshfs/);
  });

  it('image not LUKS: exit 2 pointing at the header backup; missing image: exit 2', async () => {
    const fh = await open(image, 'r+');
    const saved = Buffer.alloc(4096);
    await fh.read(saved, 0, 4096, 0);
    await fh.write(Buffer.alloc(4096), 0, 4096, 0);
    try {
      const r = await expectUntouched(() => ws.sv(['push', 'bad']));
      expect(r.exitCode).toBe(2);
      expect(oneLine(r.stderr)).toMatch(/no LUKS1 header.*luksHeaderRestore/);
    } finally {
      await fh.write(saved, 0, 4096, 0);
      await fh.close();
    }
    const r = await pushWith({ image: 'elsewhere.img' });
    expect(r.exitCode).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/image .*elsewhere\.img is missing/);
  });

  it('a replaced image (another LUKS volume) is refused with exit 3', async () => {
    const other = join(scratch, 'other.img');
    await execa('truncate', ['-s', '8M', other]);
    await execa('cryptsetup', ['luksFormat', '--type', 'luks1', '--batch-mode', '--pbkdf-force-iterations', '1000', '--key-file', ws.passphraseFile, other]);
    const remoteOther = join(remoteDir, 'other.img');
    await copyFile(other, remoteOther);
    try {
      const r = await pushWith({ image: 'other.img' });
      expect(r.exitCode).toBe(3);
      expect(oneLine(r.stderr)).toMatch(/replaced/);
    } finally {
      await rm(remoteOther, { force: true });
    }
  });

  it('source path missing, unknown vault, broken config: exit 2', async () => {
    let r = await expectUntouched(() => ws.sv(['push', 'bad', join(scratch, 'no-such-dir')]));
    expect(r.exitCode).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/source path .* does not exist/);
    r = await ws.sv(['push', 'nosuchvault', src]);
    expect(r.exitCode).toBe(2);
    r = await ws.sv(['list', 'nosuchvault']);
    expect(r.exitCode).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/unknown vault 'nosuchvault'/);
    await writeFile(configFile, '{ "name": "bad", ');
    try {
      r = await ws.sv(['push', 'bad']);
      expect(r.exitCode).toBe(2);
      expect(oneLine(r.stderr)).toMatch(/config file .* is broken/);
    } finally {
      await writeFile(configFile, JSON.stringify(config));
    }
  });

  it('a second push of the same vault on this host: exit 5', async () => {
    await writeFile(join(src, 'big.bin'), Buffer.alloc(40 * 1024 * 1024, 7));
    const first = ws.sv(['push', 'bad']);
    // Wait until the first push owns the vault's run lock.
    const lockFile = join(ws.env.XDG_STATE_HOME, 'sshvault', 'bad', 'run.lock');
    for (let i = 0; i < 200; i++) {
      if (await readFile(lockFile).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const second = await ws.sv(['push', 'bad']);
    expect(second.exitCode).toBe(5);
    expect(oneLine(second.stderr)).toMatch(/another sshvault run \(pid \d+\) is using vault 'bad'/);
    expectOk(await first, 'first push');
    await rm(join(src, 'big.bin'));
    expect(await leftovers(ws.dir)).toEqual([]);
  });

  it('vault full: exit 6 naming prune, the snapshot stays partial, the next push with less data works', async () => {
    await writeFile(join(src, 'huge.bin'), Buffer.alloc(120 * 1024 * 1024, 1));
    try {
      const r = await ws.sv(['push', 'bad']);
      expect(r.exitCode).toBe(6);
      expect(oneLine(r.stderr)).toMatch(/vault is full: this snapshot needs about .* more .*prune/);
      expect(await leftovers(ws.dir)).toEqual([]);
    } finally {
      await rm(join(src, 'huge.bin'));
    }
    expectOk(await ws.sv(['push', 'bad']), 'push after freeing the source');
    const list = JSON.parse((await ws.sv(['list', 'bad', '--json'])).stdout);
    expect(list.every((s: { complete: boolean }) => s.complete)).toBe(true);
  });
});

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
