import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { imageLayout, type ImageLayout } from '../../src/snapshot/layout.js';
import { resolveSnapshot } from '../../src/snapshot/resolve.js';

let root: string;
let layout: ImageLayout;

async function dirs(...names: string[]): Promise<void> {
  for (const n of names) await mkdir(join(layout.snapshots, n), { recursive: true });
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'sshvault-resolve-'));
  layout = imageLayout(root);
  await mkdir(layout.snapshots, { recursive: true });
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('resolveSnapshot', () => {
  it('latest is the newest complete snapshot, never a partial one', async () => {
    await dirs('2026-11-20T030000Z', '2026-11-21T030000Z', '2026-11-22T030000Z.partial');
    await expect(resolveSnapshot(layout, 'latest')).resolves.toBe('2026-11-21T030000Z');
  });

  it('latest in a vault without a complete snapshot is a usage error', async () => {
    await dirs('2026-11-22T030000Z.partial');
    await expect(resolveSnapshot(layout, 'latest')).rejects.toThrow(/no complete snapshot yet/);
  });

  it('a name is itself; a partial one only when named with .partial', async () => {
    await dirs('2026-11-20T030000Z', '2026-11-22T030000Z.partial');
    await expect(resolveSnapshot(layout, '2026-11-20T030000Z')).resolves.toBe('2026-11-20T030000Z');
    await expect(resolveSnapshot(layout, '2026-11-22T030000Z')).rejects.toThrow(/is partial/);
    await expect(resolveSnapshot(layout, '2026-11-22T030000Z.partial')).resolves.toBe('2026-11-22T030000Z.partial');
  });

  it('a snapshot being deleted, or a directory that is no snapshot, is not found', async () => {
    await dirs('2026-11-20T030000Z.deleting', 'lost+found');
    await expect(resolveSnapshot(layout, '2026-11-20T030000Z.deleting')).rejects.toThrow(/has no snapshot/);
    await expect(resolveSnapshot(layout, 'lost+found')).rejects.toThrow(/has no snapshot/);
  });
});
