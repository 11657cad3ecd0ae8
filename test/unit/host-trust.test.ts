import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostTrust } from '../../src/remote/host-trust.js';

/** Real keys from ssh-keygen and real known_hosts files, read through ssh-keygen -F as the product does. */
describe('host trust against known_hosts files', () => {
  let dir: string;
  let hostKey: Buffer;
  let hostLine: string;
  let caLine: string;
  const pattern = '[127.0.0.1]:2222';

  async function keypair(name: string): Promise<string> {
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(dir, name)]);
    return (await readFile(join(dir, `${name}.pub`), 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sshvault-trust-'));
    hostLine = await keypair('host');
    caLine = await keypair('ca');
    hostKey = Buffer.from(hostLine.split(' ')[1], 'base64');
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function files(user: string, global: string) {
    const sub = await mkdtemp(join(dir, 'case-'));
    const u = join(sub, 'known_hosts');
    const g = join(sub, 'ssh_known_hosts');
    if (user) await writeFile(u, user);
    if (global) await writeFile(g, global);
    return { u, g };
  }

  async function trust(user: string, global: string, acceptNew = false) {
    const { u, g } = await files(user, global);
    return { u, t: await HostTrust.load({ pattern, recordFile: u, lookupFiles: [u, g], acceptNew }) };
  }

  it('trusts a key listed only in the global file', async () => {
    const { t } = await trust('', `${pattern} ${hostLine}\n`);
    expect(await t.check(hostKey)).toBeUndefined();
    expect(t.algorithms()).toEqual(['ssh-ed25519']);
  });

  it('refuses a key revoked in the global file even when the user file lists it', async () => {
    const { t } = await trust(`${pattern} ${hostLine}\n`, `@revoked * ${hostLine}\n`);
    expect((await t.check(hostKey))?.message).toMatch(/marked @revoked/);
  });

  it('does not take a @cert-authority key for the host key, and says why the host is unknown', async () => {
    const { t } = await trust(`@cert-authority [127.0.0.1]:* ${caLine}\n`, '');
    const refused = await t.check(hostKey);
    expect(refused?.message).toMatch(/unknown host key .*@cert-authority.*cannot check host certificates.*--accept-new-host-key/);
    expect(t.algorithms()).toBeUndefined();
    const caKey = Buffer.from(caLine.split(' ')[1], 'base64');
    expect(await t.check(caKey)).toBeInstanceOf(Error);
  });

  it('records a new key once, however often the key exchange asks again', async () => {
    const { u, t } = await trust('', '', true);
    expect(await t.check(hostKey)).toBeUndefined();
    expect(await t.check(hostKey)).toBeUndefined();
    expect(await t.check(hostKey)).toBeUndefined();
    expect((await readFile(u, 'utf8')).trim().split('\n')).toEqual([`${pattern} ${hostLine}`]);
    // A second run that had not seen the first one's record.
    const again = await HostTrust.load({ pattern, recordFile: u, lookupFiles: [], acceptNew: true });
    expect(await again.check(hostKey)).toBeUndefined();
    expect((await readFile(u, 'utf8')).trim().split('\n')).toHaveLength(1);
  });

  it('names the file holding the old key when the key changed', async () => {
    const { g, t } = await (async () => {
      const f = await files('', `${pattern} ${caLine}\n`);
      return { g: f.g, t: await HostTrust.load({ pattern, recordFile: f.u, lookupFiles: [f.u, f.g], acceptNew: true }) };
    })();
    expect((await t.check(hostKey))?.message).toMatch(new RegExp(`CHANGED.*ssh-keygen -R '\\[127\\.0\\.0\\.1\\]:2222' -f ${g}`));
  });
});
