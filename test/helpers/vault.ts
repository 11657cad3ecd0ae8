import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expectOk, workspace, type CliResult, type Workspace } from './cli.js';
import { forceCleanup, leftovers } from './cleanup.js';
import { makeSourceTree, type SourceManifest } from './independent.js';
import { sleep } from './proc.js';
import { startSshd, type SshdFixture, type SshdOptions } from './sshd.js';

/**
 * One vault on a real sshd, with a source tree made by makeSourceTree: the
 * starting point of the restore, check, prune and key tests. Everything it
 * makes lives below `ws.dir`, `scratch` and the sshd's dir, which is what
 * cleanup and leftovers look at (other test files may run at the same time).
 */
export interface TestVault {
  name: string;
  sshd: SshdFixture;
  ws: Workspace;
  scratch: string;
  src: string;
  tree: SourceManifest;
  remoteDir: string;
  image: string;
  remote: string;
  /** What init printed. */
  init: CliResult;
  /** Runs a push and returns the new snapshot's name. */
  push(): Promise<string>;
  /** What this vault's runs left behind (mounts, loop devices, daemons): empty after every scenario. */
  leftovers(): Promise<string[]>;
  dispose(): Promise<void>;
}

/** `remoteDir`: serve this directory (the test's own, e.g. a small tmpfs) instead of one under the sshd's dir. */
export async function setupVault(name: string, opts: { size?: string; remoteDir?: string; sshd?: SshdOptions; /** ext4 unless given: most scenarios read the image from outside with debugfs. */ fs?: 'ext4' | 'ext2' | 'btrfs' } = {}): Promise<TestVault> {
  const sshd = await startSshd(opts.sshd);
  const ws = await workspace();
  const scratch = await mkdtemp(join(tmpdir(), `sshvault-${name}-`));
  const dispose = async () => {
    await forceCleanup(ws.dir);
    await forceCleanup(scratch);
    await sshd.stop();
    await ws.dispose();
    await rm(scratch, { recursive: true, force: true });
  };
  const src = join(scratch, 'src');
  const remoteDir = opts.remoteDir ?? sshd.remoteDir(name);
  const remote = `ssh://root@127.0.0.1:${sshd.port}${remoteDir}`;
  let tree: SourceManifest;
  let init: CliResult;
  try {
    tree = await makeSourceTree(src);
    init = await ws.sv([
      'init', name, '--remote', remote, '--size', opts.size ?? '256M', '--fs', opts.fs ?? 'ext4',
      '--identity', sshd.userKeyPath, '--known-hosts', sshd.knownHostsPath, '--passphrase-file', ws.passphraseFile, '--source', src,
    ]);
    expectOk(init, 'init');
  } catch (e) {
    await dispose();
    throw e;
  }
  let last = '';
  return {
    name,
    sshd,
    ws,
    scratch,
    src,
    tree,
    remoteDir,
    image: join(remoteDir, 'vault.img'),
    remote,
    init,
    async push() {
      // Snapshot names are to the second: two pushes in one second would make the later one wait anyway.
      const r = await ws.sv(['push', name, '--json']);
      expectOk(r, 'push');
      const snapshot = (JSON.parse(r.stdout) as { snapshot: string }).snapshot;
      if (snapshot === last) throw new Error(`push made no new snapshot (${snapshot})`);
      last = snapshot;
      await sleep(1100);
      return snapshot;
    },
    async leftovers() {
      return [...(await leftovers(ws.dir)), ...(await leftovers(scratch))];
    },
    dispose,
  };
}

export function jsonOf<T>(r: CliResult, what: string): T {
  expectOk(r, what);
  return JSON.parse(r.stdout) as T;
}

/**
 * Opens the image read-write outside sshvault, through qemu's LUKS driver
 * (the userspace engine's decryptor): `fn` gets the plaintext as a file.
 * How the tests damage or rearrange what is inside the encryption. Like
 * every writer it then replaces vault.generation, so no machine's block
 * cache outlives the change (README: Restore without sshvault).
 */
export async function withPlaintext<T>(image: string, passphrase: string, fn: (plain: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'sshvault-plain-'));
  const key = join(dir, 'key');
  await writeFile(key, passphrase, { mode: 0o600 });
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  const pidFile = join(dir, 'nbdfuse.pid');
  const fuse = execa('nbdfuse', ['-P', pidFile, join(mnt, 'plain.raw'), '[', 'qemu-nbd', '--object', `secret,id=sec0,file=${key}`, '--image-opts', `driver=luks,key-secret=sec0,file.filename=${image}`, ']'], { reject: false });
  try {
    const end = Date.now() + 30_000;
    while (!(await readFile(pidFile, 'utf8').catch(() => '')) && Date.now() < end) {
      if (fuse.exitCode !== null) throw new Error(`nbdfuse exited: ${String((await fuse).stderr)}`);
      await sleep(100);
    }
    return await fn(join(mnt, 'plain.raw'));
  } finally {
    await writeFile(join(dirname(image), 'vault.generation'), `${randomBytes(16).toString('hex')}\n`);
    await execa('fusermount3', ['-u', mnt], { reject: false });
    await Promise.race([fuse, sleep(10_000)]);
    await forceCleanup(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Mounts the plaintext read-write (a loop device over the nbdfuse file) for
 * `fn`. Like a writer that holds the key, it then advances the write counter
 * in `/.sshvault/sequence`: what it renamed or removed is a key holder's
 * change, not a host's rollback.
 */
export async function withMountedPlaintext<T>(image: string, passphrase: string, fn: (root: string) => Promise<T>): Promise<T> {
  return withPlaintext(image, passphrase, async (plain) => {
    // Beside the nbdfuse mount, in the directory withPlaintext cleans up.
    const root = join(dirname(dirname(plain)), 'root');
    await mkdir(root);
    await execa('mount', ['-o', 'loop', plain, root]);
    try {
      const result = await fn(root);
      const sequence = join(root, '.sshvault', 'sequence');
      const mark = JSON.parse(await readFile(sequence, 'utf8').catch(() => '{"counter":0}')) as { counter: number };
      await writeFile(sequence, JSON.stringify({ counter: mark.counter + 1, runId: 'withMountedPlaintext', at: new Date().toISOString() }) + '\n');
      return result;
    } finally {
      await execa('umount', [root]);
    }
  });
}
