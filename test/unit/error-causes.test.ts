import { describe, expect, it } from 'vitest';
import { AuthError, CheckFailedError, ExitCode, LinkError, LockHeldError, SshvaultError, UsageError, VaultFullError } from '../../src/errors.js';
import { explain } from '../../src/remote/sftp.js';

describe('typed errors keep what they wrap', () => {
  it('every typed error takes a cause and keeps its exit code', () => {
    const cause = new Error('below');
    const made: [SshvaultError, number][] = [
      [new UsageError('u', { cause }), ExitCode.usage],
      [new AuthError('a', { cause }), ExitCode.auth],
      [new LinkError('l', { cause }), ExitCode.link],
      [new LockHeldError('h', { cause }), ExitCode.locked],
      [new VaultFullError('f', { cause }), ExitCode.full],
      [new CheckFailedError('c', { cause }), ExitCode.checkFailed],
    ];
    for (const [e, code] of made) {
      expect(e.cause).toBe(cause);
      expect(e.exitCode).toBe(code);
    }
  });

  it('a permission problem on the remote becomes a link error with the SFTP status as its cause', () => {
    const status = Object.assign(new Error('Permission denied'), { code: 3 });
    const e = explain(status, 'backups/vault.img', 'creating');
    expect(e).toBeInstanceOf(LinkError);
    expect(e.cause).toBe(status);
  });
});
