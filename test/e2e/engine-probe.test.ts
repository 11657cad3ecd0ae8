import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, workspace, type Workspace } from '../helpers/cli.js';
import { leftovers } from '../helpers/cleanup.js';

/**
 * A fresh machine whose /dev/mapper/control has no driver behind it, made in a
 * private mount namespace so that nothing else on this machine sees the fake
 * node: a char device with a major number no driver claims (240 is reserved
 * for local use) stands in for the control node.
 */
describe('engine probe on a machine whose device-mapper node has no driver', () => {
  let ws: Workspace;
  let scratch: string;

  beforeAll(async () => {
    // The namespace mounts over /dev/mapper. dmsetup and cryptsetup make this (empty) directory on first
    // use, as the product's own probe does on such a machine; a fresh machine may not have it yet.
    await mkdir('/dev/mapper', { recursive: true });
    ws = await workspace();
    scratch = await mkdtemp(join(tmpdir(), 'sshvault-probe-'));
  });

  afterAll(async () => {
    await ws?.dispose();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  /** Runs sshvault with a tmpfs on /dev/mapper holding only a driverless control node. */
  async function inFakeDev(args: string[]) {
    const script = 'mount -t tmpfs tmpfs /dev/mapper && mknod -m 600 /dev/mapper/control c 240 0 && exec "$@"';
    const r = await execa('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', BIN, ...args], {
      env: ws.env,
      reject: false,
      stdin: 'ignore',
    });
    return { exitCode: r.exitCode ?? -1, out: `${r.stdout}\n${r.stderr}` };
  }

  it('doctor names the missing driver, auto picks userspace and --engine kernel is refused with the same reason', async () => {
    const doctor = await inFakeDev(['doctor']);
    expect(doctor.out).toMatch(/engine: userspace \(the kernel has no device-mapper driver \(dmsetup version: .+\)/);
    expect(doctor.out).not.toMatch(/dm_crypt/);

    const init = await inFakeDev([
      'init', 'k', '--remote', 'ssh://root@127.0.0.1:1/nowhere', '--size', '64M', '--engine', 'kernel',
      '--passphrase-file', ws.passphraseFile,
    ]);
    expect(init.exitCode).toBe(2);
    expect(init.out).toMatch(/the kernel engine cannot run here: the kernel has no device-mapper driver \(dmsetup version: .+\); use --engine userspace/);
    expect(existsSync(join(ws.env.XDG_CONFIG_HOME, 'sshvault', 'k.json'))).toBe(false);
    expect(await leftovers(ws.dir)).toEqual([]);
  });
});
