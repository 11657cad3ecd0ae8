import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProgress2, parseRsyncStats } from '../../src/snapshot/rsync-stats.js';

// Captured from rsync 3.5.0 (the block is the same since 3.1, Debian 12's 3.2.7 included): a first copy of 1,505 entries into an existing directory.
const FIRST_RUN = `
Number of files: 1,505 (reg: 1,501, dir: 3, link: 1)
Number of created files: 1,504 (reg: 1,501, dir: 2, link: 1)
Number of deleted files: 0
Number of regular files transferred: 1,501
Total file size: 3,006,396 bytes
Total transferred file size: 3,006,393 bytes
Literal data: 3,006,393 bytes
Matched data: 0 bytes
File list size: 0
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 3,094,352
Total bytes received: 28,554

sent 3,094,352 bytes  received 28,554 bytes  6,245,812.00 bytes/sec
total size is 3,006,396  speedup is 0.96
`;

const INCREMENTAL = `
Number of files: 1,504 (reg: 1,500, dir: 3, link: 1)
Number of created files: 0
Number of deleted files: 1 (reg: 1)
Number of regular files transferred: 1
Total file size: 3,006,396 bytes
Total transferred file size: 4 bytes
Literal data: 4 bytes
Matched data: 0 bytes
File list size: 0
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 22,709
Total bytes received: 52

sent 22,709 bytes  received 52 bytes  15,174.00 bytes/sec
total size is 3,006,396  speedup is 132.09
`;

describe('parseRsyncStats on fixed output', () => {
  it('reads a first run with thousands separators', () => {
    expect(parseRsyncStats(FIRST_RUN)).toEqual({
      files: 1505,
      regularFiles: 1501,
      dirs: 3,
      symlinks: 1,
      createdFiles: 1504,
      deletedFiles: 0,
      transferredFiles: 1501,
      totalFileSize: 3006396,
      transferredFileSize: 3006393,
      literalData: 3006393,
      matchedData: 0,
      fileListSize: 0,
      bytesSent: 3094352,
      bytesReceived: 28554,
    });
  });

  it('reads an incremental run, where some counts have no breakdown', () => {
    const s = parseRsyncStats(INCREMENTAL);
    expect(s.createdFiles).toBe(0);
    expect(s.deletedFiles).toBe(1);
    expect(s.transferredFiles).toBe(1);
    expect(s.transferredFileSize).toBe(4);
    expect(s.bytesReceived).toBe(52);
  });

  it('reads 0 for file kinds the breakdown leaves out', () => {
    const s = parseRsyncStats(INCREMENTAL.replace('1,504 (reg: 1,500, dir: 3, link: 1)', '3 (reg: 3)'));
    expect([s.files, s.regularFiles, s.dirs, s.symlinks]).toEqual([3, 3, 0, 0]);
  });

  it('reads numbers without separators and with a dot as separator (other locales)', () => {
    expect(parseRsyncStats(FIRST_RUN.replaceAll(',', '')).totalFileSize).toBe(3006396);
    const dotted = FIRST_RUN.replace('Total file size: 3,006,396 bytes', 'Total file size: 3.006.396 bytes');
    expect(parseRsyncStats(dotted).totalFileSize).toBe(3006396);
  });

  it('reads the block after progress2 output ending in carriage returns', () => {
    const out = '      32,768   1%    0.00kB/s    0:00:00  \r   3,006,393 100%  314.42MB/s    0:00:00 (xfr#1501, to-chk=0/1505)\r' + FIRST_RUN;
    expect(parseRsyncStats(out).files).toBe(1505);
  });

  it('reads CRLF output', () => {
    expect(parseRsyncStats(FIRST_RUN.replaceAll('\n', '\r\n')).bytesSent).toBe(3094352);
  });

  it('reads the older label for transferred files', () => {
    const old = FIRST_RUN.replace('Number of regular files transferred: 1,501', 'Number of files transferred: 1,501');
    expect(parseRsyncStats(old).transferredFiles).toBe(1501);
  });

  it('throws when there is no stats block', () => {
    expect(() => parseRsyncStats('')).toThrow(/no --stats block/);
    expect(() => parseRsyncStats('sending incremental file list\na\nb\n\nsent 1 bytes  received 2 bytes\n')).toThrow(/no --stats block/);
  });

  it('throws naming the line a cut-short block lacks', () => {
    const cut = FIRST_RUN.slice(0, FIRST_RUN.indexOf('Total bytes received'));
    expect(() => parseRsyncStats(cut)).toThrow(/'Total bytes received'/);
  });

  it('refuses human-readable numbers rather than misreading them', () => {
    const human = FIRST_RUN.replace('Total file size: 3,006,396 bytes', 'Total file size: 3.01M bytes');
    expect(() => parseRsyncStats(human)).toThrow(/'Total file size'.*human-readable/);
  });
});

describe('parseRsyncStats on output of the rsync installed here', () => {
  let dir: string;
  const rsync = (...args: string[]) => execFileSync('rsync', args, { encoding: 'utf8' });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sshvault-rsync-'));
    mkdirSync(join(dir, 'src/sub/deeper'), { recursive: true });
    for (let i = 0; i < 1200; i++) writeFileSync(join(dir, 'src/sub', `f${i}`), `file ${i}\n`);
    writeFileSync(join(dir, 'src/big'), Buffer.alloc(2_000_000, 7));
    symlinkSync('big', join(dir, 'src/link'));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('counts a first copy, then a --link-dest snapshot that shares everything unchanged', () => {
    const src = `${join(dir, 'src')}/`;
    const first = parseRsyncStats(rsync('-a', '--stats', src, join(dir, 'snap1')));
    const contentBytes = 2_000_000 + Array.from({ length: 1200 }, (_, i) => `file ${i}\n`.length).reduce((a, b) => a + b, 0);
    expect(first).toMatchObject({
      files: 1205,
      regularFiles: 1201,
      dirs: 3,
      symlinks: 1,
      // The destination directory did not exist: rsync counts creating it too.
      createdFiles: 1205,
      deletedFiles: 0,
      transferredFiles: 1201,
      transferredFileSize: contentBytes,
      totalFileSize: contentBytes + 'big'.length,
    });
    expect(first.bytesSent).toBeGreaterThan(contentBytes);

    writeFileSync(join(dir, 'src/sub/f0'), 'changed!\n');
    const second = parseRsyncStats(rsync('-a', '--stats', `--link-dest=${join(dir, 'snap1')}`, src, join(dir, 'snap2')));
    expect(second.transferredFiles).toBe(1);
    expect(second.transferredFileSize).toBe('changed!\n'.length);
    expect(second.files).toBe(1205);
  });

  it('counts deletions and reads a dry run', () => {
    const src = `${join(dir, 'src')}/`;
    const dest = join(dir, 'mirror');
    rsync('-a', src, dest);
    rmSync(join(dir, 'src/sub/f1'));
    rmSync(join(dir, 'src/sub/f2'));
    const dry = parseRsyncStats(rsync('-a', '--delete', '--dry-run', '--stats', src, dest));
    expect(dry.deletedFiles).toBe(2);
    expect(dry.transferredFiles).toBe(0);
    const real = parseRsyncStats(rsync('-a', '--delete', '--stats', src, dest));
    expect(real.deletedFiles).toBe(2);
  });

  it('reads stats that follow --info=progress2 output, and the progress lines themselves', () => {
    const out = rsync('-a', '--stats', '--info=progress2', `${join(dir, 'src')}/`, join(dir, 'progress'));
    const lines = out.split(/[\r\n]/);
    const progress = lines.map(parseProgress2).filter((p) => p !== null);
    expect(progress.length).toBeGreaterThan(0);
    const last = progress[progress.length - 1]!;
    // rsync's percentage is of the total size, symlink targets included, so a finished copy may show 99%.
    expect(last.percent).toBeGreaterThanOrEqual(99);
    expect(last.xfr).toBeGreaterThan(0);
    expect(last.toCheck).toBe(0);
    expect(last.listComplete).toBe(true);
    const stats = parseRsyncStats(out);
    expect(last.bytes).toBe(stats.transferredFileSize);
    expect(last.total).toBe(stats.files);
  });

  it('refuses the output of --human-readable when a number has a suffix', () => {
    expect(() => parseRsyncStats(rsync('-a', '--stats', '-h', `${join(dir, 'src')}/`, join(dir, 'human')))).toThrow(/human-readable/);
  });
});

describe('parseProgress2', () => {
  it('reads a line with transfer and check counts', () => {
    expect(parseProgress2('  1,234,567  45%   12.34MB/s    0:00:01 (xfr#12, to-chk=34/100)')).toEqual({
      bytes: 1234567,
      percent: 45,
      rate: '12.34MB/s',
      xfr: 12,
      toCheck: 34,
      total: 100,
      listComplete: true,
    });
  });

  it('says the total may still grow during incremental recursion', () => {
    expect(parseProgress2('   3,000,000  99%  314.42MB/s    0:00:00 (xfr#1, ir-chk=1502/1504)')).toMatchObject({ toCheck: 1502, total: 1504, listComplete: false });
  });

  it('reads a line without the parenthesised part', () => {
    expect(parseProgress2('         32,768   1%    0.00kB/s    0:00:00  ')).toEqual({ bytes: 32768, percent: 1, rate: '0.00kB/s' });
  });

  it('reads long ETAs and plain numbers', () => {
    expect(parseProgress2('12345678901   3%   1.10MB/s  101:02:03')).toMatchObject({ bytes: 12345678901, percent: 3 });
  });

  it.each(['', 'sending incremental file list', 'Number of files: 7 (reg: 4, dir: 2, link: 1)', 'sent 22,709 bytes  received 52 bytes  15,174.00 bytes/sec', 'sub/f1'])(
    'is null for %j',
    (line) => {
      expect(parseProgress2(line)).toBeNull();
    },
  );
});
