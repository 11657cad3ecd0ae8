import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup, leftovers } from '../helpers/cleanup.js';
import { startSshd, type SshdFixture } from '../helpers/sshd.js';

/**
 * What init and the runs after it create on the remote, on a server that
 * applies the modes clients send as they are (umask 000, as ProFTPD does)
 * and logs every create with the mode asked for.
 */
describe('remote files', () => {
  let sshd: SshdFixture;
  let ws: Workspace;
  let scratch: string;
  let src: string;

  beforeAll(async () => {
    // OpenSSH's sftp-server logs every create with the mode asked for (-l INFO -e, on stderr), into sftp.log.
    sshd = await startSshd({ sftpSubsystem: (dir) => `/usr/lib/openssh/sftp-server -e -l INFO -u 000 2>>${dir}/sftp.log` });
    ws = await workspace();
    scratch = await mkdtemp(join(tmpdir(), 'sshvault-remote-files-'));
    src = join(scratch, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'hello\n');
  });

  afterAll(async () => {
    if (ws) await forceCleanup(ws.dir);
    if (scratch) await forceCleanup(scratch);
    await sshd?.stop();
    await ws?.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  function initArgs(name: string, remoteDir: string): string[] {
    return [
      'init', name, '--remote', `ssh://root@127.0.0.1:${sshd.port}${remoteDir}`, '--size', '96M', '--fs', 'ext4',
      '--identity', sshd.userKeyPath, '--known-hosts', sshd.knownHostsPath, '--passphrase-file', ws.passphraseFile, '--source', src,
    ];
  }

  it('every file and directory is created private (0600, 0700), whatever the server umask', async () => {
    const remoteDir = join(sshd.dir, 'remote', 'modes', 'vault');
    expectOk(await ws.sv(initArgs('modes', remoteDir)), 'init');
    expectOk(await ws.sv(['push', 'modes']), 'push');
    expectOk(await ws.sv(['list', 'modes', '--refresh']), 'list');

    const mode = async (p: string) => (await stat(p)).mode & 0o777;
    expect(await mode(join(remoteDir, 'vault.img'))).toBe(0o600);
    expect(await mode(join(remoteDir, 'vault.generation'))).toBe(0o600);
    expect(await mode(remoteDir)).toBe(0o700);
    expect(await mode(join(sshd.dir, 'remote', 'modes'))).toBe(0o700);

    // The lock, its staging directory and the readers' files are gone after the runs: the server's log has what was asked for.
    const log = await readFile(join(sshd.dir, 'sftp.log'), 'utf8');
    const creates = [...log.matchAll(/open "([^"]+)" flags \S*CREATE\S* mode (0\d+)/g)].map((m) => ({ path: m[1], mode: m[2] }));
    const mkdirs = [...log.matchAll(/mkdir name "([^"]+)" mode (0\d+)/g)].map((m) => ({ path: m[1], mode: m[2] }));
    expect(creates.map((c) => c.path)).toEqual(expect.arrayContaining([expect.stringMatching(/owner\.json$/), expect.stringMatching(/vault\.readers\/.+\.json$/)]));
    expect(mkdirs.map((c) => c.path)).toEqual(expect.arrayContaining([expect.stringMatching(/vault\.lock\.[^/]+$/), expect.stringMatching(/vault\.readers$/)]));
    for (const c of creates) expect(c, c.path).toMatchObject({ mode: '0600' });
    for (const d of mkdirs) expect(d, d.path).toMatchObject({ mode: '0700' });
    expect(await leftovers(ws.dir)).toEqual([]);
  });

  it('a failed init leaves nothing behind, remote or local, and a retry works', async () => {
    const parent = join(sshd.dir, 'remote', 'failing');
    const remoteDir = join(parent, 'vault');
    // mkfs fails after the image exists, the header is formatted and the generation written.
    const shims = join(scratch, 'failing-mkfs');
    await mkdir(shims);
    await writeFile(join(shims, 'mkfs.ext4'), '#!/bin/sh\necho "mkfs.ext4: no space left (simulated)" >&2\nexit 1\n');
    await chmod(join(shims, 'mkfs.ext4'), 0o755);
    const failed = await ws.sv(initArgs('failing', remoteDir), { env: { PATH: `${shims}:${process.env.PATH}` } });
    expect(failed.exitCode, failed.stderr).not.toBe(0);
    expect(failed.stderr).toContain('simulated');

    expect(existsSync(parent)).toBe(false);
    const state = join(ws.env.XDG_STATE_HOME, 'sshvault', 'failing');
    expect(existsSync(join(state, 'luks-header.img'))).toBe(false);
    expect(existsSync(join(ws.env.XDG_CONFIG_HOME, 'sshvault', 'failing.json'))).toBe(false);
    expect(await leftovers(ws.dir)).toEqual([]);

    expectOk(await ws.sv(initArgs('failing', remoteDir)), 'init again');
    expect((await readdir(remoteDir)).sort()).toEqual(['vault.generation', 'vault.img']);
    expect(existsSync(join(state, 'luks-header.img'))).toBe(true);
  });

  it('a server that ignores the size set on a new file: init exits 2 naming it, and leaves nothing behind', async () => {
    const filter = resolve(import.meta.dirname, '../../fixtures/sftp-ignores-size.mjs');
    const bad = await startSshd({ sftpSubsystem: () => `${process.execPath} ${filter}` });
    try {
      const remoteDir = join(bad.dir, 'remote', 'sizeless');
      const r = await ws.sv([
        'init', 'sizeless', '--remote', `ssh://root@127.0.0.1:${bad.port}${remoteDir}`, '--size', '96M', '--fs', 'ext4',
        '--identity', bad.userKeyPath, '--known-hosts', bad.knownHostsPath, '--passphrase-file', ws.passphraseFile, '--source', src,
      ]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toContain('does not keep the size set on a new file');
      expect(existsSync(join(bad.dir, 'remote'))).toBe(false);
      expect(existsSync(join(ws.env.XDG_STATE_HOME, 'sshvault', 'sizeless', 'luks-header.img'))).toBe(false);
      expect(await leftovers(ws.dir)).toEqual([]);
    } finally {
      await bad.stop();
    }
  });
});
