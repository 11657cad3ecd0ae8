import { execa } from 'execa';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { compareTrees, debugfsLs, decryptImage, rdump } from '../helpers/independent.js';
import { startRelay, type Relay } from '../helpers/relay.js';
import { jsonOf, setupVault, type TestVault } from '../helpers/vault.js';

/**
 * A prune whose link is cut while it deletes: the snapshot it was deleting
 * must not be left half-deleted under its own name (listed as complete), and
 * the next writing run finishes the deletion. What the image holds is read
 * from outside sshvault after each step.
 */
describe('prune cut in the middle of a deletion', () => {
  let v: TestVault;
  let relay: Relay;
  let doomed: string;
  let kept: string;

  /** Snapshot directories in the image, read by debugfs from an independently decrypted copy. */
  async function inImage(): Promise<string[]> {
    const raw = join(v.scratch, 'plain.raw');
    await decryptImage(v.image, v.ws.passphrase, raw);
    try {
      return (await debugfsLs(raw, '/snapshots')).map((e) => e.name).filter((n) => n !== '.' && n !== '..').sort();
    } finally {
      await rm(raw, { force: true });
    }
  }

  beforeAll(async () => {
    v = await setupVault('prcut');
    // Enough entries that deleting them takes many reads of directory and inode blocks.
    for (let d = 0; d < 30; d++) {
      const dir = join(v.src, 'many', `d${d}`);
      await mkdir(dir, { recursive: true });
      for (let f = 0; f < 100; f++) await writeFile(join(dir, `f${f}`), `${d}/${f}\n`);
    }
    doomed = await v.push();
    await rm(join(v.src, 'many'), { recursive: true });
    kept = await v.push();
    relay = await startRelay({ host: '127.0.0.1', port: v.sshd.port });
    const file = join(v.ws.env.XDG_CONFIG_HOME, 'sshvault', `${v.name}.json`);
    const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    // Through the relay; and no block cache, so the deletion's reads cross the wire where the relay sees them.
    await writeFile(file, JSON.stringify({ ...config, remote: v.remote.replace(`:${v.sshd.port}/`, `:${relay.port}/`), cacheBytes: 0 }));
  });

  afterAll(async () => {
    await relay?.close();
    await v?.dispose();
  });

  it('leaves <name>.deleting, never a half-deleted snapshot listed as complete; the next push finishes it', async () => {
    const prune = execa(BIN, ['--debug', 'prune', v.name, '--keep-last', '1'], { env: v.ws.env, reject: false, stdin: 'ignore' });
    // The first flush of a prune is its commit point; downloads after it are the deletion reading what it deletes.
    let flushed = false;
    let downAtFlush = 0;
    let cut = false;
    prune.stderr!.on('data', (chunk: Buffer) => {
      if (!flushed && /\$ sync -f /.test(chunk.toString('utf8'))) {
        flushed = true;
        downAtFlush = relay.downBytes();
      }
    });
    const watch = setInterval(() => {
      if (flushed && !cut && relay.downBytes() > downAtFlush + 32 * 1024) {
        cut = true;
        relay.cut();
      }
    }, 5);
    const r = await prune.finally(() => clearInterval(watch));
    expect(cut, `prune ended before its deletion could be cut:\n${String(r.stderr)}`).toBe(true);
    expect(r.exitCode).toBe(4);
    expect(await v.leftovers()).toEqual([]);

    expect(await inImage()).toEqual([`${doomed}.deleting`, kept]);
    const list = jsonOf<{ name: string; complete: boolean }[]>(await v.ws.sv(['list', v.name, '--refresh', '--json']), 'list --refresh');
    expect(list.map((s) => s.name)).toEqual([kept]);

    const push = await v.ws.sv(['push', v.name, '--json']);
    expect(push.exitCode, push.stderr).toBe(0);
    expect(push.stderr).toContain(`Finished deleting what an interrupted prune left: ${doomed}.deleting.`);
    const fresh = (JSON.parse(push.stdout) as { snapshot: string }).snapshot;
    expect(await inImage()).toEqual([kept, fresh].sort());
    expect(await v.leftovers()).toEqual([]);

    const raw = join(v.scratch, 'plain.raw');
    await decryptImage(v.image, v.ws.passphrase, raw);
    try {
      const dump = join(v.scratch, 'dump');
      await rdump(raw, `/snapshots/${kept}`, dump);
      expect(await compareTrees(v.src, join(dump, kept, v.src))).toEqual([]);
      expect((await execa('e2fsck', ['-fn', raw], { reject: false })).exitCode).toBe(0);
    } finally {
      await rm(raw, { force: true });
    }
  });
});
