import { describe, expect, it } from 'vitest';
import { fingerprint, hostKeyAlgorithms, hostPattern, judgeHostKey, keyType } from '../../src/remote/known-hosts.js';
import { TrafficMeter } from '../../src/remote/traffic.js';
import { emptyCatalog, reconcile, upsert } from '../../src/snapshot/catalog.js';
import { parseMountinfo } from '../../src/stack/mount/mounts.js';
import { isLuks1, phdrUuid } from '../../src/stack/luks.js';
import { parseRuns } from '../../src/snapshot/runs.js';

function blob(type: string, body: string): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  return Buffer.concat([len, t, Buffer.from(body)]);
}

describe('known_hosts verdicts', () => {
  const key = blob('ssh-ed25519', 'AAAA');
  const other = blob('ssh-ed25519', 'BBBB');
  it('reads the key type and an OpenSSH-style fingerprint', () => {
    expect(keyType(key)).toBe('ssh-ed25519');
    expect(fingerprint(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
  it('names hosts as OpenSSH does', () => {
    expect(hostPattern('box', 22)).toBe('box');
    expect(hostPattern('127.0.0.1', 2222)).toBe('[127.0.0.1]:2222');
  });
  it('known, unknown, changed, revoked', () => {
    const k = { type: 'ssh-ed25519', blob: key.toString('base64'), revoked: false };
    expect(judgeHostKey(key, [k])).toEqual({ kind: 'known' });
    expect(judgeHostKey(key, [])).toEqual({ kind: 'unknown' });
    expect(judgeHostKey(other, [k])).toEqual({ kind: 'changed', knownTypes: ['ssh-ed25519'] });
    expect(judgeHostKey(key, [{ ...k, revoked: true }])).toEqual({ kind: 'revoked' });
  });
  it('asks the server for a key type we can check', () => {
    expect(hostKeyAlgorithms(['ssh-rsa', 'ssh-ed25519'])).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-ed25519']);
  });
});

describe('traffic meter', () => {
  it('splits a counter into phases; bytes before the connection count as zero', () => {
    let up = 0;
    let down = 0;
    const m = new TrafficMeter();
    m.begin('connect');
    m.attach({ up: () => up, down: () => down });
    up = 100;
    down = 300;
    m.begin('sync');
    up = 1100;
    down = 350;
    m.end();
    expect(m.phases.map((p) => [p.name, p.upBytes, p.downBytes])).toEqual([
      ['connect', 100, 300],
      ['sync', 1000, 50],
    ]);
    expect(m.totals()).toMatchObject({ upBytes: 1100, downBytes: 350 });
  });
});

describe('mountinfo', () => {
  it('parses targets with escaped spaces and fuse types', () => {
    const text = [
      '36 25 0:45 / /run/x\\040y rw,relatime shared:1 - fuse.sshfs sshvault:/srv rw,user_id=0',
      '40 25 7:0 / /state/fs rw,noatime - ext4 /dev/loop0 rw',
    ].join('\n');
    expect(parseMountinfo(text)).toEqual([
      { device: '0:45', target: '/run/x y', type: 'fuse.sshfs', source: 'sshvault:/srv' },
      { device: '7:0', target: '/state/fs', type: 'ext4', source: '/dev/loop0' },
    ]);
  });
});

describe('catalog', () => {
  it('directories are the truth; the catalog adds their stats', () => {
    let c = emptyCatalog('v');
    c = upsert(c, { name: '2026-11-22T030000Z', time: '2026-11-22T03:00:00.000Z', complete: true, files: 5, bytes: 50 });
    c = upsert(c, { name: '2026-11-20T030000Z', time: '2026-11-20T03:00:00.000Z', complete: true, files: 4, bytes: 40 });
    const r = reconcile(c, ['2026-11-22T030000Z', '2026-11-23T030000Z.partial', 'lost+found']);
    expect(r.snapshots).toEqual([
      { name: '2026-11-22T030000Z', time: '2026-11-22T03:00:00.000Z', complete: true, files: 5, bytes: 50 },
      { name: '2026-11-23T030000Z', time: '2026-11-23T03:00:00.000Z', complete: false, files: 0, bytes: 0 },
    ]);
  });
});

describe('LUKS1 header and run records', () => {
  it('recognises a LUKS1 phdr and reads its UUID', () => {
    const phdr = Buffer.alloc(592);
    Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe, 0, 1]).copy(phdr, 0);
    phdr.write('0b7c5a52-6a0e-4c1b-9c36-0c7f2f9b1a11', 168, 'latin1');
    expect(isLuks1(phdr)).toBe(true);
    expect(phdrUuid(phdr)).toBe('0b7c5a52-6a0e-4c1b-9c36-0c7f2f9b1a11');
    phdr.writeUInt16BE(2, 6);
    expect(isLuks1(phdr)).toBe(false);
  });
  it('a line cut short by a crash does not hide the runs before it', () => {
    const text = `${JSON.stringify({ id: 'a' })}\n${JSON.stringify({ id: 'b' })}\n{"id": "c", "upBy`;
    expect(parseRuns(text).map((r) => r.id)).toEqual(['a', 'b']);
  });
});
