import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { imageLayout } from '../../src/snapshot/layout.js';
import { applyDelta, diffManifests, MAX_CHAIN, planRewrites, writeFull } from '../../src/snapshot/manifest-chain.js';
import { decodeDelta, encodeDelta, encodeManifest, type ManifestEntry } from '../../src/snapshot/manifest-codec.js';
import { deltaPath, dropDeltas, keepChainsWhole, manifestPath, manifestsDir, resolveManifest } from '../../src/snapshot/manifest.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const entry = (path: string, content = path): ManifestEntry => ({ path: Buffer.from(path), hash: sha(content) });
const paths = (es: ManifestEntry[]) => es.map((e) => e.path.toString());

describe('manifest deltas', () => {
  const base = [entry('a'), entry('b'), entry('c'), entry('odd\nname')];
  const next = [entry('a'), entry('b', 'b v2'), entry('d'), entry('odd\nname')];

  it('hold what was added or changed and what was removed, and apply back to the same manifest', () => {
    const d = diffManifests(base, next);
    expect(paths(d.upserts)).toEqual(['b', 'd']);
    expect(d.removed.map(String)).toEqual(['c']);
    expect(applyDelta(base, d)).toEqual(next);
  });

  it('are empty for an unchanged tree', () => {
    expect(diffManifests(base, base)).toEqual({ upserts: [], removed: [] });
  });

  it('encode their base and odd names and decode back', async () => {
    const d = { base: '2026-03-01T030000Z', ...diffManifests(base, [entry('a'), entry('new\\line\r')]) };
    expect(await decodeDelta(await encodeDelta(d))).toEqual(d);
  });
});

describe('full or delta', () => {
  it('is full without a base', () => {
    expect(writeFull(undefined, 0, 100)).toBe(true);
  });

  it('is a delta while the chain is short and its deltas small against the full manifest', () => {
    expect(writeFull({ depth: 0, lines: 0 }, 0, 100)).toBe(false);
    expect(writeFull({ depth: 3, lines: 30 }, 20, 100)).toBe(false);
  });

  it('is full when the deltas together would hold more than half the full manifest', () => {
    expect(writeFull({ depth: 0, lines: 0 }, 51, 100)).toBe(true);
    expect(writeFull({ depth: 3, lines: 30 }, 21, 100)).toBe(true);
  });

  it('is full when the chain would grow past its longest', () => {
    expect(writeFull({ depth: MAX_CHAIN - 1, lines: 0 }, 0, 100)).toBe(false);
    expect(writeFull({ depth: MAX_CHAIN, lines: 0 }, 0, 100)).toBe(true);
  });
});

describe('prune planning', () => {
  // s1 full <- s2 <- s3 <- s4, and s5 full <- s6.
  const bases = new Map([
    ['s2', 's1'],
    ['s3', 's2'],
    ['s4', 's3'],
    ['s6', 's5'],
  ]);

  it('rewrites nothing when every base is kept', () => {
    expect(planRewrites(bases, new Set(['s1', 's2', 's3', 's4', 's5', 's6']))).toEqual([]);
  });

  it('rewrites the first kept snapshot above each removed base', () => {
    expect(planRewrites(bases, new Set(['s3', 's4', 's6']))).toEqual(['s3', 's6']);
    expect(planRewrites(bases, new Set(['s1', 's3', 's4']))).toEqual(['s3']);
  });
});

describe('manifest chains on disk', () => {
  it('resolve through deltas, survive a prune of their base, and name a broken chain', async () => {
    const root = await mkdtemp(join(tmpdir(), 'sshvault-chain-'));
    try {
      const layout = imageLayout(root);
      const dir = manifestsDir(layout);
      await mkdir(dir, { recursive: true });
      const m1 = [entry('a'), entry('b')];
      const m2 = [entry('a', 'a v2'), entry('b')];
      const m3 = [entry('a', 'a v2'), entry('c')];
      await writeFile(manifestPath(dir, 's1'), await encodeManifest(m1));
      await writeFile(deltaPath(dir, 's2'), await encodeDelta({ base: 's1', ...diffManifests(m1, m2) }));
      await writeFile(deltaPath(dir, 's3'), await encodeDelta({ base: 's2', ...diffManifests(m2, m3) }));
      expect(await resolveManifest(dir, 's3')).toEqual({ entries: m3, chain: { depth: 2, lines: 3 } });
      expect(await resolveManifest(dir, 's0')).toBeUndefined();

      // Prune removes s1 and keeps s2 and s3: s2 gets a full manifest, s3 still resolves through it.
      expect(await keepChainsWhole(layout, new Set(['s2', 's3']))).toEqual(['s2']);
      await dropDeltas(layout, ['s2']);
      await rm(manifestPath(dir, 's1'));
      expect((await readdir(dir)).sort()).toEqual(['s2.sha256.gz', 's3.delta.gz']);
      expect(await resolveManifest(dir, 's2')).toEqual({ entries: m2, chain: { depth: 0, lines: 0 } });
      expect((await resolveManifest(dir, 's3'))!.entries).toEqual(m3);

      await rm(manifestPath(dir, 's2'));
      await expect(resolveManifest(dir, 's3')).rejects.toThrow(/needs that of s2/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("README's stock-tools check of a snapshot", () => {
  it('resolves a chain of deltas with odd names and fails on a changed file', async () => {
    const block = /<!-- readme-test: verify -->\n```sh\n([\s\S]*?)```/.exec(await readFile(new URL('../../README.md', import.meta.url), 'utf8'))![1]!;
    const work = await mkdtemp(join(tmpdir(), 'sshvault-chain-'));
    try {
      const layout = imageLayout(join(work, 'fs'));
      const dir = manifestsDir(layout);
      await mkdir(dir, { recursive: true });
      const snap = join(layout.snapshots, 's3');
      await mkdir(snap, { recursive: true });
      const files: Record<string, string> = { keep: 'same', 'back\\slash': 'v2', 'new\nline': 'added', gone: 'removed later' };
      const m1 = [entry('back\\slash', 'v1'), entry('gone', 'removed later'), entry('keep', 'same')];
      const m2 = [entry('back\\slash', 'v2'), entry('gone', 'removed later'), entry('keep', 'same'), entry('new\nline', 'added')];
      const m3 = m2.filter((e) => e.path.toString() !== 'gone');
      for (const [name, content] of Object.entries(files)) if (name !== 'gone') await writeFile(join(snap, name), content);
      await writeFile(manifestPath(dir, 's1'), await encodeManifest(m1));
      await writeFile(deltaPath(dir, 's2'), await encodeDelta({ base: 's1', ...diffManifests(m1, m2) }));
      await writeFile(deltaPath(dir, 's3'), await encodeDelta({ base: 's2', ...diffManifests(m2, m3) }));
      const runBlock = () => execa('sh', ['-c', block], { env: { WORK: work, SNAPSHOT: 's3' }, reject: false });
      const ok = await runBlock();
      expect(ok.exitCode, ok.stdout + ok.stderr).toBe(0);
      await writeFile(join(snap, 'back\\slash'), 'v1');
      const bad = await runBlock();
      expect(bad.exitCode).toBe(1);
      expect(bad.stdout).toContain('FAILED');
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
