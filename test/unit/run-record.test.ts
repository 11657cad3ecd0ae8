import { describe, expect, it } from 'vitest';
import { ExitCode, LockHeldError } from '../../src/errors.js';
import { assembleRun, type RunFacts } from '../../src/session/run-record.js';

const who = { id: 'run-1', command: 'push', vault: 'home', fs: 'ext4', started: new Date('2026-01-02T03:04:05.000Z') };
const phases = [
  { name: 'connect', upBytes: 10, downBytes: 20, ms: 5 },
  { name: 'sync', upBytes: 300, downBytes: 40, ms: 50 },
];
const rsync = {
  files: 4,
  regularFiles: 3,
  dirs: 1,
  symlinks: 0,
  createdFiles: 1,
  deletedFiles: 0,
  transferredFiles: 1,
  totalFileSize: 99,
  transferredFileSize: 7,
  literalData: 7,
  matchedData: 0,
  fileListSize: 120,
  bytesSent: 500,
  bytesReceived: 60,
};
const facts: RunFacts = { snapshot: '2026-01-02T030405Z', changedBytes: 7, rsync, remoteFreeBytes: 1234, exitCode: ExitCode.warnings };

describe('assembleRun', () => {
  it('sums the phases it is given and keeps what the command learned', () => {
    const r = assembleRun(who, facts, { phases, engine: 'userspace', where: 'local' });
    expect(r).toMatchObject({
      id: 'run-1',
      command: 'push',
      vault: 'home',
      snapshot: '2026-01-02T030405Z',
      started: '2026-01-02T03:04:05.000Z',
      ok: true,
      exitCode: ExitCode.warnings,
      engine: 'userspace',
      fs: 'ext4',
      changedBytes: 7,
      upBytes: 310,
      downBytes: 60,
      phases,
      rsync,
      remoteFreeBytes: 1234,
    });
    expect(r.error).toBeUndefined();
  });

  it("keeps the remote's free space and the cache counters out of the image's copy", () => {
    const r = assembleRun(who, facts, { phases, engine: 'userspace', cache: { hitBytes: 1, missBytes: 2 }, where: 'image' });
    expect(r.remoteFreeBytes).toBeUndefined();
    expect(r.cache).toBeUndefined();
    expect(r.rsync).toEqual(rsync);
    const local = assembleRun(who, facts, { phases, engine: 'userspace', cache: { hitBytes: 1, missBytes: 2 }, where: 'local' });
    expect(local.cache).toEqual({ hitBytes: 1, missBytes: 2 });
  });

  it("a failed run takes its error's exit code and message; an error without one exits 1", () => {
    const locked = assembleRun(who, facts, { phases, error: new LockHeldError('the vault is locked'), where: 'local' });
    expect(locked).toMatchObject({ ok: false, exitCode: ExitCode.locked, error: 'the vault is locked' });
    const odd = assembleRun(who, {}, { phases: [], error: new Error('boom'), where: 'local' });
    expect(odd).toMatchObject({ ok: false, exitCode: 1, error: 'boom', changedBytes: 0, upBytes: 0, downBytes: 0 });
  });
});
