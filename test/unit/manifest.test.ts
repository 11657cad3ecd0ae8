import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { appendFile, cp, link, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageLayout, type ImageLayout } from '../../src/snapshot/layout.js';
import { deltaPath, manifestPath, manifestsDir, readManifest, resolveManifest, verifySnapshots, writeManifest } from '../../src/snapshot/manifest.js';
import { decodeDelta, encodeManifest, formatEntry, parseManifest } from '../../src/snapshot/manifest-codec.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('manifest format', () => {
  it("is sha256sum's, escapes included, and parses back byte for byte", async () => {
    const names = ['plain.txt', 'back\\slash', 'new\nline', 'carriage\rreturn', 'café/naïve', 'with  two spaces'];
    const entries = names.map((n) => ({ path: Buffer.from(n), hash: sha(n) }));
    entries.push({ path: Buffer.from([0x6c, 0x61, 0x74, 0xe9]), hash: sha('latin-1 name') });
    const text = Buffer.concat(entries.map(formatEntry));
    expect(parseManifest(text)).toEqual(entries);
    expect(text.toString('latin1')).toContain(`\\${sha('back\\slash')}  back\\\\slash\n`);
    expect(text.toString('latin1')).toContain(`\\${sha('new\nline')}  new\\nline\n`);
  });

  it('checks out with sha256sum -c, odd names included', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sshvault-manifest-'));
    try {
      const names = ['a.txt', 'back\\slash', 'new\nline', 'carriage\rreturn', ' leading space'];
      for (const n of names) await writeFile(join(dir, n), `content of ${n}`);
      const data = await encodeManifest(names.map((n) => ({ path: Buffer.from(n), hash: sha(`content of ${n}`) })));
      await writeFile(join(dir, 'm.gz'), data);
      const r = await execa('sh', ['-c', 'zcat m.gz | sha256sum -c -'], { cwd: dir, reject: false });
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      await writeFile(join(dir, 'a.txt'), 'changed');
      expect((await execa('sh', ['-c', 'zcat m.gz | sha256sum --quiet -c -'], { cwd: dir, reject: false })).exitCode).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * A push in miniature: the source under an absolute path, "snapshots" that
 * hold it under that same path (as rsync --relative does), the second one
 * hard-linked to the first for unchanged files (as --link-dest does).
 */
describe('writeManifest and verifySnapshots', () => {
  let root: string;
  let src: string;
  let layout: ImageLayout;
  let cache: string;
  const s1 = '2026-03-01T030000Z';
  const s2 = '2026-03-02T030000Z';
  const inSnap = (name: string, rel: string) => join(layout.snapshots, name, src, rel);

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'sshvault-manifest-'));
    src = join(root, 'src');
    layout = imageLayout(join(root, 'image'));
    cache = join(root, 'state');
    await mkdir(layout.meta, { recursive: true });
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'same.txt'), 'never changes');
    await writeFile(join(src, 'sub', 'edited.txt'), 'version 1');
    await writeFile(join(src, 'racy.txt'), 'as copied');
    await writeFile(join(src, 'back\\slash'), 'odd name');
    await mkdir(join(layout.snapshots, s1, src), { recursive: true });
    await cp(src, join(layout.snapshots, s1, src), { recursive: true, preserveTimestamps: true });
  });

  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('hashes the source, and leaves out a file that changed after it was copied', async () => {
    await appendFile(join(src, 'racy.txt'), ' and more');
    const r = await writeManifest({ layout, name: s1, dir: join(layout.snapshots, s1), cacheDir: cache });
    expect(r).toEqual({ files: 3, reused: 0, omitted: 1, full: true });
    const entries = (await readManifest(manifestPath(manifestsDir(layout), s1)))!;
    const byPath = Object.fromEntries(entries.map((e) => [e.path.toString(), e.hash]));
    expect(byPath[`${src.slice(1)}/same.txt`]).toBe(sha('never changes'));
    expect(byPath[`${src.slice(1)}/sub/edited.txt`]).toBe(sha('version 1'));
    expect(byPath[`${src.slice(1)}/back\\slash`]).toBe(sha('odd name'));
    expect(Object.keys(byPath).some((p) => p.endsWith('racy.txt'))).toBe(false);
    expect((await readdir(join(cache, 'manifests'))).sort()).toEqual([`${s1}.chain.json`, `${s1}.sha256.gz`]);
  });

  it('takes hashes of hard-linked files from the previous manifest without reading the source', async () => {
    await mkdir(join(layout.snapshots, s2, src, 'sub'), { recursive: true });
    await link(inSnap(s1, 'same.txt'), inSnap(s2, 'same.txt'));
    await link(inSnap(s1, 'back\\slash'), inSnap(s2, 'back\\slash'));
    await writeFile(join(src, 'sub', 'edited.txt'), 'version 2');
    await cp(join(src, 'sub', 'edited.txt'), inSnap(s2, 'sub/edited.txt'), { preserveTimestamps: true });
    // Gone from the source: only the previous manifest can know its hash.
    await rm(join(src, 'same.txt'));
    await rm(join(src, 'racy.txt'));
    const r = await writeManifest({ layout, name: s2, dir: join(layout.snapshots, s2), previous: { name: s1, dir: join(layout.snapshots, s1) }, cacheDir: cache });
    expect(r).toEqual({ files: 3, reused: 2, omitted: 0, full: false });
    // One file changed: only it goes into s2's delta.
    expect(await readManifest(manifestPath(manifestsDir(layout), s2))).toBeUndefined();
    const delta = await decodeDelta(await readFile(deltaPath(manifestsDir(layout), s2)));
    expect(delta.base).toBe(s1);
    expect(delta.upserts.map((e) => e.path.toString())).toEqual([`${src.slice(1)}/sub/edited.txt`]);
    const entries = (await resolveManifest(manifestsDir(layout), s2))!.entries;
    expect(entries).toHaveLength(3);
    expect(entries.find((e) => e.path.toString().endsWith('same.txt'))!.hash).toBe(sha('never changes'));
    expect(entries.find((e) => e.path.toString().endsWith('edited.txt'))!.hash).toBe(sha('version 2'));
    expect((await readdir(join(cache, 'manifests'))).sort()).toEqual([`${s2}.chain.json`, `${s2}.sha256.gz`]);
  });

  it('verify reads a file shared by snapshots once and finds changed and missing files', async () => {
    const clean = await verifySnapshots(layout, [s1, s2]);
    expect(clean.problems).toEqual([]);
    // same.txt and back\slash are one inode each in both snapshots.
    expect(clean.filesRead).toBe(4);

    const victim = inSnap(s2, 'sub/edited.txt');
    const bytes = await readFile(victim);
    bytes[3] ^= 0x01;
    await writeFile(victim, bytes);
    await rm(inSnap(s1, 'sub/edited.txt'));
    const bad = await verifySnapshots(layout, [s1, s2, '2026-03-03T030000Z']);
    expect(bad.problems).toEqual([
      { snapshot: s1, path: `${src}/sub/edited.txt`, problem: 'missing' },
      { snapshot: s2, path: `${src}/sub/edited.txt`, problem: 'content differs' },
    ]);
    expect(bad.snapshots.find((s) => s.name === '2026-03-03T030000Z')!.manifest).toBe(false);
  });

  it('leaves out a file whose source no longer has the size and mtime of the copy', async () => {
    await utimes(join(src, 'sub', 'edited.txt'), new Date(0), new Date(0));
    const r = await writeManifest({ layout, name: s2, dir: join(layout.snapshots, s2), previous: { name: s1, dir: join(layout.snapshots, s1) }, cacheDir: cache });
    expect(r.omitted).toBe(1);
  });
});
