import { chmod, chown, lstat, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPrivateDir } from '../../src/config/private-dirs.js';
import { UsageError } from '../../src/errors.js';

describe('checkPrivateDir', () => {
  let top: string;

  beforeAll(async () => {
    top = await mkdtemp(join(tmpdir(), 'sshvault-private-dirs-'));
  });

  afterAll(async () => {
    await rm(top, { recursive: true, force: true });
  });

  it('makes a missing directory 0700 when asked to, and leaves it missing otherwise', async () => {
    await checkPrivateDir(join(top, 'made', 'here'), true);
    expect((await lstat(join(top, 'made', 'here'))).mode & 0o777).toBe(0o700);
    await checkPrivateDir(join(top, 'absent'), false);
    await expect(lstat(join(top, 'absent'))).rejects.toThrow(/ENOENT/);
    await writeFile(join(top, 'a-file'), '');
    await checkPrivateDir(join(top, 'a-file', 'below'), false);
  });

  it('accepts a directory of ours that only we can write', async () => {
    await mkdir(join(top, 'ok'), { mode: 0o755 });
    await chmod(join(top, 'ok'), 0o755);
    await checkPrivateDir(join(top, 'ok'), false);
  });

  it('refuses a directory writable by group or others', async () => {
    for (const mode of [0o770, 0o707]) {
      const dir = join(top, `w${mode.toString(8)}`);
      await mkdir(dir);
      await chmod(dir, mode);
      await expect(checkPrivateDir(dir, false)).rejects.toThrow(UsageError);
      await expect(checkPrivateDir(dir, true)).rejects.toThrow(`chmod go-w ${dir}`);
    }
  });

  it("refuses someone else's directory", async () => {
    const dir = join(top, 'theirs');
    await mkdir(dir, { mode: 0o700 });
    await chown(dir, process.getuid!() + 1234, 0);
    await expect(checkPrivateDir(dir, true)).rejects.toThrow(/is owned by uid \d+, not by you/);
  });

  it('refuses a symlink, even to a private directory of ours', async () => {
    await mkdir(join(top, 'real'), { mode: 0o700 });
    await symlink(join(top, 'real'), join(top, 'link'));
    await expect(checkPrivateDir(join(top, 'link'), true)).rejects.toThrow(/is a symlink/);
  });

  it('refuses something that is not a directory', async () => {
    await writeFile(join(top, 'plain'), '');
    await expect(checkPrivateDir(join(top, 'plain'), false)).rejects.toThrow(/is not a directory/);
  });
});
