import type { SFTPWrapper } from 'ssh2';
import { mkdirExclusive, PRIVATE_DIR, PRIVATE_FILE, readdirNames, readFile, rename, rmdir, stat, unlink, writeFile } from './sftp.js';

/**
 * The few file operations the remote locks need, so that their races can be
 * played out against an in-memory directory in unit tests. Everything they
 * make is private: servers such as ProFTPD apply the mode a client sends.
 */
export interface RemoteFiles {
  exists(path: string): Promise<boolean>;
  /** False when the directory exists already: atomic on the server. */
  mkdirExclusive(path: string): Promise<boolean>;
  /** Fails when `to` exists. */
  rename(from: string, to: string): Promise<void>;
  /** Empty when the directory does not exist. */
  readdir(dir: string): Promise<string[]>;
  /** Undefined when the file does not exist. */
  readFile(path: string): Promise<Buffer | undefined>;
  writeFile(path: string, data: string): Promise<void>;
  /** Succeeds when the file does not exist. */
  unlink(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
}

export function sftpFiles(sftp: SFTPWrapper): RemoteFiles {
  return {
    exists: async (path) => (await stat(sftp, path)) !== undefined,
    mkdirExclusive: (path) => mkdirExclusive(sftp, path, PRIVATE_DIR),
    rename: (from, to) => rename(sftp, from, to),
    readdir: (dir) => readdirNames(sftp, dir).catch((e: Error & { code?: number }) => (e.code === 2 ? [] : Promise.reject(e))),
    readFile: (path) => readFile(sftp, path),
    writeFile: (path, data) => writeFile(sftp, path, data, PRIVATE_FILE),
    unlink: (path) => unlink(sftp, path),
    rmdir: (path) => rmdir(sftp, path),
  };
}
