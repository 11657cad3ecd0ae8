/**
 * What sshvault keeps in the remote directory (docs/design.md, "Remote
 * layout"). The names are fixed; only the directory, and the image's name
 * in the config, vary.
 */
export const IMAGE_FILE = 'vault.img';
export const GENERATION_FILE = 'vault.generation';
const LOCK_DIR = 'vault.lock';
const READERS_DIR = 'vault.readers';
const OWNER_FILE = 'owner.json';

export function remotePath(dir: string, name: string): string {
  return dir === '.' ? name : `${dir.replace(/\/+$/, '')}/${name}`;
}

/** The owner's file in the lock, or in a staging directory on its way to becoming the lock. */
export function ownerFile(lockDir: string): string {
  return `${lockDir}/${OWNER_FILE}`;
}

export interface RemoteLayout {
  dir: string;
  image: string;
  generation: string;
  /** The write lock: a directory holding its owner's file. */
  lock: string;
  /** One file per reader, named by its run id. */
  readers: string;
  /** Where a run makes its lock before renaming it into place. */
  staging(runId: string): string;
  /** Whether a name in the directory is a lock staging directory. */
  isStaging(name: string): boolean;
  reader(runId: string): string;
}

export function remoteLayout(dir: string, image = IMAGE_FILE): RemoteLayout {
  return {
    dir,
    image: remotePath(dir, image),
    generation: remotePath(dir, GENERATION_FILE),
    lock: remotePath(dir, LOCK_DIR),
    readers: remotePath(dir, READERS_DIR),
    staging: (runId) => remotePath(dir, `${LOCK_DIR}.${runId}`),
    isStaging: (name) => name.startsWith(`${LOCK_DIR}.`),
    reader: (runId) => `${remotePath(dir, READERS_DIR)}/${runId}.json`,
  };
}
