import { describe, expect, it } from 'vitest';
import { splitMountArgs } from '../../src/cli/cmd_mount.js';
import { parseRestoreSpec } from '../../src/cli/cmd_restore.js';
import { UsageError } from '../../src/errors.js';

describe('restore <snapshot>[:<path>]', () => {
  it('splits at the first colon; the path is absolute, as the source path was', () => {
    expect(parseRestoreSpec('latest')).toEqual({ snapshot: 'latest', path: '/' });
    expect(parseRestoreSpec('latest:/home/me/docs')).toEqual({ snapshot: 'latest', path: '/home/me/docs' });
    expect(parseRestoreSpec('2026-11-22T030000Z:/home/me/a:b.txt')).toEqual({ snapshot: '2026-11-22T030000Z', path: '/home/me/a:b.txt' });
    expect(parseRestoreSpec('latest:home/me/')).toEqual({ snapshot: 'latest', path: '/home/me' });
    expect(parseRestoreSpec('latest:')).toEqual({ snapshot: 'latest', path: '/' });
  });

  it('refuses .., which a symlink on the way would give another meaning', () => {
    expect(() => parseRestoreSpec('latest:/../../etc')).toThrow(UsageError);
    expect(() => parseRestoreSpec('latest:/home/me/../you')).toThrow(/contains '\.\.'/);
    expect(parseRestoreSpec('latest:/home/me/..x').path).toBe('/home/me/..x');
  });

  it('needs a snapshot', () => {
    expect(() => parseRestoreSpec(':/home')).toThrow(UsageError);
  });
});

describe('mount [<vault>] [<snapshot>] <mountpoint>', () => {
  it('reads two words as snapshot and mountpoint when the first is one', () => {
    expect(splitMountArgs(['/mnt'])).toEqual({ mountpoint: '/mnt' });
    expect(splitMountArgs(['latest', '/mnt'])).toEqual({ snapshot: 'latest', mountpoint: '/mnt' });
    expect(splitMountArgs(['2026-11-22T030000Z', '/mnt'])).toEqual({ snapshot: '2026-11-22T030000Z', mountpoint: '/mnt' });
    expect(splitMountArgs(['laptop', '/mnt'])).toEqual({ vault: 'laptop', mountpoint: '/mnt' });
    expect(splitMountArgs(['laptop', 'latest', '/mnt'])).toEqual({ vault: 'laptop', snapshot: 'latest', mountpoint: '/mnt' });
    expect(() => splitMountArgs(['a', 'b', 'c', 'd'])).toThrow(UsageError);
  });
});
