import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withHooks } from '../../src/cli/hooks.js';
import { LinkError } from '../../src/errors.js';
import type { RunRecord } from '../../src/snapshot/runs.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sshvault-hooks-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const record: RunRecord = { id: 'r', command: 'push', vault: 'v', snapshot: '2026-11-30T040413Z', started: '', finished: '', ok: false, exitCode: 4, changedBytes: 0, upBytes: 1234, downBytes: 56, phases: [] };
const capture = (name: string) => `{ cat; env | grep ^SSHVAULT_ | sort; } > ${join(dir, name)}`;

describe('push hooks', () => {
  it('on failure: the summary on stdin, the facts in SSHVAULT_*, and the error goes on', async () => {
    const p = withHooks('v', { onFailure: capture('fail'), onSuccess: capture('never') }, async (report) => {
      report(record, 'the summary\nsecond line');
      throw new LinkError('the connection to h was lost');
    });
    await expect(p).rejects.toThrow(/connection to h was lost/);
    const got = await readFile(join(dir, 'fail'), 'utf8');
    expect(got).toBe(
      [
        'the summary',
        'second line',
        'SSHVAULT_DOWN_BYTES=56',
        'SSHVAULT_EXIT_CODE=4',
        'SSHVAULT_MESSAGE=the connection to h was lost',
        'SSHVAULT_SNAPSHOT=2026-11-30T040413Z',
        'SSHVAULT_UP_BYTES=1234',
        'SSHVAULT_VAULT=v',
        '',
      ].join('\n'),
    );
    await expect(readFile(join(dir, 'never'))).rejects.toThrow();
  });

  it('on success, with escape codes stripped from the summary', async () => {
    const code = await withHooks('v', { onSuccess: capture('ok') }, async (report) => {
      report({ ...record, ok: true, exitCode: 0 }, '\x1b[32mSnapshot done\x1b[39m');
      return 0;
    });
    expect(code).toBe(0);
    expect(await readFile(join(dir, 'ok'), 'utf8')).toMatch(/^Snapshot done\nSSHVAULT_DOWN_BYTES=56\nSSHVAULT_EXIT_CODE=0\n/);
  });

  it('a failing hook changes nothing about the result', async () => {
    await expect(withHooks('v', { onSuccess: 'exit 3' }, async () => 0)).resolves.toBe(0);
    await expect(withHooks('v', { onFailure: 'exit 3' }, async () => { throw new LinkError('gone'); })).rejects.toMatchObject({ exitCode: 4 });
  });
});
