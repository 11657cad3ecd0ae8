import type { SFTPWrapper } from 'ssh2';
import { VaultFullError } from '../errors.js';
import { formatBytes } from '../ui/format.js';
import { freeBytes } from './sftp.js';

/**
 * Below this much free space a failed write is the remote disk running out:
 * OpenSSH's sftp-server answers a full disk with a bare "Failure", and a
 * sparse image grows with every block written, so statvfs is what tells.
 */
export const FULL_BELOW = 1 << 20;

/** What to tell the user when the remote disk is full, by command. */
export function fullAdvice(command: string): string {
  if (command === 'push') return 'the snapshot stays partial: free space on the remote or prune old snapshots, then push again';
  if (command === 'init') return 'nothing was left on the remote: free space there or choose a smaller --size, then run init again';
  return `free space on the remote, then run '${command}' again`;
}

/** A VaultFullError if the remote directory has (next to) no space left; undefined if it has, or cannot say. */
export async function remoteFullError(sftp: SFTPWrapper, dir: string, target: string, command: string, cause?: unknown): Promise<VaultFullError | undefined> {
  const free = await freeBytes(sftp, dir);
  if (free === undefined || free >= FULL_BELOW) return undefined;
  return new VaultFullError(`the remote disk is full (${formatBytes(free)} free on ${target}); ${fullAdvice(command)}`, { cause });
}
