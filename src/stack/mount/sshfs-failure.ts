import { LinkError, UsageError, type SshvaultError } from '../../errors.js';
import { lastLine } from '../../exec.js';
import { sanitize } from '../../ui/sanitize.js';

/** How an sshfs that did not mount ended: whether it started at all, and what it said. */
export interface SshfsEnd {
  started: boolean;
  stderr: string;
  cause?: unknown;
}

/**
 * Why sshfs did not mount the remote directory, as an error the user can act
 * on: sshfs's own complaints about the remote name it `sshvault:<dir>`, its
 * complaints about this machine's FUSE do not.
 */
export function sshfsFailure(remoteDir: string, end: SshfsEnd): SshvaultError {
  const cause = end.cause === undefined ? undefined : { cause: end.cause };
  if (!end.started) {
    const why = end.cause instanceof Error ? end.cause.message : 'it did not run';
    return new UsageError(`sshfs could not be started (${why}); install it (apt-get install sshfs); 'sshvault doctor' lists what this machine lacks`, cause);
  }
  const said = sanitize(lastLine(end.stderr));
  if (/^sshvault:.*: No such file or directory$/.test(said)) {
    return new LinkError(`the remote directory ${remoteDir} is gone (sshfs: No such file or directory); check --remote or run 'sshvault init'`, cause);
  }
  if (/^fuse:|bad mount point|\/dev\/fuse/.test(said)) {
    return new UsageError(`this machine refused the FUSE mount of ${remoteDir} (${said}); run 'sshvault doctor'`, cause);
  }
  return new LinkError(`sshfs could not mount ${remoteDir}: ${said || 'timed out'}`, cause);
}
