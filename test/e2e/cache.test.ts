import { randomBytes } from 'node:crypto';
import { cp, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup } from '../helpers/cleanup.js';
import { churnSourceTree, compareTrees } from '../helpers/independent.js';
import { sleep } from '../helpers/proc.js';
import { jsonOf, setupVault, type TestVault } from '../helpers/vault.js';

interface RunJson {
  command: string;
  ok: boolean;
  downBytes: number;
  changedBytes?: number;
  cache?: { hitBytes: number; missBytes: number };
  phases: { name: string; upBytes: number; downBytes: number }[];
}

const phase = (run: RunJson, name: string) => run.phases.find((p) => p.name === name)!;

let round = 0;
/** A change that can be made again and again (churnSourceTree deletes fixed files, so only once). */
async function change(src: string): Promise<void> {
  round++;
  await writeFile(join(src, `changed-${round}.bin`), randomBytes(256 * 1024));
  await writeFile(join(src, 'docs', 'round.txt'), `round ${round}\n`);
}

/**
 * The block cache makes a push from the machine that pushed last
 * download next to nothing, and a write from anywhere else (another machine,
 * a tool outside sshvault) must never be hidden by it.
 */
describe('block cache', () => {
  let v: TestVault;
  let other: Workspace | undefined;

  beforeAll(async () => {
    v = await setupVault('cch');
    await v.push();
  });

  afterAll(async () => {
    if (other) {
      await forceCleanup(other.dir);
      await other.dispose();
    }
    await v?.dispose();
  });

  async function lastPush(ws: Workspace): Promise<RunJson> {
    return jsonOf<{ runs: RunJson[] }>(await ws.sv(['stats', v.name, '--json']), 'stats')
      .runs.filter((r) => r.command === 'push')
      .pop()!;
  }
  const cacheGeneration = async (ws: Workspace) =>
    (JSON.parse(await readFile(join(ws.env.XDG_CACHE_HOME!, 'sshvault', v.name, 'blocks', 'state.json'), 'utf8')) as { generation: string | null }).generation;
  const remoteGeneration = async () => (await readFile(join(v.remoteDir, 'vault.generation'), 'utf8')).trim();

  it('a push after a push from this machine downloads less than a tenth of what changed', async () => {
    await churnSourceTree(v.src);
    await v.push();
    const run = await lastPush(v.ws);
    expect(run.ok).toBe(true);
    expect(run.changedBytes).toBeGreaterThan(0);
    expect(phase(run, 'sync').downBytes).toBeLessThan(0.1 * run.changedBytes!);
    // The LUKS key material, 250 KB read at every open, comes from the cache as well.
    expect(phase(run, 'open').downBytes).toBeLessThan(16 * 1024);
    expect(await cacheGeneration(v.ws)).toBe(await remoteGeneration());
    // The run record says so: the filesystem's reads were answered here.
    expect(run.cache!.hitBytes).toBeGreaterThan(run.cache!.missBytes);
    expect(await v.leftovers()).toEqual([]);
  });

  it('a push from another machine empties this cache, and the next push here is still right', async () => {
    other = await workspace(v.ws.passphrase);
    await cp(v.ws.env.XDG_CONFIG_HOME!, other.env.XDG_CONFIG_HOME!, { recursive: true });
    await writeFile(join(v.src, 'from-other.txt'), 'pushed by the other machine\n');
    expectOk(await other.sv(['push', v.name, '--trust-remote-header']), 'push from the other machine');
    await sleep(1100);
    expect(await cacheGeneration(v.ws)).not.toBe(await remoteGeneration());

    await change(v.src);
    const snapshot = await v.push();
    const run = await lastPush(v.ws);
    // Started empty: what the filesystem read came over the wire again.
    expect(run.cache!.missBytes).toBeGreaterThan(0);
    expectOk(await v.ws.sv(['check', v.name]), 'check');
    const out = join(v.scratch, 'restored');
    expectOk(await v.ws.sv(['restore', v.name, snapshot, out]), 'restore');
    expect(await compareTrees(v.src, join(out, v.src), { xattrs: true })).toEqual([]);
    expect(await v.leftovers()).toEqual([]);
  });

  it('check reads the image from the remote, and leaves the cache as the push left it', async () => {
    const blocks = join(v.ws.env.XDG_CACHE_HOME!, 'sshvault', v.name, 'blocks');
    const before = await Promise.all(['state.json', 'map'].map((f) => readFile(join(blocks, f))));
    const r = jsonOf<{ run: RunJson }>(await v.ws.sv(['check', v.name, '--json']), 'check');
    expect(phase(r.run, 'fsck').downBytes).toBeGreaterThan(256 * 1024);
    const after = await Promise.all(['state.json', 'map'].map((f) => readFile(join(blocks, f))));
    expect(after.map((b, i) => b.equals(before[i]!))).toEqual([true, true]);
    await change(v.src);
    await v.push();
    const run = await lastPush(v.ws);
    expect(run.cache!.hitBytes).toBeGreaterThan(0);
    expect(phase(run, 'sync').downBytes).toBeLessThan(0.1 * run.changedBytes! + 256 * 1024);
  });

  it('a cache directory that cannot be used costs a notice, not the backup', async () => {
    const notADir = join(v.scratch, 'cache-is-a-file');
    await writeFile(notADir, 'not a directory\n');
    await change(v.src);
    const r = await v.ws.sv(['push', v.name], { env: { XDG_CACHE_HOME: notADir } });
    expectOk(r, 'push with an unusable cache');
    expect(r.stderr).toMatch(/block cache in .* cannot be used/);
    expect(await v.leftovers()).toEqual([]);
    await sleep(1100);
  });

  it("cacheBytes 0 in the vault's config turns the cache off", async () => {
    const file = join(v.ws.env.XDG_CONFIG_HOME!, 'sshvault', `${v.name}.json`);
    const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    await writeFile(file, JSON.stringify({ ...config, cacheBytes: 0 }, null, 2));
    await v.push();
    await change(v.src);
    await v.push();
    const run = await lastPush(v.ws);
    expect(run.cache!.hitBytes).toBe(0);
    expect(phase(run, 'sync').downBytes).toBeGreaterThan(0.1 * run.changedBytes!);
    await writeFile(file, JSON.stringify(config, null, 2));
  });
});

describe('block cache on btrfs', () => {
  let v: TestVault;

  beforeAll(async () => {
    v = await setupVault('cchb', { fs: 'btrfs' });
    // A cache smaller than one push's writes: what every writer rewrites must stay in it to prove it.
    const configFile = join(v.ws.env.XDG_CONFIG_HOME, 'sshvault', 'cchb.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    await writeFile(configFile, JSON.stringify({ ...config, cacheBytes: 8 << 20 }, null, 2));
    await writeFile(join(v.src, 'big.bin'), randomBytes(24 << 20));
    await v.push();
  });

  afterAll(async () => {
    await v?.dispose();
  });

  it('a cache smaller than a push is still proven at the next open, by the superblock btrfs rewrites', async () => {
    await churnSourceTree(v.src);
    await v.push();
    const log = await readFile(join(v.ws.env.XDG_STATE_HOME, 'sshvault', 'cchb', 'last-run.log'), 'utf8');
    const proof = /image cache: compared (\d+) units with the remote, (\d+) differ(.*)/.exec(log);
    expect(proof, log.slice(-2000)).not.toBeNull();
    expect(proof![3]).toBe('');
    expect(Number(proof![1])).toBeGreaterThan(0);
    expect(Number(proof![2])).toBe(0);
    expect(await v.leftovers()).toEqual([]);
  });
});

/**
 * On btrfs the cache keeps what a walk reads, not file data: the chunk tree
 * says where data lives, and the cache drops and refuses those ranges.
 */
describe('block cache on btrfs: metadata, not data', () => {
  let v: TestVault;
  const cacheData = () => join(v.ws.env.XDG_CACHE_HOME!, 'sshvault', v.name, 'blocks', 'data');
  /** What the cache's data file takes on disk (it is sparse). */
  const onDisk = async () => (await stat(cacheData())).blocks * 512;

  beforeAll(async () => {
    v = await setupVault('cchm', { fs: 'btrfs' });
    await writeFile(join(v.src, 'big.bin'), randomBytes(32 << 20));
  });

  afterAll(async () => {
    await v?.dispose();
  });

  it('a first push of 32 MiB leaves a cache of a few MiB, and the next push still downloads next to nothing', async () => {
    await v.push();
    expect(await onDisk()).toBeLessThan(6 << 20);
    await churnSourceTree(v.src);
    await v.push();
    const run = jsonOf<{ runs: RunJson[] }>(await v.ws.sv(['stats', v.name, '--json']), 'stats').runs.filter((r) => r.command === 'push').pop()!;
    expect(run.ok).toBe(true);
    expect(run.downBytes, JSON.stringify(run)).toBeLessThanOrEqual(0.1 * run.changedBytes! + 256 * 1024);
    expect(await onDisk()).toBeLessThan(6 << 20);
    expect(await v.leftovers()).toEqual([]);
  });
});
