import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryInSnapshot } from '../../src/cli/restore-path.js';
import { UsageError } from '../../src/errors.js';

describe('entryInSnapshot', () => {
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'sshvault-restore-path-'));
    await mkdir(join(root, 'home/me/docs'), { recursive: true });
    await writeFile(join(root, 'home/me/docs/a.txt'), 'a');
    await symlink('/etc', join(root, 'home/me/abs'));
    await symlink('../..', join(root, 'home/me/rel'));
    await symlink('docs', join(root, 'home/me/inside'));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('tells directories, other entries and missing paths apart', async () => {
    expect(await entryInSnapshot(root, '/')).toBe('dir');
    expect(await entryInSnapshot(root, '/home/me/docs')).toBe('dir');
    expect(await entryInSnapshot(root, '/home/me/docs/a.txt')).toBe('other');
    expect(await entryInSnapshot(root, '/home/me/nope')).toBe('missing');
    expect(await entryInSnapshot(root, '/home/me/docs/a.txt/below')).toBe('missing');
  });

  it('takes a symlink as the last component as the link itself', async () => {
    expect(await entryInSnapshot(root, '/home/me/abs')).toBe('other');
    expect(await entryInSnapshot(root, '/home/me/rel')).toBe('other');
  });

  it('refuses any symlink on the way, even one that stays inside', async () => {
    await expect(entryInSnapshot(root, '/home/me/abs/passwd')).rejects.toThrow(UsageError);
    await expect(entryInSnapshot(root, '/home/me/abs/passwd')).rejects.toThrow('(/home/me/abs -> /etc)');
    await expect(entryInSnapshot(root, '/home/me/rel/home')).rejects.toThrow('crosses a symlink inside the snapshot');
    await expect(entryInSnapshot(root, '/home/me/inside/a.txt')).rejects.toThrow(UsageError);
  });
});
