import { execa } from 'execa';
import { appendFile, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup, leftovers } from '../helpers/cleanup.js';
import { btrfsRestore, btrfsSubvolumes, compareTrees, decryptImage, makeSourceTree, rdump } from '../helpers/independent.js';
import { startRelay } from '../helpers/relay.js';
import { startSshd, type SshdFixture } from '../helpers/sshd.js';

/** 20 cuts in CI; `SSHVAULT_CUTS=100 npx vitest run test/e2e/link-cuts.test.ts` for the long run. */
const CUTS = Number(process.env.SSHVAULT_CUTS ?? 20);
const GIVE_UP_LIMIT_MS = 120_000;

/**
 * Fault injection: a relay between client and sshd resets the
 * connection after N bytes, N spread over every phase of a push. After each
 * cut: exit 4 in time, nothing left mounted, attached or running, every
 * complete snapshot still equal to its source (read without sshvault), and
 * the next push completes the partial one. On btrfs, complete snapshots are
 * read-only subvolumes, and no run checks or repairs the filesystem.
 */
describe.each(['ext4', 'btrfs'] as const)('link cuts during push (%s)', (fs) => {
  let sshd: SshdFixture;
  let ws: Workspace;
  let scratch: string;
  let src: string;
  let expectedDir: string;
  let remoteDir: string;
  let knownHosts: string;
  let configFile: string;
  const results: { cutAfter: number; exitCode: number; ms: number }[] = [];

  beforeAll(async () => {
    sshd = await startSshd();
    ws = await workspace();
    scratch = await mkdtemp(join(tmpdir(), 'sshvault-cuts-'));
    src = join(scratch, 'src');
    expectedDir = join(scratch, 'expected');
    await mkdir(expectedDir);
    await makeSourceTree(src);
    remoteDir = sshd.remoteDir('cuts');
    knownHosts = join(scratch, 'known_hosts');
    await copyFile(sshd.knownHostsPath, knownHosts);
    expectOk(
      await ws.sv([
        'init', 'cuts', '--remote', remoteUrl(sshd.port), '--size', '128M', '--fs', fs, '--identity', sshd.userKeyPath,
        '--known-hosts', knownHosts, '--passphrase-file', ws.passphraseFile, '--source', src,
      ]),
      'init',
    );
    configFile = join(ws.env.XDG_CONFIG_HOME, 'sshvault', 'cuts.json');
  });

  afterAll(async () => {
    if (ws) await forceCleanup(ws.dir);
    await sshd?.stop();
    await ws?.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
    if (results.length) {
      const cut = results.filter((r) => r.exitCode === 4);
      console.log(
        `link cuts: ${results.length} runs, ${cut.length} cut (exit 4), ${results.length - cut.length} finished before the cut; longest time to give up ${Math.max(0, ...cut.map((r) => r.ms))} ms`,
      );
    }
  });

  function remoteUrl(port: number): string {
    return `ssh://root@127.0.0.1:${port}${remoteDir}`;
  }

  async function pointAt(port: number): Promise<void> {
    const c = JSON.parse(await readFile(configFile, 'utf8'));
    c.remote = remoteUrl(port);
    await writeFile(configFile, JSON.stringify(c, null, 2));
  }

  /** The relay listens on its own port; the host key is the sshd's, so known_hosts learns the pattern. */
  async function trustPort(port: number): Promise<void> {
    const line = (await readFile(sshd.knownHostsPath, 'utf8')).trim().split('\n')[0];
    await appendFile(knownHosts, `[127.0.0.1]:${port} ${line.split(' ').slice(1).join(' ')}\n`);
  }

  async function completeSnapshots(): Promise<string[]> {
    const r = await ws.sv(['list', 'cuts', '--json']);
    expectOk(r, 'list');
    return (JSON.parse(r.stdout) as { name: string; complete: boolean }[]).filter((s) => s.complete).map((s) => s.name);
  }

  /** A successful push: remember what the source was, to compare the snapshot with it forever after. */
  async function pushDirect(): Promise<void> {
    await pointAt(sshd.port);
    expectOk(await ws.sv(['push', 'cuts']), 'push without cut');
    if (fs === 'btrfs') {
      // The run after a cut mounts as it is: nothing checks or repairs a copy-on-write filesystem.
      const log = await readFile(join(ws.env.XDG_STATE_HOME, 'sshvault', 'cuts', 'last-run.log'), 'utf8');
      expect(log).toMatch(/\$ mount -t btrfs/);
      expect(log).not.toMatch(/\$ (e2fsck|btrfs check|fsck)/);
    }
    await recordExpected();
  }

  const recorded = new Set<string>();
  async function recordExpected(): Promise<void> {
    const names = await completeSnapshots();
    const newest = names[names.length - 1];
    if (recorded.has(newest)) return;
    await execa('cp', ['-a', src, join(expectedDir, newest)]);
    recorded.add(newest);
  }

  /** btrfs: each complete snapshot's root node when its content last matched. */
  const verifiedAt = new Map<string, string>();
  async function verifyAllComplete(): Promise<void> {
    const out = await mkdtemp(join(tmpdir(), 'sshvault-cutsverify-'));
    try {
      const raw = join(out, 'plain.raw');
      await decryptImage(join(remoteDir, 'vault.img'), ws.passphrase, raw);
      const fsck = fs === 'btrfs' ? await execa('btrfs', ['check', '--readonly', raw], { reject: false }) : await execa('e2fsck', ['-fn', raw], { reject: false });
      expect(fsck.exitCode, fsck.stdout + fsck.stderr).toBe(0);
      const subvolumes = fs === 'btrfs' ? await btrfsSubvolumes(raw) : undefined;
      for (const name of await completeSnapshots()) {
        const dump = join(out, name);
        if (subvolumes) {
          const sub = subvolumes.get(name);
          expect(sub?.readOnly, `snapshot ${name} read-only`).toBe(true);
          // Its tree's root node where it was when its content was compared: nothing in it changed since.
          if (verifiedAt.get(name) === sub!.rootNode) continue;
          await btrfsRestore(raw, name, dump, subvolumes);
        } else {
          await rdump(raw, `/snapshots/${name}`, out);
        }
        const diffs = await compareTrees(join(expectedDir, name), join(dump, src));
        expect(diffs, `snapshot ${name}`).toEqual([]);
        if (subvolumes) verifiedAt.set(name, subvolumes.get(name)!.rootNode);
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }

  let churnRound = 0;
  async function churn(): Promise<void> {
    churnRound++;
    await writeFile(join(src, `round-${churnRound}.bin`), Buffer.alloc(512 * 1024 + churnRound * 4096, churnRound));
    await writeFile(join(src, 'changing.txt'), `round ${churnRound}\n`.repeat(1000));
    if (churnRound > 3) await rm(join(src, `round-${churnRound - 3}.bin`), { force: true });
  }

  it(`survives ${CUTS} cuts spread over every phase`, async () => {
    await pushDirect();
    // Size a typical incremental push on the wire, to spread the cut points over all of it.
    await churn();
    const probe = await startRelay({ host: '127.0.0.1', port: sshd.port });
    await trustPort(probe.port);
    await pointAt(probe.port);
    expectOk(await ws.sv(['push', 'cuts']), 'probe push');
    const total = probe.upBytes() + probe.downBytes();
    await probe.close();
    await recordExpected();

    for (let i = 0; i < CUTS; i++) {
      // Log-spread from the SSH handshake to just past the end of the run.
      const cutAfter = Math.round(1500 * Math.pow((total * 1.05) / 1500, i / Math.max(1, CUTS - 1)));
      await churn();
      const relay = await startRelay({ host: '127.0.0.1', port: sshd.port }, { cutAfterBytes: cutAfter });
      await trustPort(relay.port);
      await pointAt(relay.port);
      const t0 = Date.now();
      const r = await ws.sv(['push', 'cuts'], { timeoutMs: GIVE_UP_LIMIT_MS + 30_000 });
      const ms = Date.now() - t0;
      await relay.close();
      results.push({ cutAfter, exitCode: r.exitCode, ms });
      expect([0, 4], `cut after ${cutAfter} bytes: ${r.stderr}`).toContain(r.exitCode);
      if (r.exitCode === 4) {
        expect(ms).toBeLessThan(GIVE_UP_LIMIT_MS);
        expect(r.stderr).toMatch(/lost the connection|went away|SSH connection .* failed/);
      }
      // A cut in the close phase still leaves a complete snapshot of this source.
      await recordExpected();
      expect(await leftovers(ws.dir), `after cut at ${cutAfter}`).toEqual([]);
      await pushDirect();
      expect(await leftovers(ws.dir)).toEqual([]);
      await verifyAllComplete();
    }
    expect(results.filter((r) => r.exitCode === 4).length).toBeGreaterThanOrEqual(Math.min(CUTS, 10));
    const stats = JSON.parse((await ws.sv(['stats', 'cuts', '--json'])).stdout);
    const failed = stats.runs.filter((x: { ok: boolean }) => !x.ok);
    expect(failed.length).toBe(results.filter((r) => r.exitCode === 4).length);
    expect(failed.every((x: { upBytes: number; downBytes: number }) => x.upBytes + x.downBytes > 0)).toBe(true);
    // Each cut is a push, a recovery push and an independent check of every snapshot: about 15-30 s apiece.
  }, CUTS * 45_000);
});
