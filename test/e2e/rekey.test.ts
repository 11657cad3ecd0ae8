import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk } from '../helpers/cli.js';
import { compareTrees, decryptImage, rdump } from '../helpers/independent.js';
import { setupVault, type TestVault } from '../helpers/vault.js';

/**
 * OpenSSH re-keys after a volume of data (by default about every GiB of a
 * 128-bit cipher, or what `RekeyLimit` says). A first push of a large tree
 * crosses that many times; here the server re-keys every 256 KiB, so every
 * phase of a run (SFTP, sshfs's channel, the block path) goes through it.
 */
describe('a server that re-keys often', () => {
  let v: TestVault;

  beforeAll(async () => {
    v = await setupVault('rekey', { size: '128M', sshd: { extraConfig: 'RekeyLimit 256K\nLogLevel DEBUG1' } });
  });

  afterAll(async () => {
    await v?.dispose();
  });

  it('pushes, lists and restores through many key exchanges', async () => {
    await writeFile(join(v.src, 'big.bin'), Buffer.alloc(6 << 20, 0x3c));
    const snapshot = await v.push();
    expectOk(await v.ws.sv(['list', 'rekey']), 'list');
    expectOk(await v.ws.sv(['check', 'rekey', '--verify-data']), 'check --verify-data');
    // Each exchange after the first of a connection is a re-key.
    const log = await readFile(v.sshd.logPath, 'utf8');
    const exchanges = log.split('\n').filter((l) => l.includes('SSH2_MSG_NEWKEYS received')).length;
    const connections = log.split('\n').filter((l) => l.includes('Accepted publickey')).length;
    expect(exchanges - connections).toBeGreaterThan(20);
    const raw = join(v.scratch, 'plain.raw');
    const out = join(v.scratch, 'out');
    await decryptImage(v.image, v.ws.passphrase, raw);
    await rdump(raw, `/snapshots/${snapshot}`, out);
    expect(await compareTrees(v.src, join(out, snapshot, v.src))).toEqual([]);
    expect(await v.leftovers()).toEqual([]);
  });
});
