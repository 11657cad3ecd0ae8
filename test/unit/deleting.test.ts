import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { finishDeleting, markDeleting } from '../../src/snapshot/deleting.js';
import { imageLayout, type ImageLayout } from '../../src/snapshot/layout.js';

describe('deleting snapshots in two steps', () => {
  let root: string;
  let layout: ImageLayout;
  const manifests = () => join(layout.meta, 'manifests');

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'sshvault-deleting-'));
    layout = imageLayout(root);
    await mkdir(manifests(), { recursive: true });
    for (const dir of ['2026-01-01T000000Z', '2026-01-02T000000Z', '2026-01-03T000000Z.partial', '2026-01-04T000000Z', 'lost+found']) {
      await mkdir(join(layout.snapshots, dir, 'home/me'), { recursive: true });
      await writeFile(join(layout.snapshots, dir, 'home/me/file'), dir);
    }
    for (const name of ['2026-01-01T000000Z', '2026-01-02T000000Z', '2026-01-04T000000Z']) await writeFile(join(manifests(), `${name}.sha256.gz`), '');
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('renames first, so what is being deleted no longer carries a snapshot name', async () => {
    await markDeleting(layout, ['2026-01-01T000000Z', '2026-01-03T000000Z.partial']);
    expect((await readdir(layout.snapshots)).sort()).toEqual([
      '2026-01-01T000000Z.deleting',
      '2026-01-02T000000Z',
      '2026-01-03T000000Z.partial.deleting',
      '2026-01-04T000000Z',
      'lost+found',
    ]);
  });

  it('then deletes every .deleting directory with its manifest, and nothing else', async () => {
    await markDeleting(layout, ['2026-01-01T000000Z', '2026-01-03T000000Z.partial']);
    const checked: number[] = [];
    const done = await finishDeleting(layout, async () => void checked.push(1));
    expect(done).toEqual(['2026-01-01T000000Z.deleting', '2026-01-03T000000Z.partial.deleting']);
    expect(checked).toHaveLength(2);
    expect((await readdir(layout.snapshots)).sort()).toEqual(['2026-01-02T000000Z', '2026-01-04T000000Z', 'lost+found']);
    expect((await readdir(manifests())).sort()).toEqual(['2026-01-02T000000Z.sha256.gz', '2026-01-04T000000Z.sha256.gz']);
  });

  it('stops before deleting when the stack went away', async () => {
    await markDeleting(layout, ['2026-01-01T000000Z']);
    await expect(finishDeleting(layout, () => Promise.reject(new Error('gone')))).rejects.toThrow('gone');
    expect(await readdir(layout.snapshots)).toContain('2026-01-01T000000Z.deleting');
  });
});
