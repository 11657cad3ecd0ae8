import { execa } from 'execa';
import { watch, type FSWatcher } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk } from '../helpers/cli.js';
import { decryptImage, debugfsLs } from '../helpers/independent.js';
import { setupVault, type TestVault } from '../helpers/vault.js';

/** Per-mount flags of a mountpoint, from the kernel's table (field 6 of mountinfo). */
async function mountFlags(target: string): Promise<string[]> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  const line = lines.filter((l) => l.split(' ')[4] === target).pop();
  if (!line) throw new Error(`${target} is not mounted`);
  return line.split(' ')[5]!.split(',');
}

/**
 * What sshvault leaves and trusts on this machine: key files, the private
 * state and cache directories, what a restore may touch outside the
 * snapshot, and the flags of mounts made for browsing.
 */
describe('local safety', () => {
  let v: TestVault;
  let snapshot: string;
  /** A source directory that holds the block cache, as a backup of / or of $HOME does. */
  let cacheHome: string;
  const stateDir = () => join(v.ws.env.XDG_STATE_HOME, 'sshvault', v.name);
  const runDir = () => join(stateDir(), 'run');
  const cacheDir = () => join(cacheHome, 'sshvault');

  beforeAll(async () => {
    v = await setupVault('lsafe');
    await mkdir(join(v.src, 'x'));
    await symlink('/etc', join(v.src, 'x', 'link'));
    await symlink('../..', join(v.src, 'x', 'rel'));
    cacheHome = v.ws.env.XDG_CACHE_HOME;
    await mkdir(cacheHome, { recursive: true });
    await writeFile(join(cacheHome, 'other.txt'), 'an ordinary cached file\n');
    const configFile = join(v.ws.env.XDG_CONFIG_HOME, 'sshvault', `${v.name}.json`);
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { sources: string[] };
    await writeFile(configFile, JSON.stringify({ ...config, sources: [...config.sources, cacheHome] }, null, 2));
    // The first push fills the block cache; the second finds it inside its source.
    await v.push();
    snapshot = await v.push();
  });

  afterAll(async () => {
    await v?.dispose();
  });

  it('never backs up the block cache, even when a source holds it', async () => {
    expect((await readdir(cacheDir())).length).toBeGreaterThan(0);
    const raw = join(v.scratch, 'plain.raw');
    await decryptImage(v.image, v.ws.passphrase, raw);
    try {
      const names = (await debugfsLs(raw, `/snapshots/${snapshot}${cacheHome}`)).map((e) => e.name);
      expect(names).toContain('other.txt');
      expect(names).not.toContain('sshvault');
    } finally {
      await rm(raw, { force: true });
    }
  });

  describe('restore stays inside the snapshot', () => {
    const dest = (name: string) => join(v.scratch, 'restored', name);

    beforeAll(async () => {
      await mkdir(join(v.scratch, 'restored'));
    });

    it('refuses a path through an absolute symlink and copies nothing', async () => {
      const out = dest('through-abs');
      const r = await v.ws.sv(['restore', v.name, `latest:${v.src}/x/link/passwd`, out]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toContain('crosses a symlink inside the snapshot');
      expect(r.stderr).toContain('/etc');
      await expect(lstat(out)).rejects.toThrow(/ENOENT/);
      expect(await v.leftovers()).toEqual([]);
    });

    it('refuses a path through a relative symlink', async () => {
      const out = dest('through-rel');
      const r = await v.ws.sv(['restore', v.name, `latest:${v.src}/x/rel/etc`, out]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toContain('crosses a symlink inside the snapshot');
      await expect(lstat(out)).rejects.toThrow(/ENOENT/);
    });

    it('refuses .. in the path', async () => {
      const r = await v.ws.sv(['restore', v.name, `latest:${v.src}/x/../x/link`, dest('dotdot')]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toContain('..');
    });

    it('restores a symlink as a symlink', async () => {
      const out = dest('the-link');
      expectOk(await v.ws.sv(['restore', v.name, `latest:${v.src}/x/link`, out]), 'restore a symlink');
      expect((await lstat(out)).isSymbolicLink()).toBe(true);
      expect(await readlink(out)).toBe('/etc');
    });
  });

  it('mounts for browsing read-only, nosuid and nodev, the bind mount included', async () => {
    const mp = join(v.ws.dir, 'browse');
    await mkdir(mp, { recursive: true });
    expectOk(await v.ws.sv(['mount', v.name, mp]), 'mount');
    try {
      for (const target of [mp, join(runDir(), 'fs')]) {
        expect(await mountFlags(target), target).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
      }
    } finally {
      expectOk(await v.ws.sv(['umount', v.name]), 'umount');
    }
    expect(await v.leftovers()).toEqual([]);
  });

  describe('key files', () => {
    it('no key file holding the passphrase ever appears during a push', async () => {
      const seen: string[] = [];
      const watcher: FSWatcher = watch(runDir(), (_event, name) => {
        if (!name?.startsWith('key-')) return;
        void lstat(join(runDir(), name)).then(
          (st) => {
            if (!st.isFIFO()) seen.push(`${name} (mode ${st.mode.toString(8)}, ${st.size} bytes)`);
          },
          () => undefined,
        );
      });
      try {
        await writeFile(join(v.src, 'x', 'new.txt'), 'changed\n');
        await v.push();
      } finally {
        watcher.close();
      }
      expect(seen).toEqual([]);
      expect((await readdir(runDir())).filter((n) => n.startsWith('key-'))).toEqual([]);
    });

    it('a key file a crash left in run/ is removed by recover and by the next command', async () => {
      await writeFile(join(runDir(), 'key-0123456789ab'), v.ws.passphrase, { mode: 0o600 });
      const rec = await v.ws.sv(['recover', v.name]);
      expectOk(rec, 'recover');
      expect(await readdir(runDir())).not.toContain('key-0123456789ab');

      await writeFile(join(runDir(), 'key-ba9876543210'), v.ws.passphrase, { mode: 0o600 });
      expectOk(await v.ws.sv(['list', v.name, '--refresh']), 'list --refresh');
      expect(await readdir(runDir())).not.toContain('key-ba9876543210');
    });
  });

  describe('state and cache directories', () => {
    it('refuses a state directory writable by group', async () => {
      await chmod(stateDir(), 0o770);
      try {
        const r = await v.ws.sv(['list', v.name]);
        expect(r.exitCode, r.stderr).toBe(2);
        expect(r.stderr).toContain(stateDir());
        expect(r.stderr).toContain('chmod');
      } finally {
        await chmod(stateDir(), 0o700);
      }
    });

    it('refuses a run directory owned by someone else', async () => {
      await execa('chown', ['1234', runDir()]);
      try {
        const r = await v.ws.sv(['recover', v.name]);
        expect(r.exitCode, r.stderr).toBe(2);
        expect(r.stderr).toContain(runDir());
      } finally {
        await execa('chown', ['0', runDir()]);
      }
    });

    it('refuses a cache directory that is a symlink, and does not follow it', async () => {
      const elsewhere = join(v.scratch, 'cache-elsewhere');
      await rename(cacheDir(), elsewhere);
      await symlink(elsewhere, cacheDir());
      try {
        const r = await v.ws.sv(['push', v.name]);
        expect(r.exitCode, r.stderr).toBe(2);
        expect(r.stderr).toContain(cacheDir());
        expect(r.stderr).toContain('symlink');
      } finally {
        await rm(cacheDir());
        await rename(elsewhere, cacheDir());
      }
      expect(await v.leftovers()).toEqual([]);
    });

    it('makes the directories it creates private', async () => {
      expect((await lstat(stateDir())).mode & 0o777).toBe(0o700);
      expect((await lstat(runDir())).mode & 0o777).toBe(0o700);
      expect((await lstat(cacheDir())).mode & 0o777).toBe(0o700);
    });
  });
});
