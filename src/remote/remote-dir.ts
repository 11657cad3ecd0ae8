import type { SFTPWrapper } from 'ssh2';
import { mkdirExclusive, PRIVATE_DIR, PRIVATE_FILE, readdirNames, readFile, rename, rmdir, stat, unlink, writeFile } from './sftp.js';

/**
 * The few file operations on the remote directory that the locks need, so
 * that their races can be played out against an in-memory directory in unit
 * tests. Everything they make is private: servers such as ProFTPD apply the
 * mode a client sends.
 */
export interface RemoteDir {
  /** Undefined when nothing is there. */
  stat(path: string): Promise<{ isDirectory: boolean } | undefined>;
  /** False when the directory exists already: atomic on the server. */
  mkdirExclusive(path: string): Promise<boolean>;
  /** Fails when `to` exists. */
  rename(from: string, to: string): Promise<void>;
  /** Empty when the directory does not exist. */
  readdir(dir: string): Promise<string[]>;
  /** Undefined when the file does not exist. */
  read(path: string): Promise<Buffer | undefined>;
  write(path: string, data: string): Promise<void>;
  /** A file, or a directory that is empty; nothing there is no error. */
  remove(path: string): Promise<void>;
}

export function sftpDir(sftp: SFTPWrapper): RemoteDir {
  return {
    stat: async (path) => {
      const st = await stat(sftp, path);
      return st && { isDirectory: st.isDirectory() };
    },
    mkdirExclusive: (path) => mkdirExclusive(sftp, path, PRIVATE_DIR),
    rename: (from, to) => rename(sftp, from, to),
    readdir: (dir) => readdirNames(sftp, dir),
    read: (path) => readFile(sftp, path),
    write: (path, data) => writeFile(sftp, path, data, PRIVATE_FILE),
    remove: async (path) => {
      const st = await stat(sftp, path);
      if (st?.isDirectory()) await rmdir(sftp, path);
      else if (st) await unlink(sftp, path);
    },
  };
}
