import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expandHome, parseSshG } from '../../src/remote/ssh-config.js';

// The lines that matter from OpenSSH 9.2p1's `ssh -G -p 2222 -l bob -i /tmp/k -J jump example.com`.
const JUMP = `host example.com
user bob
hostname example.com
port 2222
compression no
hashknownhosts yes
identitiesonly no
stricthostkeychecking ask
serveralivecountmax 3
serveraliveinterval 0
ciphers chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com
identityfile /tmp/k
identityfile ~/.ssh/id_rsa
identityfile ~/.ssh/id_ed25519
globalknownhostsfile /etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2
userknownhostsfile ~/.ssh/known_hosts ~/.ssh/known_hosts2
sendenv LANG
sendenv LC_*
proxyjump jump
`;

/** `ssh -G` with no user or system config, so the test sees OpenSSH's own defaults. */
function sshG(...args: string[]): string {
  return execFileSync('ssh', ['-F', '/dev/null', '-G', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

describe('parseSshG on fixed output', () => {
  it('reads every field', () => {
    expect(parseSshG(JUMP)).toEqual({
      hostname: 'example.com',
      port: 2222,
      user: 'bob',
      identityFiles: ['/tmp/k', '~/.ssh/id_rsa', '~/.ssh/id_ed25519'],
      identitiesOnly: false,
      proxyJump: 'jump',
      proxyCommand: undefined,
      userKnownHostsFiles: ['~/.ssh/known_hosts', '~/.ssh/known_hosts2'],
      globalKnownHostsFiles: ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
      strictHostKeyChecking: 'ask',
      hashKnownHosts: true,
      serverAliveInterval: 0,
      compression: false,
      ciphers: [
        'chacha20-poly1305@openssh.com',
        'aes128-ctr',
        'aes192-ctr',
        'aes256-ctr',
        'aes128-gcm@openssh.com',
        'aes256-gcm@openssh.com',
      ],
      identityAgent: undefined,
    });
  });

  it('reads switched-off options as absent and true/false flags like yes/no', () => {
    const h = parseSshG(
      JUMP.replace('proxyjump jump', 'proxyjump none\nproxycommand none\nidentityagent none')
        .replace('userknownhostsfile ~/.ssh/known_hosts ~/.ssh/known_hosts2', 'userknownhostsfile none')
        .replace('compression no', 'compression yes')
        .replace('hashknownhosts yes', 'hashknownhosts no')
        .replace('identitiesonly no', 'identitiesonly true'),
    );
    expect(h.proxyJump).toBeUndefined();
    expect(h.proxyCommand).toBeUndefined();
    // "Use no agent" must stay distinguishable from "no IdentityAgent setting".
    expect(h.identityAgent).toBe('none');
    expect(h.userKnownHostsFiles).toEqual([]);
    expect([h.compression, h.hashKnownHosts, h.identitiesOnly]).toEqual([true, false, true]);
  });

  it('keeps a proxy command whole, spaces and tokens included', () => {
    expect(parseSshG(JUMP.replace('proxyjump jump', 'proxycommand ssh -W %h:%p  gateway')).proxyCommand).toBe('ssh -W %h:%p  gateway');
  });

  it('reads CRLF and stray blank lines', () => {
    expect(parseSshG(`\n${JUMP.replaceAll('\n', '\r\n')}\n\n`).port).toBe(2222);
  });

  it('throws when a required key is missing or malformed', () => {
    expect(() => parseSshG('')).toThrow(/printed no 'hostname'/);
    expect(() => parseSshG(JUMP.replace('port 2222\n', ''))).toThrow(/printed no 'port'/);
    expect(() => parseSshG(JUMP.replace('port 2222', 'port ssh'))).toThrow(/'port ssh', not a whole number/);
  });
});

describe('parseSshG on the ssh installed here', () => {
  it('reads the defaults for a plain host name', () => {
    const h = parseSshG(sshG('example.com'));
    expect(h.hostname).toBe('example.com');
    expect(h.port).toBe(22);
    expect(h.user.length).toBeGreaterThan(0);
    expect(h.identityFiles).toContain('~/.ssh/id_ed25519');
    expect(h.proxyJump).toBeUndefined();
    expect(h.proxyCommand).toBeUndefined();
    expect(h.userKnownHostsFiles.length).toBeGreaterThanOrEqual(1);
    expect(h.globalKnownHostsFiles).toContain('/etc/ssh/ssh_known_hosts');
    expect(h.strictHostKeyChecking).toBe('ask');
    expect(h.ciphers).toContain('chacha20-poly1305@openssh.com');
  });

  it('reads port, user, identity and jump host given on the command line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sshvault-sshg-'));
    try {
      const key = join(dir, 'k');
      writeFileSync(key, '');
      const h = parseSshG(sshG('-p', '2222', '-l', 'bob', '-i', key, '-J', 'jump', 'example.com'));
      expect(h).toMatchObject({ hostname: 'example.com', port: 2222, user: 'bob', proxyJump: 'jump' });
      expect(h.identityFiles[0]).toBe(key);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads options given with -o, including several known-hosts files', () => {
    const h = parseSshG(
      sshG(
        '-o', 'StrictHostKeyChecking=accept-new',
        '-o', 'ServerAliveInterval=15',
        '-o', 'Compression=yes',
        '-o', 'IdentitiesOnly=yes',
        '-o', 'UserKnownHostsFile=/tmp/a /tmp/b',
        '-o', 'ProxyCommand=nc %h %p',
        '-o', 'Ciphers=aes128-gcm@openssh.com',
        '-o', 'IdentityAgent=none',
        '::1',
      ),
    );
    expect(h).toMatchObject({
      hostname: '::1',
      strictHostKeyChecking: 'accept-new',
      serverAliveInterval: 15,
      compression: true,
      identitiesOnly: true,
      userKnownHostsFiles: ['/tmp/a', '/tmp/b'],
      proxyCommand: 'nc %h %p',
      ciphers: ['aes128-gcm@openssh.com'],
      identityAgent: 'none',
    });
  });
});

describe('expandHome', () => {
  it.each([
    ['~', '/home/bob'],
    ['~/.ssh/id_ed25519', '/home/bob/.ssh/id_ed25519'],
    ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts'],
    ['~alice/.ssh/id_rsa', '~alice/.ssh/id_rsa'],
    ['relative/~/x', 'relative/~/x'],
  ])('%s -> %s', (path, expanded) => {
    expect(expandHome(path, '/home/bob')).toBe(expanded);
  });

  it('does not double a trailing slash of home', () => {
    expect(expandHome('~/.ssh/k', '/root/')).toBe('/root/.ssh/k');
  });
});
