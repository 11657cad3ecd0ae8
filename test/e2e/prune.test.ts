import { execa } from 'execa';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk } from '../helpers/cli.js';
import { debugfsCat, debugfsLs, decryptImage } from '../helpers/independent.js';
import { deltaBaseOf, renameManifest } from '../helpers/manifests.js';
import { jsonOf, setupVault, withMountedPlaintext, type TestVault } from '../helpers/vault.js';

interface PruneJson {
  dryRun: boolean;
  keep: { name: string; partial: boolean; reasons: string[] }[];
  remove: { name: string; partial: boolean; reasons: string[] }[];
  run: { phases: { name: string; upBytes: number; downBytes: number }[] };
}

/** Synthetic times, oldest first: 2026-01-05 is a Monday. */
const A = '2026-01-05T030000Z';
const B = '2026-01-20T030000Z';
const C = '2026-02-10T030000Z';
const D = '2026-02-10T150000Z';
const E = '2026-02-11T030000Z';
const F = '2026-02-12T030000Z';
/** Interrupted pushes: one older than the newest complete snapshot (stale), one newer (to be resumed). */
const P1 = '2026-02-01T030000Z.partial';
const P2 = '2026-02-13T030000Z.partial';

/**
 * Prune against snapshots with synthetic times. The pushes are real;
 * their directories (and manifests) are then renamed inside the encrypted
 * filesystem, outside sshvault, to the times the policy is tested with. What
 * remains is read back with debugfs from an independently decrypted copy.
 */
describe('prune', () => {
  let v: TestVault;
  let scratch: string;

  beforeAll(async () => {
    v = await setupVault('prn');
    scratch = await mkdtemp(join(tmpdir(), 'sshvault-prune-'));
    const pushed: string[] = [];
    for (let i = 0; i < 6; i++) {
      await writeFile(join(v.src, 'docs', 'counter.txt'), `push ${i}\n`);
      pushed.push(await v.push());
    }
    await withMountedPlaintext(v.image, v.ws.passphrase, async (root) => {
      for (const [from, to] of pushed.map((p, i) => [p, [A, B, C, D, E, F][i]!])) {
        await rename(join(root, 'snapshots', from!), join(root, 'snapshots', to));
        await renameManifest(root, from!, to);
      }
      await execa('cp', ['-al', join(root, 'snapshots', A), join(root, 'snapshots', P1)]);
      await execa('cp', ['-al', join(root, 'snapshots', F), join(root, 'snapshots', P2)]);
    });
    // The local manifest cache names the newest real push; a later push falls back to the image's copy.
    await rm(join(v.ws.env.XDG_STATE_HOME, 'sshvault', v.name, 'manifests'), { recursive: true, force: true });
  });

  afterAll(async () => {
    await v?.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  /** Snapshot directories and manifests in the image, read without sshvault. */
  async function inImage(): Promise<{ snapshots: string[]; manifests: string[]; bases: Record<string, string | undefined>; fsck: number }> {
    const raw = join(scratch, 'plain.raw');
    await decryptImage(v.image, v.ws.passphrase, raw);
    try {
      const snapshots = (await debugfsLs(raw, '/snapshots')).map((e) => e.name).sort();
      const manifests = (await debugfsLs(raw, '/.sshvault/manifests')).map((e) => e.name).sort();
      const bases: Record<string, string | undefined> = {};
      for (const m of manifests) bases[m] = deltaBaseOf(await debugfsCat(raw, `/.sshvault/manifests/${m}`));
      const fsck = (await execa('e2fsck', ['-fn', raw], { reject: false })).exitCode ?? -1;
      return { snapshots, manifests, bases, fsck };
    } finally {
      await rm(raw, { force: true });
    }
  }

  const names = (items: { name: string; partial: boolean }[]) => items.map((i) => (i.partial ? `${i.name}.partial` : i.name));

  it('--dry-run says what the policy keeps and why, and changes nothing', async () => {
    const r = jsonOf<PruneJson>(await v.ws.sv(['prune', v.name, '--keep-daily', '2', '--keep-monthly', '2', '--dry-run', '--json']), 'prune --dry-run');
    // Daily: F and E (newest of their days). Monthly: F (February), B (January); A is past the count.
    expect(names(r.keep)).toEqual([B, E, F, P2]);
    expect(names(r.remove)).toEqual([A, P1, C, D]);
    const why = Object.fromEntries(r.keep.map((k) => [k.name, k.reasons]));
    expect(why[F]).toEqual(['daily snapshot', 'monthly snapshot']);
    expect(why[B]).toEqual(['monthly snapshot']);
    expect(r.remove.find((x) => x.partial)!.reasons).toEqual(['interrupted push, older than the newest complete snapshot']);
    expect((await inImage()).snapshots).toEqual([A, B, C, D, E, F, P1, P2].sort());
    expect(await v.leftovers()).toEqual([]);
  });

  it('a mount holds prune off with exit 5', async () => {
    const mp = join(v.ws.dir, 'mnt');
    await execa('mkdir', ['-p', mp]);
    expectOk(await v.ws.sv(['mount', v.name, mp]), 'mount');
    try {
      const r = await v.ws.sv(['prune', v.name, '--keep-last', '1']);
      expect(r.exitCode).toBe(5);
      expect(r.stderr).toContain('sshvault umount');
    } finally {
      expectOk(await v.ws.sv(['umount', v.name]), 'umount');
    }
    expect(await v.leftovers()).toEqual([]);
  });

  it('removes exactly what the policy does not keep, manifests included; the filesystem stays clean', async () => {
    const r = await v.ws.sv(['prune', v.name, '--keep-daily', '2', '--keep-monthly', '2', '--json']);
    const out = jsonOf<PruneJson>(r, 'prune');
    expect(names(out.remove)).toEqual([A, P1, C, D]);
    const phase = out.run.phases.find((p) => p.name === 'prune')!;
    expect(phase.upBytes).toBeGreaterThan(0);
    expect(out.run.phases.map((p) => p.name)).toEqual(['connect', 'open', 'prune', 'close']);
    const after = await inImage();
    expect(after.snapshots).toEqual([B, E, F, P2]);
    // Each push changed one file: every manifest but A's was a delta on the one before. B and E lost their
    // bases and were rewritten full; F still builds on E.
    expect(after.manifests).toEqual([`${B}.sha256.gz`, `${E}.sha256.gz`, `${F}.delta.gz`]);
    expect(after.bases).toEqual({ [`${B}.sha256.gz`]: undefined, [`${E}.sha256.gz`]: undefined, [`${F}.delta.gz`]: E });
    expect(after.fsck).toBe(0);
    const list = jsonOf<{ name: string; complete: boolean }[]>(await v.ws.sv(['list', v.name, '--json']), 'list');
    expect(list.map((s) => s.name)).toEqual([B, E, F, P2.replace('.partial', '')]);
    expect(await v.leftovers()).toEqual([]);
  });

  it('check --verify-data passes on every kept snapshot through its chain, and names a file whose content changed', async () => {
    expect((await v.ws.sv(['check', v.name, '--verify-data'])).exitCode).toBe(0);
    // counter.txt of F is listed only in F's delta; guide.md only in the full manifests, shared by B, E and F.
    const counter = `${v.src}/docs/counter.txt`;
    const guide = `${v.src}/docs/guide.md`;
    const flip = () =>
      withMountedPlaintext(v.image, v.ws.passphrase, async (root) => {
        for (const f of [join(root, 'snapshots', F, counter), join(root, 'snapshots', B, guide)]) {
          const bytes = await readFile(f);
          bytes[0] ^= 0x01;
          await writeFile(f, bytes);
        }
      });
    await flip();
    try {
      const r = await v.ws.sv(['check', v.name, '--verify-data']);
      expect(r.exitCode).toBe(7);
      for (const line of [`content differs: ${F}${counter}`, `content differs: ${B}${guide}`, `content differs: ${E}${guide}`, `content differs: ${F}${guide}`]) {
        expect(r.stdout).toContain(line);
      }
    } finally {
      await flip();
    }
    expect((await v.ws.sv(['check', v.name, '--verify-data'])).exitCode).toBe(0);
  });

  it('takes the policy from the vault config when no flag is given, and never the newest complete snapshot', async () => {
    const file = join(v.ws.env.XDG_CONFIG_HOME, 'sshvault', `${v.name}.json`);
    const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    await writeFile(file, JSON.stringify({ ...config, retention: { hourly: 1 } }));
    const out = jsonOf<PruneJson>(await v.ws.sv(['prune', v.name, '--json']), 'prune (config policy)');
    expect(names(out.keep)).toEqual([F, P2]);
    expect((await inImage()).snapshots).toEqual([F, P2]);
    expect((await inImage()).fsck).toBe(0);
    // The next push resumes the newer interrupted one and links against F.
    await v.push();
    expect((await v.ws.sv(['check', v.name, '--verify-data'])).exitCode).toBe(0);
    expect(await v.leftovers()).toEqual([]);
  });

  it('refuses without any rule, before connecting', async () => {
    const file = join(v.ws.env.XDG_CONFIG_HOME, 'sshvault', `${v.name}.json`);
    const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    delete config.retention;
    await writeFile(file, JSON.stringify(config));
    const runs = () => v.ws.sv(['stats', v.name, '--json']).then((x) => (JSON.parse(x.stdout) as { runs: unknown[] }).runs.length);
    const before = await runs();
    const r = await v.ws.sv(['prune', v.name]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('--keep-last');
    const zero = await v.ws.sv(['prune', v.name, '--keep-last', '0']);
    expect(zero.exitCode).toBe(2);
    expect(await runs()).toBe(before);
  });
});
