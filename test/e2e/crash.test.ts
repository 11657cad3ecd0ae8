import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForSync } from '../helpers/proc.js';
import { BIN, expectOk, workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup, leftovers } from '../helpers/cleanup.js';
import { decryptImage } from '../helpers/independent.js';
import { startSshd, type SshdFixture } from '../helpers/sshd.js';

/**
 * Signals, SIGKILL and two clients. The stack is always torn down,
 * by the run itself (SIGINT/SIGTERM/SIGHUP) or by the next command (SIGKILL),
 * and a push after that succeeds.
 */
describe('signals, crashes and concurrent clients', () => {
  let sshd: SshdFixture;
  let ws: Workspace;
  let scratch: string;
  let src: string;
  let remoteDir: string;

  beforeAll(async () => {
    sshd = await startSshd();
    ws = await workspace();
    scratch = await mkdtemp(join(tmpdir(), 'sshvault-crash-'));
    src = join(scratch, 'src');
    await mkdir(src);
    remoteDir = sshd.remoteDir('crash');
    expectOk(
      await ws.sv([
        'init', 'crash', '--remote', `ssh://root@127.0.0.1:${sshd.port}${remoteDir}`, '--size', '1G', '--fs', 'ext4',
        '--identity', sshd.userKeyPath, '--known-hosts', sshd.knownHostsPath, '--passphrase-file', ws.passphraseFile, '--source', src,
      ]),
      'init',
    );
  });

  afterAll(async () => {
    if (ws) await forceCleanup(ws.dir);
    await sshd?.stop();
    await ws?.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  let round = 0;
  /** New data large enough that the sync phase lasts a while. */
  async function bigChange(): Promise<void> {
    round++;
    await execa('sh', ['-c', `head -c 80M /dev/urandom > ${join(src, `data-${round}.bin`)}`]);
    if (round > 1) await rm(join(src, `data-${round - 1}.bin`));
  }

  async function listNames(): Promise<{ name: string; complete: boolean }[]> {
    return JSON.parse((await ws.sv(['list', 'crash', '--json', '--refresh'])).stdout);
  }

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    it(`${signal} during sync tears the stack down and exits ${code}; the next push completes`, async () => {
      await bigChange();
      const push = execa(BIN, ['push', 'crash'], { env: ws.env, reject: false });
      await waitForSync(ws.env.XDG_STATE_HOME);
      push.kill(signal);
      // A second SIGINT must not cut the teardown short.
      if (signal === 'SIGINT') setTimeout(() => push.kill('SIGINT'), 100);
      const r = await push;
      expect(r.exitCode, String(r.stderr)).toBe(code);
      expect(await leftovers(ws.dir)).toEqual([]);
      expectOk(await ws.sv(['push', 'crash']), 'push after the signal');
      const list = await listNames();
      expect(list.every((s) => s.complete)).toBe(true);
    });
  }

  it('SIGKILL during sync: the next command cleans up and says so, then a push succeeds', async () => {
    await bigChange();
    const push = execa(BIN, ['push', 'crash'], { env: ws.env, reject: false });
    await waitForSync(ws.env.XDG_STATE_HOME);
    push.kill('SIGKILL');
    await push;
    expect((await leftovers(ws.dir)).length).toBeGreaterThan(0);
    const rec = await ws.sv(['recover', 'crash']);
    expectOk(rec, 'recover');
    expect(rec.stdout).toMatch(/tore down .*(filesystem mount|qemu-nbd|loop device)/);
    expect(await leftovers(ws.dir)).toEqual([]);
    const next = await ws.sv(['push', 'crash']);
    expectOk(next, 'push after SIGKILL');
    expect(next.stderr).toMatch(/stale lock/);
    expect(next.stderr).toMatch(/e2fsck -f -y, with an undo file/);
    const list = await listNames();
    expect(list.every((s) => s.complete)).toBe(true);
  });

  it('SIGKILL, then a push: the push itself tears down the leftovers', async () => {
    await bigChange();
    const push = execa(BIN, ['push', 'crash'], { env: ws.env, reject: false });
    await waitForSync(ws.env.XDG_STATE_HOME);
    push.kill('SIGKILL');
    await push;
    const next = await ws.sv(['push', 'crash']);
    expectOk(next, 'push after SIGKILL');
    expect(next.stderr).toMatch(/Cleaned up after an interrupted run \(push, pid \d+/);
    expect(await leftovers(ws.dir)).toEqual([]);
  });

  /**
   * A second machine of the same name that knows the same vault: same config
   * and header backup, its own state, and its own machine id (test-only
   * SSHVAULT_TEST_MACHINE_ID_FILE; the first machine keeps /etc/machine-id).
   */
  async function secondMachine(): Promise<Workspace> {
    const other = await workspace(ws.passphrase);
    await mkdir(join(other.env.XDG_CONFIG_HOME, 'sshvault'), { recursive: true });
    await mkdir(join(other.env.XDG_STATE_HOME, 'sshvault', 'crash'), { recursive: true });
    const cfg = JSON.parse(await readFile(join(ws.env.XDG_CONFIG_HOME, 'sshvault', 'crash.json'), 'utf8'));
    cfg.passphraseFile = other.passphraseFile;
    await writeFile(join(other.env.XDG_CONFIG_HOME, 'sshvault', 'crash.json'), JSON.stringify(cfg));
    await copyFile(join(ws.env.XDG_STATE_HOME, 'sshvault', 'crash', 'luks-header.img'), join(other.env.XDG_STATE_HOME, 'sshvault', 'crash', 'luks-header.img'));
    const machineId = join(other.dir, 'machine-id');
    await writeFile(machineId, `${randomBytes(16).toString('hex')}\n`);
    other.env.SSHVAULT_TEST_MACHINE_ID_FILE = machineId;
    return other;
  }

  it('two clients push the same vault at once: one completes, the other exits 5, the filesystem checks clean', async () => {
    const other = await secondMachine();
    try {
      await bigChange();
      const [a, b] = await Promise.all([ws.sv(['push', 'crash']), other.sv(['push', 'crash'])]);
      expect([a.exitCode, b.exitCode].sort(), `${a.stderr}\n${b.stderr}`).toEqual([0, 5]);
      const loser = a.exitCode === 5 ? a : b;
      expect(loser.stderr).toMatch(/locked by push by pid \d+ on .*, started/);
      expect(await leftovers(ws.dir)).toEqual([]);
      expect(await leftovers(other.dir)).toEqual([]);
      const out = await mkdtemp(join(tmpdir(), 'sshvault-twofsck-'));
      try {
        await decryptImage(join(remoteDir, 'vault.img'), ws.passphrase, join(out, 'raw'));
        const fsck = await execa('e2fsck', ['-fn', join(out, 'raw')], { reject: false });
        expect(fsck.exitCode, fsck.stdout).toBe(0);
      } finally {
        await rm(out, { recursive: true, force: true });
      }
    } finally {
      await forceCleanup(other.dir);
      await other.dispose();
    }
  });

  it('a machine of the same name never breaks the lock of the other machine\'s killed run; that machine does', async () => {
    const other = await secondMachine();
    try {
      await bigChange();
      const push = execa(BIN, ['push', 'crash'], { env: other.env, reject: false });
      await waitForSync(other.env.XDG_STATE_HOME);
      push.kill('SIGKILL');
      await push;
      const here = await ws.sv(['push', 'crash']);
      expect(here.exitCode, here.stderr).toBe(5);
      expect(here.stderr).toContain(`locked by push by pid ${push.pid} on ${hostname()}, started`);
      expect(here.stderr).not.toMatch(/stale lock/);
      const there = await other.sv(['push', 'crash']);
      expectOk(there, 'push on the machine whose run was killed');
      expect(there.stderr).toMatch(/stale lock/);
      expect(await leftovers(other.dir)).toEqual([]);
      expectOk(await ws.sv(['push', 'crash']), 'push after the lock was released');
    } finally {
      await forceCleanup(other.dir);
      await other.dispose();
    }
  });

  /** A pid that names no process: one that ran and was reaped. */
  async function deadPid(): Promise<number> {
    const p = execa('true');
    await p;
    return p.pid!;
  }

  async function vaultId(): Promise<string> {
    return JSON.parse(await readFile(join(ws.env.XDG_CONFIG_HOME, 'sshvault', 'crash.json'), 'utf8')).vaultId;
  }

  it("a lock naming this host with a dead pid but without this machine's identity.", async () => {
    const pid = await deadPid();
    const owner = { host: hostname(), pid, vaultId: await vaultId(), started: '2026-01-01T00:00:00.000Z', runId: 'from-elsewhere', command: 'push' };
    const lock = join(remoteDir, 'vault.lock');
    const reader = join(remoteDir, 'vault.readers', 'from-elsewhere.json');
    try {
      // An older sshvault's lock, or another machine's: no identity, or one that is not ours.
      for (const identity of [{}, { machine: 'f'.repeat(64), boot: 'e'.repeat(64), pidStart: 1 }]) {
        await mkdir(lock, { recursive: true });
        await writeFile(join(lock, 'owner.json'), JSON.stringify({ ...owner, ...identity }));
        const r = await ws.sv(['push', 'crash']);
        expect(r.exitCode, r.stderr).toBe(5);
        expect(r.stderr).toContain(`locked by push by pid ${pid} on ${hostname()}, started 2026-01-01T00:00:00.000Z`);
        expect(JSON.parse(await readFile(join(lock, 'owner.json'), 'utf8')).runId).toBe('from-elsewhere');
        await rm(lock, { recursive: true });

        await mkdir(join(remoteDir, 'vault.readers'), { recursive: true });
        await writeFile(reader, JSON.stringify({ ...owner, ...identity, command: 'mount' }));
        const w = await ws.sv(['push', 'crash']);
        expect(w.exitCode, w.stderr).toBe(5);
        expect(w.stderr).toContain(`being read (mount by pid ${pid} on ${hostname()}`);
        expect(await readFile(reader, 'utf8')).toContain('from-elsewhere');
        expect(await readdir(remoteDir)).not.toContain('vault.lock');
        await rm(reader);
      }
      expect(await leftovers(ws.dir)).toEqual([]);
    } finally {
      await rm(lock, { recursive: true, force: true });
      await rm(reader, { force: true });
    }
  });

  it('what the remote writes into a lock reaches the terminal without control characters', async () => {
    const lock = join(remoteDir, 'vault.lock');
    try {
      await mkdir(lock);
      const owner = { host: 'evil\x1b]0;owned\x07host', pid: 1, started: 'now\r\x1b[2K\x1b[1A', runId: 'x', command: 'push\u202e\u009b31m', vaultId: 'x' };
      await writeFile(join(lock, 'owner.json'), JSON.stringify(owner));
      const r = await ws.sv(['push', 'crash']);
      expect(r.exitCode, r.stderr).toBe(5);
      expect(r.stderr).toContain('locked by push31m by pid 1 on evilhost, started now');
      expect(r.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/);
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  });

  it('lock staging directories of runs cut off are swept, and one that cannot be does not fail the push', async () => {
    // Cut off after its mkdir: empty. Cut off after owner.json, or racing the sweep: more than that.
    await mkdir(join(remoteDir, 'vault.lock.cut-off'));
    await mkdir(join(remoteDir, 'vault.lock.racing'));
    await writeFile(join(remoteDir, 'vault.lock.racing', 'owner.json'), '{}\n');
    await writeFile(join(remoteDir, 'vault.lock.racing', 'written-meanwhile'), '');
    await bigChange();
    expectOk(await ws.sv(['push', 'crash']), 'push with staging leftovers');
    const left = (await readdir(remoteDir)).filter((n) => n.startsWith('vault.lock'));
    expect(left).toEqual(['vault.lock.racing']);
    await rm(join(remoteDir, 'vault.lock.racing'), { recursive: true });
  });
});
