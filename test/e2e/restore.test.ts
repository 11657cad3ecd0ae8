import { execa } from 'execa';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup } from '../helpers/cleanup.js';
import { churnSourceTree, compareTrees } from '../helpers/independent.js';
import { processTable } from '../helpers/proc.js';
import { jsonOf, setupVault, type TestVault } from '../helpers/vault.js';

interface RunJson {
  command: string;
  ok: boolean;
  upBytes: number;
  downBytes: number;
  phases: { name: string; upBytes: number; downBytes: number }[];
}

/**
 * Restore from a machine that has nothing but the passphrase and an
 * SSH key, and mount for browsing. What comes back is judged against the
 * source with compareTrees (content, modes, owners, hard links, symlinks,
 * mtimes, xattrs).
 */
describe('restore and mount', () => {
  let v: TestVault;
  /** A machine with an empty state directory: the laptop is gone. */
  let fresh: Workspace;
  let older: string;
  let newer: string;
  let v1: string;

  beforeAll(async () => {
    v = await setupVault('rest');
    older = await v.push();
    v1 = join(v.scratch, 'src-v1');
    // What the first snapshot must give back, with hard links, owners and xattrs.
    await execa('cp', ['-a', v.src, v1]);
    await churnSourceTree(v.src);
    newer = await v.push();
    fresh = await workspace(v.ws.passphrase);
  });

  afterAll(async () => {
    if (fresh) await forceCleanup(fresh.dir);
    await fresh?.dispose();
    await v?.dispose();
  });

  const fromFlags = () => ['--remote', v.remote, '--identity', v.sshd.userKeyPath, '--known-hosts', v.sshd.knownHostsPath, '--passphrase-file', v.ws.passphraseFile];
  const dest = (name: string) => join(v.scratch, 'restored', name);

  it('restores the whole newest snapshot on a machine with an empty state directory', async () => {
    expect(await readdir(fresh.env.XDG_STATE_HOME).catch(() => [])).toEqual([]);
    const out = dest('whole-newest');
    const r = jsonOf<{ snapshot: string; files: number; bytes: number; run: RunJson }>(await fresh.sv(['restore', ...fromFlags(), 'latest', out, '--json']), 'restore');
    expect(r.snapshot).toBe(newer);
    expect(await compareTrees(v.src, join(out, v.src), { xattrs: true })).toEqual([]);
    expect(r.run.phases.map((p) => p.name)).toEqual(['connect', 'open', 'restore', 'close']);
    // Ciphertext comes down 1:1, so restoring costs at least what was restored.
    expect(r.run.downBytes).toBeGreaterThan(r.bytes);
    expect(r.run.phases.find((p) => p.name === 'restore')!.downBytes).toBeGreaterThan(v.tree.regularBytes * 0.9);
    // Nothing of this vault was saved on the fresh machine.
    expect(await readdir(fresh.env.XDG_CONFIG_HOME).catch(() => [])).toEqual([]);
    expect(await readdir(fresh.env.XDG_CACHE_HOME).catch(() => [])).toEqual([]);
    expect(await v.leftovers()).toEqual([]);
    expect(await readdir(join(v.remoteDir, 'vault.readers'))).toEqual([]);
  });

  it('restores the whole older snapshot, as it was before the churn', async () => {
    const out = dest('whole-older');
    expectOk(await fresh.sv(['restore', ...fromFlags(), older, out]), 'restore');
    expect(await compareTrees(v1, join(out, v.src), { xattrs: true })).toEqual([]);
  });

  it('restores one directory from the older snapshot and one from the newest', async () => {
    const a = dest('docs-older');
    const r = await fresh.sv(['restore', ...fromFlags(), `${older}:${v.src}/hard`, a]);
    expectOk(r, 'restore');
    expect(r.stdout).toMatch(/Downloaded [\d.]+ \w+/);
    expect(await compareTrees(join(v1, 'hard'), a, { xattrs: true })).toEqual([]);
    const b = dest('data-newest');
    expectOk(await fresh.sv(['restore', ...fromFlags(), `latest:${v.src}/data`, b]), 'restore');
    expect(await compareTrees(join(v.src, 'data'), b, { xattrs: true })).toEqual([]);
  });

  it('restores one file, into a directory or as a new name', async () => {
    const dir = dest('one-file');
    await mkdir(dir, { recursive: true });
    expectOk(await fresh.sv(['restore', ...fromFlags(), `latest:${v.src}/owned/uid1234-gid2345.txt`, dir]), 'restore');
    expect(await compareTrees(join(v.src, 'owned'), dir)).toEqual([]);
    const named = join(dir, 'renamed.md');
    expectOk(await fresh.sv(['restore', ...fromFlags(), `${older}:${v.src}/docs/guide.md`, named]), 'restore');
    expect(await readFile(named)).toEqual(await readFile(join(v1, 'docs/guide.md')));
    expect(await readFile(named)).not.toEqual(await readFile(join(v.src, 'docs/guide.md')));
  });

  it('refuses to overwrite without --force, and names what is missing', async () => {
    const busy = dest('busy');
    await mkdir(busy, { recursive: true });
    await writeFile(join(busy, 'mine.txt'), 'do not lose me');
    const refused = await fresh.sv(['restore', ...fromFlags(), 'latest', busy]);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain('--force');
    const dir = await fresh.sv(['restore', ...fromFlags(), `latest:${v.src}/docs`, busy]);
    expect(dir.exitCode).toBe(2);
    expect(await readdir(busy)).toEqual(['mine.txt']);

    expectOk(await fresh.sv(['restore', ...fromFlags(), `latest:${v.src}/docs`, busy, '--force']), 'restore --force');
    expect(await readFile(join(busy, 'mine.txt'), 'utf8')).toBe('do not lose me');
    expect(await readFile(join(busy, 'readme.txt'))).toEqual(await readFile(join(v.src, 'docs/readme.txt')));

    const noSnap = await fresh.sv(['restore', ...fromFlags(), '2001-01-01T000000Z', dest('x')]);
    expect(noSnap.exitCode).toBe(2);
    expect(noSnap.stderr).toContain("no snapshot '2001-01-01T000000Z'");
    const noPath = await fresh.sv(['restore', ...fromFlags(), `latest:${v.src}/no/such`, dest('y')]);
    expect(noPath.exitCode).toBe(2);
    expect(noPath.stderr).toContain('is not in snapshot');
    const wrong = await fresh.sv(['restore', '--remote', v.remote, '--identity', v.sshd.userKeyPath, '--known-hosts', v.sshd.knownHostsPath, 'latest', dest('z')], {
      env: { SSHVAULT_PASSPHRASE: 'not the passphrase' },
    });
    expect(wrong.exitCode, wrong.stderr).toBe(3);
    expect(await v.leftovers()).toEqual([]);
  });

  it('restores with the vault configured too (the usual case)', async () => {
    const out = dest('configured');
    expectOk(await v.ws.sv(['restore', v.name, `latest:${v.src}/docs`, out]), 'restore');
    expect(await compareTrees(join(v.src, 'docs'), out, { xattrs: true })).toEqual([]);
  });

  describe('mount', () => {
    const mp = () => join(v.ws.dir, 'browse');

    it('shows every snapshot read-only and stays up after the command returns', async () => {
      await mkdir(mp(), { recursive: true });
      const r = await v.ws.sv(['mount', v.name, mp()]);
      expectOk(r, 'mount');
      expect(r.stdout).toContain('read-only');
      expect((await readdir(mp())).sort()).toEqual([older, newer]);
      expect(await compareTrees(v.src, join(mp(), newer, v.src), { xattrs: true })).toEqual([]);
      expect(await compareTrees(v1, join(mp(), older, v.src), { xattrs: true })).toEqual([]);
      const write = await execa('touch', [join(mp(), newer, 'new-file')], { reject: false });
      expect(write.exitCode).not.toBe(0);
      expect(write.stderr).toMatch(/Read-only file system/);
      // The process that owns the stack is the background sshvault, not the command that started it.
      const record = JSON.parse(await readFile(join(v.ws.env.XDG_STATE_HOME, 'sshvault', v.name, 'mount.json'), 'utf8')) as { pid: number };
      expect(processTable().find((p) => p.pid === record.pid)?.state).not.toBe('Z');
      expect(processTable().some((p) => p.ppid === record.pid && p.comm === 'sshfs')).toBe(true);
    });

    it('is a shared read lock: a push here or from another client exits 5, a reader gets in', async () => {
      const here = await v.ws.sv(['push', v.name]);
      expect(here.exitCode).toBe(5);
      expect(here.stderr).toContain(`is mounted at ${mp()}`);
      expect(here.stderr).toContain('sshvault umount');

      // Another machine: the same config, its own state.
      const other = await workspace(v.ws.passphrase);
      try {
        await cp(v.ws.env.XDG_CONFIG_HOME, other.env.XDG_CONFIG_HOME, { recursive: true });
        const push = await other.sv(['push', v.name]);
        expect(push.exitCode).toBe(5);
        expect(push.stderr).toContain('the vault is being read (mount by pid');
        const restore = await other.sv(['restore', v.name, `latest:${v.src}/docs`, join(other.dir, 'docs')]);
        expectOk(restore, 'restore while mounted elsewhere');
        expect(await compareTrees(join(v.src, 'docs'), join(other.dir, 'docs'))).toEqual([]);
      } finally {
        await forceCleanup(other.dir);
        await other.dispose();
      }
    });

    it('refuses to unmount while in use, then unmounts and records the traffic', async () => {
      const shell = execa('sleep', ['60'], { cwd: join(mp(), newer), reject: false });
      try {
        await new Promise((r) => setTimeout(r, 200));
        const busy = await v.ws.sv(['umount', v.name]);
        expect(busy.exitCode).toBe(2);
        expect(busy.stderr).toContain('in use by sleep');
      } finally {
        shell.kill('SIGKILL');
        await shell;
      }
      const r = await v.ws.sv(['umount', v.name]);
      expectOk(r, 'umount');
      expect(await readdir(mp())).toEqual([]);
      expect(await v.leftovers()).toEqual([]);
      expect(await readdir(join(v.remoteDir, 'vault.readers'))).toEqual([]);
      const stats = jsonOf<{ runs: RunJson[] }>(await v.ws.sv(['stats', v.name, '--json']), 'stats');
      const mount = stats.runs.filter((x) => x.command === 'mount').pop()!;
      expect(mount.ok).toBe(true);
      expect(mount.phases.map((p) => p.name)).toEqual(['connect', 'open', 'mount', 'close']);
      // This machine pushed the trees read above: they came from the block cache, not over the wire.
      expect(mount.phases[2]!.downBytes).toBeLessThan(v.tree.regularBytes / 10);
      expectOk(await v.ws.sv(['push', v.name]), 'push after umount');
    });

    it('mounts one snapshot; a killed mount is cleaned up by the next command', async () => {
      await mkdir(mp(), { recursive: true });
      expectOk(await v.ws.sv(['mount', v.name, older, mp()]), 'mount one');
      expect(await readFile(join(mp(), v.src, 'docs/guide.md'))).toEqual(await readFile(join(v1, 'docs/guide.md')));
      const record = JSON.parse(await readFile(join(v.ws.env.XDG_STATE_HOME, 'sshvault', v.name, 'mount.json'), 'utf8')) as { pid: number };
      process.kill(record.pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 300));
      const r = await v.ws.sv(['umount', v.name]);
      expectOk(r, 'umount after kill');
      expect(r.stdout).toContain('had died');
      expect(await v.leftovers()).toEqual([]);
      expect(await readdir(mp())).toEqual([]);
      expectOk(await v.ws.sv(['list', v.name, '--refresh']), 'list after a killed mount');
      expect(await v.leftovers()).toEqual([]);

      // The same, cleaned up by 'recover'.
      expectOk(await v.ws.sv(['mount', v.name, mp()]), 'mount again');
      const again = JSON.parse(await readFile(join(v.ws.env.XDG_STATE_HOME, 'sshvault', v.name, 'mount.json'), 'utf8')) as { pid: number };
      process.kill(again.pid, 'SIGKILL');
      // Until init reaps it, its run lock still counts as held.
      while (processTable().some((p) => p.pid === again.pid)) await new Promise((r) => setTimeout(r, 100));
      const rec = await v.ws.sv(['recover', v.name]);
      expectOk(rec, 'recover after a killed mount');
      expect(rec.stdout).toContain(`snapshot mount ${mp()}`);
      expect(await v.leftovers()).toEqual([]);
      expect(await readdir(mp())).toEqual([]);
    });

    it('a reader that died on another host holds pushes off until unlock --force', async () => {
      const ghost = { host: 'elsewhere', pid: 4242, vaultId: 'x', started: '2026-01-01T00:00:00.000Z', runId: 'ghost', command: 'mount' };
      await writeFile(join(v.remoteDir, 'vault.readers', 'ghost.json'), JSON.stringify(ghost));
      const held = await v.ws.sv(['push', v.name]);
      expect(held.exitCode).toBe(5);
      expect(held.stderr).toContain('mount by pid 4242 on elsewhere');
      expect(held.stderr).toContain('unlock --force');
      const r = await v.ws.sv(['unlock', v.name, '--force']);
      expectOk(r, 'unlock --force');
      expect(r.stdout).toContain('Broke the read lock');
      expectOk(await v.ws.sv(['push', v.name]), 'push after unlock');
      expect(await readdir(join(v.remoteDir, 'vault.readers'))).toEqual([]);
    });
  });
});

describe('restore --remote of a btrfs vault', () => {
  let v: TestVault;
  let fresh: Workspace;

  beforeAll(async () => {
    v = await setupVault('restbtrfs', { fs: 'btrfs' });
    await v.push();
    fresh = await workspace(v.ws.passphrase);
  });

  afterAll(async () => {
    if (fresh) await forceCleanup(fresh.dir);
    await fresh?.dispose();
    await v?.dispose();
  });

  it('finds the filesystem on the image: the machine that knew it is gone', async () => {
    const out = join(v.scratch, 'restored');
    const r = await fresh.sv(['restore', '--remote', v.remote, '--identity', v.sshd.userKeyPath, '--known-hosts', v.sshd.knownHostsPath, '--passphrase-file', v.ws.passphraseFile, 'latest', out]);
    expectOk(r, 'restore --remote');
    expect(await compareTrees(v.src, join(out, v.src), { xattrs: true })).toEqual([]);
    expect(await v.leftovers()).toEqual([]);
  });
});
