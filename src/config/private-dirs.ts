import { lstat, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UsageError } from '../errors.js';
import { cacheRoot, stateRoot, type VaultPaths } from './paths.js';

/**
 * sshvault's state, run and cache directories hold key FIFOs, mountpoints,
 * sockets, the LUKS header and ciphertext blocks. A directory there that
 * someone else owns or can write to, or a symlink, would let another user
 * swap what sshvault mounts, reads or deletes: refused, never repaired.
 */
export async function checkPrivateDir(dir: string, create: boolean): Promise<void> {
  let st = await lstat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return undefined;
    throw e;
  });
  if (!st) {
    if (!create) return;
    await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
    await mkdir(dir, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    st = await lstat(dir);
  }
  if (st.isSymbolicLink()) {
    throw new UsageError(`${dir} is a symlink; sshvault does not follow symlinks where it keeps keys and mounts: replace it with a directory of your own (mkdir -m 700)`);
  }
  if (!st.isDirectory()) throw new UsageError(`${dir} is not a directory; move it away so sshvault can make its own`);
  const uid = process.getuid!();
  if (st.uid !== uid) throw new UsageError(`${dir} is owned by uid ${st.uid}, not by you (uid ${uid}); sshvault will not use it: remove it or chown it to yourself`);
  if (st.mode & 0o022) throw new UsageError(`${dir} is writable by group or others; make it private with 'chmod go-w ${dir}'`);
}

/**
 * Checks the vault's state, run and cache directories, outermost first, and
 * makes the state directory (0700) if missing; the rest are made by the run
 * that needs them, and checked here once they exist.
 */
export async function checkVaultDirs(paths: VaultPaths): Promise<void> {
  await checkPrivateDir(stateRoot(), true);
  await checkPrivateDir(paths.state, true);
  await checkPrivateDir(paths.run, false);
  await checkPrivateDir(cacheRoot(), false);
  await checkPrivateDir(dirname(paths.blockCache), false);
  await checkPrivateDir(paths.blockCache, false);
}
