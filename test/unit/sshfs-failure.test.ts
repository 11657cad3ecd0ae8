import { describe, expect, it } from 'vitest';
import { ExitCode, LinkError, UsageError } from '../../src/errors.js';
import { sshfsFailure } from '../../src/stack/mount/sshfs-failure.js';

describe('why sshfs did not mount', () => {
  it('sshfs missing is a usage error naming the package, with the start failure as its cause', () => {
    const cause = Object.assign(new Error('spawn sshfs ENOENT'), { code: 'ENOENT' });
    const e = sshfsFailure('backups/laptop', { started: false, stderr: '', cause });
    expect(e).toBeInstanceOf(UsageError);
    expect(e.exitCode).toBe(ExitCode.usage);
    expect(e.message).toMatch(/sshfs could not be started.*apt-get install sshfs/);
    expect(e.cause).toBe(cause);
  });

  it('a remote directory that is gone is a link error that says so', () => {
    const e = sshfsFailure('backups/laptop', { started: true, stderr: 'sshvault:backups/laptop: No such file or directory\n' });
    expect(e).toBeInstanceOf(LinkError);
    expect(e.exitCode).toBe(ExitCode.link);
    expect(e.message).toBe("the remote directory backups/laptop is gone (sshfs: No such file or directory); check --remote or run 'sshvault init'");
  });

  it('a mount this machine refuses is a usage error pointing at doctor', () => {
    for (const stderr of ["fuse: device not found, try 'modprobe fuse' first\n", "sshfs: bad mount point `/x/run/remote': No such file or directory\n"]) {
      const e = sshfsFailure('backups/laptop', { started: true, stderr });
      expect(e).toBeInstanceOf(UsageError);
      expect(e.message).toMatch(/^this machine refused the FUSE mount of backups\/laptop \(.+\); run 'sshvault doctor'/);
    }
  });

  it('anything else, or no word at all, stays a link error with what sshfs said', () => {
    expect(sshfsFailure('d', { started: true, stderr: 'sshvault:d: Permission denied\n' })).toEqual(new LinkError('sshfs could not mount d: sshvault:d: Permission denied'));
    expect(sshfsFailure('d', { started: true, stderr: '' }).message).toBe('sshfs could not mount d: timed out');
    expect(sshfsFailure('d', { started: true, stderr: 'read: \u001b[2Jgone\n' }).message).not.toMatch(/\u001b/);
  });
});
