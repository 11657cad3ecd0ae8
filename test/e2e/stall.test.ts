import { execa } from 'execa';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk } from '../helpers/cli.js';
import { compareTrees, decryptImage, rdump } from '../helpers/independent.js';
import { cmdline, processTable, signal, sleep } from '../helpers/proc.js';
import { setupVault, type TestVault } from '../helpers/vault.js';

// Short, but not so short that a loaded test machine's slow answers count as a stall.
const TIMEOUT_S = 30;

/**
 * A server that accepts the connection and then stops answering SFTP while
 * sshd itself goes on answering keepalives: the sftp subsystem is a copy of
 * OpenSSH's sftp-server in this test's own directory (so only its processes
 * are stopped), and the test stops it with SIGSTOP in the middle of a push.
 */
describe('a server that stops answering SFTP while keeping the TCP connection alive', () => {
  let bin: string;
  let sftpServer: string;
  let v: TestVault;
  let stopped: number[] = [];

  /** The sftp-server processes of this test's sshd, one per SFTP channel. */
  const ours = () => processTable().filter((p) => p.comm === 'sftp-server' && p.state !== 'Z' && cmdline(p.pid)[0] === sftpServer).map((p) => p.pid);

  beforeAll(async () => {
    bin = await mkdtemp(join(tmpdir(), 'sshvault-stallbin-'));
    sftpServer = join(bin, 'sftp-server');
    await copyFile('/usr/lib/openssh/sftp-server', sftpServer);
    await execa('chmod', ['755', sftpServer]);
    v = await setupVault('stall', { size: '128M', sshd: { sftpServer } });
    const configFile = join(v.ws.env.XDG_CONFIG_HOME, 'sshvault', 'stall.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    await writeFile(configFile, JSON.stringify({ ...config, requestTimeoutSeconds: TIMEOUT_S }, null, 2));
  });

  afterAll(async () => {
    signal(stopped, 'SIGCONT');
    await v?.dispose();
    if (bin) await rm(bin, { recursive: true, force: true });
  });

  it('exits 4 after the configured timeout, tears everything down, and the next push works', async () => {
    await v.push();
    await writeFile(join(v.src, 'after-the-stall.bin'), Buffer.alloc(8 << 20, 0x5a));
    const fsMount = join(v.ws.env.XDG_STATE_HOME, 'sshvault', 'stall', 'run', 'fs');
    const push = v.ws.sv(['push', 'stall'], { timeoutMs: 150_000 });
    // Stopped as soon as the vault's filesystem is mounted: every run writes after that.
    for (let i = 0; !(await readFile('/proc/self/mountinfo', 'utf8')).includes(` ${fsMount} `); i++) {
      if (i > 1200) throw new Error('the push never mounted the vault');
      await sleep(50);
    }
    stopped = ours();
    expect(stopped.length).toBeGreaterThan(0);
    signal(stopped, 'SIGSTOP');
    const r = await push;
    expect(r.exitCode, r.stderr).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`stopped answering for ${TIMEOUT_S} s`));
    expect(await v.leftovers()).toEqual([]);

    // The stopped servers hold requests of the dead run: they must be gone before another run writes.
    signal(stopped, 'SIGCONT');
    for (let i = 0; stopped.some((pid) => ours().includes(pid)); i++) {
      if (i > 600) throw new Error('the stalled sftp-server processes did not exit');
      await sleep(50);
    }
    const snapshot = await v.push();
    expect(await v.leftovers()).toEqual([]);

    const out = await mkdtemp(join(tmpdir(), 'sshvault-stallverify-'));
    try {
      const raw = join(out, 'plain.raw');
      await decryptImage(v.image, v.ws.passphrase, raw);
      const fsck = await execa('e2fsck', ['-fn', raw], { reject: false });
      expect(fsck.exitCode, fsck.stdout).toBe(0);
      await rdump(raw, `/snapshots/${snapshot}`, out);
      expect(await compareTrees(v.src, join(out, snapshot, v.src))).toEqual([]);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
