import { execa } from 'execa';
import { copyFile, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup, leftovers } from '../helpers/cleanup.js';
import { churnSourceTree, compareTrees } from '../helpers/independent.js';
import { setupVault, type TestVault } from '../helpers/vault.js';

const DOC = resolve(import.meta.dirname, '../../README.md');

/** The doc's shell blocks by the name in the `<!-- readme-test: NAME -->` line above each. */
async function docBlocks(): Promise<Map<string, string>> {
  const text = await readFile(DOC, 'utf8');
  const blocks = new Map<string, string>();
  for (const m of text.matchAll(/<!-- readme-test: ([\w-]+) -->\n```sh\n([\s\S]*?)```/g)) blocks.set(m[1]!, m[2]!);
  return blocks;
}

/**
 * The "Restore without sshvault" commands for a machine without
 * device-mapper, run as written (only the block that says where the vault is
 * is this test's own), then the result compared with the source.
 */
describe("README: 'Restore without sshvault', without device-mapper", () => {
  restoreScenarios('ext4');
});

/**
 * The same on a btrfs vault: the ext steps as written, and `btrfs restore`
 * from a plaintext copy, without mounting anything.
 */
describe("README: 'Restore without sshvault', a btrfs vault", () => {
  restoreScenarios('btrfs');
});

function restoreScenarios(fs: 'ext4' | 'btrfs'): void {
  let v: TestVault;
  let blocks: Map<string, string>;
  let work: string;
  let headerBackup: string;

  beforeAll(async () => {
    v = await setupVault(fs === 'btrfs' ? 'docb' : 'doc', { fs });
    await v.push();
    await churnSourceTree(v.src);
    await v.push();
    blocks = await docBlocks();
    work = await mkdtemp(join(tmpdir(), 'sshvault-doc-'));
    // As the doc says: a copy of the header backup, kept off the machine.
    headerBackup = join(work, 'luks-header.img');
    await copyFile(join(v.ws.env.XDG_STATE_HOME, 'sshvault', v.name, 'luks-header.img'), headerBackup);
  });

  afterAll(async () => {
    if (work) await forceCleanup(work);
    await v?.dispose();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** This test's answers to the doc's settings (its `vars` and `header-var` blocks); every other line comes from the doc. */
  function vars(name: string, remoteDir: string): string {
    const sshfsOpts = `-p ${v.sshd.port} -o IdentityFile=${v.sshd.userKeyPath} -o UserKnownHostsFile=${v.sshd.knownHostsPath} -o BatchMode=yes`;
    return [
      `REMOTE=root@127.0.0.1:${remoteDir}`,
      `SSHFS_OPTS="${sshfsOpts}"`,
      `FROM=${v.src}`,
      `DEST=${join(work, name, 'dest')}`,
      `WORK=${join(work, name, 'work')}`,
      `HEADER=${headerBackup}`,
      '',
    ].join('\n');
  }

  async function runDoc(name: string, steps: string[], remoteDir = v.remoteDir): Promise<void> {
    const script = [vars(name, remoteDir), ...steps.map((s) => {
      const block = blocks.get(s);
      if (block === undefined) throw new Error(`the doc has no block marked readme-test: ${s}`);
      return block;
    })].join('\n');
    await mkdir(join(work, name), { recursive: true });
    // The passphrase is typed at the doc's `read` prompt: here it comes on stdin.
    const r = await execa('bash', ['-euo', 'pipefail', '-c', script], { input: `${v.ws.passphrase}\n`, reject: false, timeout: 300_000, cwd: join(work, name) });
    if (r.exitCode !== 0) {
      // What the commands mounted before failing must not fail the next scenario too.
      await forceCleanup(join(work, name));
      throw new Error(`the doc's commands failed (${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
    }
  }

  if (fs === 'btrfs') {
    it('qemu-nbd and nbdfuse, mounted as the ext steps say: the newest snapshot comes back equal to the source', async () => {
      await runDoc('nbdfuse', ['reach', 'key', 'nbdfuse', 'copy', 'unmount-nbdfuse']);
      expect(await compareTrees(v.src, join(work, 'nbdfuse', 'dest'), { xattrs: true })).toEqual([]);
      expect(await leftovers(work)).toEqual([]);
    });

    it('btrfs restore, without mounting: the same, but for hard links', async () => {
      await runDoc('btrfs-restore', ['reach', 'key', 'btrfs-restore']);
      const diffs = await compareTrees(v.src, join(work, 'btrfs-restore', 'dest'), { xattrs: true });
      expect(diffs.filter((d) => !/^hard\/\S+: hard-linked with/.test(d))).toEqual([]);
      expect(diffs.length).toBeGreaterThan(0);
      expect(await leftovers(work)).toEqual([]);
    });
    return;
  }

  it('marks every block this test runs', () => {
    for (const b of ['vars', 'reach', 'key', 'nbdfuse', 'convert', 'copy', 'verify', 'unmount-nbdfuse', 'unmount-convert', 'header-var', 'header-nbdfuse', 'header-repair']) {
      expect(blocks.has(b), b).toBe(true);
    }
  });

  it('qemu-nbd and nbdfuse: the newest snapshot comes back equal to the source, and matches its manifest', async () => {
    await runDoc('nbdfuse', ['reach', 'key', 'nbdfuse', 'copy', 'verify', 'unmount-nbdfuse']);
    expect(await compareTrees(v.src, join(work, 'nbdfuse', 'dest'), { xattrs: true })).toEqual([]);
    expect(await leftovers(work)).toEqual([]);
    expect(await v.leftovers()).toEqual([]);
  });

  it('qemu-img convert: the same, from a local plaintext copy', async () => {
    await runDoc('convert', ['reach', 'key', 'convert', 'copy', 'unmount-convert']);
    expect(await compareTrees(v.src, join(work, 'convert', 'dest'), { xattrs: true })).toEqual([]);
    expect(await leftovers(work)).toEqual([]);
  });

  describe('with a damaged LUKS header', () => {
    let damaged: string;
    let fresh: Workspace;

    beforeAll(async () => {
      // A second copy of the vault on the host, its first sector (the LUKS magic and key digest) wiped.
      damaged = v.sshd.remoteDir('doc-damaged');
      await execa('cp', ['--sparse=always', v.image, join(damaged, 'vault.img')]);
      const fh = await open(join(damaged, 'vault.img'), 'r+');
      await fh.write(Buffer.alloc(512), 0, 512, 0);
      await fh.close();
      fresh = await workspace(v.ws.passphrase);
    });

    afterAll(async () => {
      if (fresh) await forceCleanup(fresh.dir);
      await fresh?.dispose();
    });

    const restoreFlags = () => ['--remote', `ssh://root@127.0.0.1:${v.sshd.port}${damaged}`, '--identity', v.sshd.userKeyPath, '--known-hosts', v.sshd.knownHostsPath, '--passphrase-file', v.ws.passphraseFile];

    it('sshvault refuses the image and points at the doc', async () => {
      const r = await fresh.sv(['restore', ...restoreFlags(), 'latest', join(work, 'refused')]);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain('Restore without sshvault');
    });

    it('the header backup reads it through a local overlay, leaving the remote image as it is', async () => {
      const before = await readFile(join(damaged, 'vault.img'));
      await runDoc('header', ['reach', 'key', 'header-nbdfuse', 'copy', 'verify', 'unmount-nbdfuse'], damaged);
      expect(await compareTrees(v.src, join(work, 'header', 'dest'), { xattrs: true })).toEqual([]);
      expect((await readFile(join(damaged, 'vault.img'))).equals(before)).toBe(true);
      expect(await leftovers(work)).toEqual([]);
    });

    it('luksHeaderRestore repairs the image, and sshvault restores from it again', async () => {
      await runDoc('repair', ['header-repair'], damaged);
      const out = join(work, 'repaired');
      expectOk(await fresh.sv(['restore', ...restoreFlags(), 'latest', out]), 'restore after the repair');
      expect(await compareTrees(v.src, join(out, v.src), { xattrs: true })).toEqual([]);
      expect(await leftovers(work)).toEqual([]);
      expect(await leftovers(fresh.dir)).toEqual([]);
    });
  });
}
