import { execa } from 'execa';
import { cp, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, workspace } from '../helpers/cli.js';
import { forceCleanup } from '../helpers/cleanup.js';
import { setupVault, type TestVault } from '../helpers/vault.js';

/** The LUKS header region of the image (payload starts at 2 MiB): what key commands may change. */
async function header(image: string): Promise<Buffer> {
  const fh = await open(image, 'r');
  try {
    const b = Buffer.alloc(2 << 20);
    await fh.read(b, 0, b.length, 0);
    return b;
  } finally {
    await fh.close();
  }
}

/** Independent of sshvault: does cryptsetup accept this passphrase for the image file? */
async function opens(image: string, passphrase: string): Promise<boolean> {
  const r = await execa('cryptsetup', ['open', '--test-passphrase', '--key-file', '-', image], { input: passphrase, reject: false });
  return r.exitCode === 0;
}

/**
 * LUKS key slots through cryptsetup on the image file (no
 * device-mapper needed), never removing the last key that works.
 */
describe('key add, change, remove, backup-header', () => {
  let v: TestVault;
  let second: string;
  let third: string;
  const secondPass = 'second passphrase, for the new laptop';
  const thirdPass = 'third passphrase \u00e9\u00e8';

  beforeAll(async () => {
    v = await setupVault('keys');
    await v.push();
    second = join(v.scratch, 'second');
    third = join(v.scratch, 'third');
    await writeFile(second, `${secondPass}\n`, { mode: 0o600 });
    await writeFile(third, thirdPass, { mode: 0o600 });
  });

  afterAll(async () => {
    await v?.dispose();
  });

  const sv = (...args: string[]) => v.ws.sv([...args]);

  it('key add: the vault then opens with the new passphrase, and still with the old', async () => {
    const r = await sv('key', 'add', v.name, '--new-passphrase-file', second);
    expectOk(r, 'key add');
    expect(r.stdout).toContain('in key slot 1');
    expect(r.stdout).toMatch(/key\s+[\d.]+ \w*B/);
    expect(await opens(v.image, secondPass)).toBe(true);
    expect(await opens(v.image, v.ws.passphrase)).toBe(true);
    // The header changed on purpose: the local backup followed, so runs do not refuse the image.
    expectOk(await sv('list', v.name, '--refresh', '--passphrase-file', second), 'open with the new key');
    expectOk(await sv('push', v.name), 'push with the old key');
    expect(await v.leftovers()).toEqual([]);
  });

  it('key remove: names the slots when none is given, refuses the slot of the passphrase given', async () => {
    const none = await sv('key', 'remove', v.name);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain('slots in use are 0, 1');
    const own = await sv('key', 'remove', v.name, '--slot', '0');
    expect(own.exitCode).toBe(2);
    expect(own.stderr).toContain('your passphrase is the one in slot 0');
    const unused = await sv('key', 'remove', v.name, '--slot', '5', '--passphrase-file', second);
    expect(unused.exitCode).toBe(2);
    expect(await opens(v.image, v.ws.passphrase)).toBe(true);
  });

  it('key remove of the old key, authorised by the new one', async () => {
    expectOk(await sv('key', 'remove', v.name, '--slot', '0', '--passphrase-file', second), 'key remove');
    expect(await opens(v.image, v.ws.passphrase)).toBe(false);
    expect(await opens(v.image, secondPass)).toBe(true);
    const old = await sv('list', v.name, '--refresh');
    expect(old.exitCode).toBe(3);
    expect(await v.leftovers()).toEqual([]);
  });

  it('refuses to remove the last key', async () => {
    const before = await header(v.image);
    const r = await sv('key', 'remove', v.name, '--slot', '1', '--passphrase-file', second);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("only key");
    expect((await header(v.image)).equals(before)).toBe(true);
    expect(await opens(v.image, secondPass)).toBe(true);
  });

  it('a wrong passphrase changes nothing and exits 3', async () => {
    const before = await header(v.image);
    const r = await sv('key', 'add', v.name, '--new-passphrase-file', third);
    expect(r.exitCode).toBe(3);
    expect((await header(v.image)).equals(before)).toBe(true);
  });

  it('key change replaces the passphrase in place; pushes go on with the new one', async () => {
    expectOk(await sv('key', 'change', v.name, '--passphrase-file', second, '--new-passphrase-file', third), 'key change');
    expect(await opens(v.image, secondPass)).toBe(false);
    expect(await opens(v.image, thirdPass)).toBe(true);
    expectOk(await sv('push', v.name, '--passphrase-file', third), 'push with the changed key');
    expect(await v.leftovers()).toEqual([]);
  });

  it('backup-header accepts key slots changed on another machine', async () => {
    const other = await workspace(thirdPass);
    try {
      await cp(v.ws.env.XDG_CONFIG_HOME, other.env.XDG_CONFIG_HOME, { recursive: true });
      // That machine has no header backup of its own: it has to say that it trusts the remote one.
      expectOk(await other.sv(['key', 'add', v.name, '--passphrase-file', third, '--new-passphrase-file', second, '--trust-remote-header']), 'key add elsewhere');
    } finally {
      await forceCleanup(other.dir);
      await other.dispose();
    }
    const refused = await sv('push', v.name, '--passphrase-file', third);
    expect(refused.exitCode).toBe(3);
    expect(refused.stderr).toContain("run 'sshvault key backup-header'");
    // Needs no passphrase: the header holds no secret in the clear.
    const r = await v.ws.sv(['key', 'backup-header', v.name], { env: { SSHVAULT_PASSPHRASE: '' } });
    expectOk(r, 'key backup-header');
    expect(r.stdout).toContain('the key slots had changed');
    expectOk(await sv('push', v.name, '--passphrase-file', second), 'push after backup-header');
    expect(await v.leftovers()).toEqual([]);
  });
});
