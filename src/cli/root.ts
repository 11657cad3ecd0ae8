import { UsageError } from '../errors.js';

/**
 * Loop devices and mounts need root; without it the first losetup fails
 * deep in the stack with a message about permissions. Say it first, once.
 */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function requireRoot(command: string): void {
  if (!isRoot()) {
    throw new UsageError(`'sshvault ${command}' needs root: it attaches loop devices and mounts filesystems; run it as root (e.g. sudo sshvault ${command})`);
  }
}
