import { describe, expect, it } from 'vitest';
import { checkVaultName, validateConfig } from '../../src/config/vault-config.js';
import { UsageError } from '../../src/errors.js';

const good = {
  name: 'laptop',
  vaultId: '0b7c5a52-6a0e-4c1b-9c36-0c7f2f9b1a11',
  remote: 'ssh://me@box:2222/srv/backup',
  image: 'vault.img',
  size: 20 * 2 ** 30,
  fs: 'ext4',
  engine: 'auto',
  sources: ['/home/me'],
  excludes: ['*.tmp'],
};

describe('vault config', () => {
  it('accepts a complete config and keeps optional fields out when absent', () => {
    const c = validateConfig(good, 'f.json');
    expect(c).toEqual(good);
    expect('identity' in c && c.identity !== undefined).toBe(false);
  });

  it('defaults missing source and exclude lists to empty', () => {
    const { sources: _s, excludes: _e, ...rest } = good;
    const c = validateConfig(rest, 'f.json');
    expect(c.sources).toEqual([]);
    expect(c.excludes).toEqual([]);
  });

  it('keeps the passphrase source and retention', () => {
    const c = validateConfig({ ...good, passphraseCommand: 'pass show backup', retention: { daily: 7, weekly: 4 } }, 'f.json');
    expect(c.passphraseCommand).toBe('pass show backup');
    expect(c.retention).toEqual({ daily: 7, weekly: 4 });
  });

  it('keeps the request timeout', () => {
    expect(validateConfig({ ...good, requestTimeoutSeconds: 300 }, 'f.json').requestTimeoutSeconds).toBe(300);
  });

  for (const [what, change, message] of [
    ['not an object', [], /not a JSON object/],
    ['a size that is not a number', { size: '20G' }, /'size' must be a positive number/],
    ['a negative size', { size: -1 }, /'size'/],
    ['an unknown filesystem', { fs: 'zfs' }, /'fs' must be btrfs, ext4 or ext2/],
    ['an unknown engine', { engine: 'fast' }, /'engine' must be auto, kernel or userspace/],
    ['an empty remote', { remote: '' }, /'remote' must be a non-empty string/],
    ['sources that are not strings', { sources: [1] }, /'sources' must be a list of strings/],
    ['an unknown retention rule', { retention: { forever: 1 } }, /unknown retention rule 'forever'/],
    ['a fractional retention count', { retention: { daily: 1.5 } }, /whole number/],
    ['a bad vault name', { name: '../etc' }, /invalid vault name/],
    ['a zero request timeout', { requestTimeoutSeconds: 0 }, /'requestTimeoutSeconds' must be a positive number of seconds/],
    ['a request timeout that is not a number', { requestTimeoutSeconds: '2m' }, /'requestTimeoutSeconds'/],
  ] as const) {
    it(`rejects ${what} with a usage error naming the file`, () => {
      const raw = Array.isArray(change) ? change : { ...good, ...change };
      let err: unknown;
      try {
        validateConfig(raw, '/cfg/laptop.json');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(message);
      if (what !== 'a bad vault name') expect((err as Error).message).toContain('/cfg/laptop.json');
    });
  }

  it('vault names: letters, digits, dot, dash, underscore; no path tricks', () => {
    expect(checkVaultName('my-vault_2.0')).toBe('my-vault_2.0');
    for (const bad of ['', '.hidden', 'a/b', 'a b', 'x'.repeat(64), '-flag']) expect(() => checkVaultName(bad)).toThrow(UsageError);
  });
});
