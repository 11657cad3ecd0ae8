import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup, leftovers } from '../helpers/cleanup.js';
import { compareTrees } from '../helpers/independent.js';
import { startSshd, type SshdFixture } from '../helpers/sshd.js';
import { deviceMapperStatus } from '../../src/stack/engines/kernel.js';

// The product's own probe decides, so the test skips exactly where `init --engine kernel` would refuse.
const DM = await deviceMapperStatus();
const HAS_DM = DM.ok;
const TITLE = HAS_DM
  ? 'kernel engine (dm-crypt) on this machine'
  : `kernel engine (dm-crypt): skipped here, ${DM.reason}; test/vm/run-kernel-lane.sh runs it in a VM`;

// The reason is printed too: a skipped file's test names are not shown by the default reporter.
if (!HAS_DM) console.log(TITLE);

/** docs/design.md, "Tests and benchmarks": the kernel engine's own tests run where device-mapper exists. */
describe.skipIf(!HAS_DM)(TITLE, () => {
  let sshd: SshdFixture;
  let ws: Workspace;
  let scratch: string;

  beforeAll(async () => {
    sshd = await startSshd();
    ws = await workspace();
    scratch = await mkdtemp(join(tmpdir(), 'sshvault-kernel-'));
  });

  afterAll(async () => {
    if (ws) await forceCleanup(ws.dir);
    await sshd?.stop();
    await ws?.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('init, push, restore through dm-crypt leave nothing behind', async () => {
    const src = join(scratch, 'src');
    await mkdir(join(src, 'd'), { recursive: true });
    await writeFile(join(src, 'd', 'f.txt'), 'through dm-crypt\n');
    expectOk(
      await ws.sv([
        'init', 'k', '--remote', `ssh://root@127.0.0.1:${sshd.port}${sshd.remoteDir('k')}`, '--size', '64M', '--engine', 'kernel', '--fs', 'ext4',
        '--identity', sshd.userKeyPath, '--known-hosts', sshd.knownHostsPath, '--passphrase-file', ws.passphraseFile, '--source', src,
      ]),
      'init',
    );
    expectOk(await ws.sv(['push', 'k']), 'push');
    expect((await readdir('/dev/mapper')).filter((n) => n.startsWith('sshvault-k-'))).toEqual([]);
    const dest = join(scratch, 'out');
    expectOk(await ws.sv(['restore', 'k', `latest:${src}`, dest]), 'restore');
    expect(await compareTrees(src, dest)).toEqual([]);
    expect(await leftovers(ws.dir)).toEqual([]);
  });
});
