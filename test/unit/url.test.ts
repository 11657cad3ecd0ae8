import { describe, expect, it } from 'vitest';
import { formatRemote, parseRemote, type RemoteSpec } from '../../src/remote/url.js';

describe('parseRemote, URL form', () => {
  it.each<[string, RemoteSpec]>([
    ['ssh://host/srv/backup', { host: 'host', dir: '/srv/backup' }],
    ['ssh://bob@host/srv/backup', { user: 'bob', host: 'host', dir: '/srv/backup' }],
    ['ssh://bob@host:2222/srv/backup/', { user: 'bob', host: 'host', port: 2222, dir: '/srv/backup' }],
    ['ssh://bob@[::1]:2222/dir', { user: 'bob', host: '::1', port: 2222, dir: '/dir' }],
    ['ssh://[fe80::1]/dir', { host: 'fe80::1', dir: '/dir' }],
    ['ssh://127.0.0.1:22/d', { host: '127.0.0.1', port: 22, dir: '/d' }],
    ['ssh://host:/d', { host: 'host', dir: '/d' }],
    ['ssh://u123456.your-storagebox.de:23/home/vault', { host: 'u123456.your-storagebox.de', port: 23, dir: '/home/vault' }],
    ['ssh://me%40corp@host/d', { user: 'me@corp', host: 'host', dir: '/d' }],
    ['ssh://me@corp@host/d', { user: 'me@corp', host: 'host', dir: '/d' }],
    ['ssh://host/my%20backups', { host: 'host', dir: '/my backups' }],
    ['ssh://host//srv//x//', { host: 'host', dir: '/srv/x' }],
  ])('%s', (spec, expected) => {
    expect(parseRemote(spec)).toEqual(expected);
  });

  it('reads no path, /~ and /~/dir as the login directory and below', () => {
    expect(parseRemote('ssh://host')).toEqual({ host: 'host', dir: '.' });
    expect(parseRemote('ssh://host:2222')).toEqual({ host: 'host', port: 2222, dir: '.' });
    expect(parseRemote('ssh://host/~')).toEqual({ host: 'host', dir: '.' });
    expect(parseRemote('ssh://host/~/')).toEqual({ host: 'host', dir: '.' });
    expect(parseRemote('ssh://host/~/backups/a')).toEqual({ host: 'host', dir: 'backups/a' });
  });

  it('reads a lone slash as the root directory', () => {
    expect(parseRemote('ssh://host/')).toEqual({ host: 'host', dir: '/' });
  });

  it('leaves optional fields out rather than undefined', () => {
    expect(Object.keys(parseRemote('ssh://host/d')).sort()).toEqual(['dir', 'host']);
  });
});

describe('parseRemote, scp form', () => {
  it.each<[string, RemoteSpec]>([
    ['host:backups', { host: 'host', dir: 'backups' }],
    ['bob@host:backups/laptop/', { user: 'bob', host: 'host', dir: 'backups/laptop' }],
    ['bob@host:/srv/backup', { user: 'bob', host: 'host', dir: '/srv/backup' }],
    ['host:', { host: 'host', dir: '.' }],
    ['bob@host:~', { user: 'bob', host: 'host', dir: '.' }],
    ['host:~/backups', { host: 'host', dir: 'backups' }],
    ['host:/', { host: 'host', dir: '/' }],
    ['[::1]:backups', { host: '::1', dir: 'backups' }],
    ['bob@[2001:db8::7]:/srv', { user: 'bob', host: '2001:db8::7', dir: '/srv' }],
    ['me@corp@host:d', { user: 'me@corp', host: 'host', dir: 'd' }],
    ['host:dir:with:colons', { host: 'host', dir: 'dir:with:colons' }],
    ['host:a@b', { host: 'host', dir: 'a@b' }],
    ['my-alias:vault', { host: 'my-alias', dir: 'vault' }],
    ['host:my backups', { host: 'host', dir: 'my backups' }],
  ])('%s', (spec, expected) => {
    expect(parseRemote(spec)).toEqual(expected);
  });
});

describe('parseRemote rejects', () => {
  it.each<[string, RegExp]>([
    ['', /local path/],
    ['/srv/backup', /local path/],
    ['./dir:x', /local path/],
    ['backups', /local path/],
    [':dir', /no host/],
    ['bob@:dir', /no host/],
    ['ssh://', /no host/],
    ['ssh:///srv', /no host/],
    ['ssh://bob@/srv', /no host/],
    ['ssh://host:0/d', /bad port '0'/],
    ['ssh://host:65536/d', /bad port/],
    ['ssh://host:22x/d', /cannot read host and port/],
    ['ssh://::1/d', /cannot read host and port/],
    ['ssh://[::1/d', /cannot read host and port/],
    ['ssh://-oProxyCommand=x/d', /bad host '-oProxyCommand=x'/],
    ['-oProxyCommand=x:d', /bad host/],
    ['ssh://-l@host/d', /bad user name/],
    ['@host:d', /bad user name/],
    ['host:~root/x', /'~user' paths are not supported/],
    ['ssh://host/~root/x', /'~user' paths are not supported/],
    ['ssh://host/%zz', /bad %-escape/],
    ['sftp://host/dir', /'sftp:\/\/' is not supported/],
    ['https://host/dir', /not supported, only ssh:\/\//],
  ])('%j', (spec, message) => {
    expect(() => parseRemote(spec)).toThrow(message);
  });

  it('says what to write instead', () => {
    expect(() => parseRemote('/srv')).toThrow(/write ssh:\/\/\[user@\]host\[:port\]\/dir or \[user@\]host:dir/);
  });
});

describe('formatRemote', () => {
  it.each<[RemoteSpec, string]>([
    [{ host: 'host', dir: 'backups' }, 'host:backups'],
    [{ user: 'bob', host: 'host', dir: '.' }, 'bob@host:'],
    [{ host: '::1', dir: 'b' }, '[::1]:b'],
    [{ host: 'host', dir: '/srv/backup' }, 'ssh://host/srv/backup'],
    [{ user: 'bob', host: '::1', port: 2222, dir: '/dir' }, 'ssh://bob@[::1]:2222/dir'],
    [{ host: 'host', port: 2222, dir: 'backups' }, 'ssh://host:2222/~/backups'],
    [{ host: 'host', port: 2222, dir: '.' }, 'ssh://host:2222/~'],
    [{ user: 'me@corp', host: 'h', dir: '/d' }, 'ssh://me%40corp@h/d'],
    [{ host: 'h', dir: '/100%' }, 'ssh://h/100%25'],
  ])('%j -> %s', (r, text) => {
    expect(formatRemote(r)).toBe(text);
  });

  it.each([
    'ssh://bob@host:2222/srv/backup',
    'ssh://bob@[::1]:2222/dir',
    'ssh://host/~/x',
    'ssh://host:23',
    'ssh://h/100%25 done',
    'ssh://me%40corp@h/d',
    'bob@host:backups',
    'host:',
    '[::1]:b',
    'host:~/x',
    'host:/abs',
    'me@corp@host:d',
  ])('round-trips %s', (spec) => {
    const r = parseRemote(spec);
    expect(parseRemote(formatRemote(r))).toEqual(r);
  });
});
