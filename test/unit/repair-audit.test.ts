import { execa } from 'execa';
import { link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseUndoFile, UndoFormatError } from '../../src/stack/filesystems/ext/e2undo.js';
import { auditRepair, changedNames, matchesUndo, pathMayChange } from '../../src/stack/filesystems/ext/repair-audit.js';

/**
 * Real small images (local files, no vault): the undo file e2fsck writes,
 * and the audit's verdict on what a repair changed.
 */
let dir: string;
let img: string;
let undo: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sshvault-audit-'));
  img = join(dir, 'fs.img');
  undo = join(dir, 'repair.e2undo');
  const src = join(dir, 'src');
  for (const d of ['snapshots/A/d', 'snapshots/B.partial/d', '.sshvault/manifests']) await mkdir(join(src, d), { recursive: true });
  await writeFile(join(src, 'snapshots/A/d/shared'), 'in both snapshots\n'.repeat(100));
  await writeFile(join(src, 'snapshots/A/only-a'), 'only in the complete one\n'.repeat(100));
  await writeFile(join(src, 'snapshots/B.partial/d/new'), 'half-copied\n'.repeat(100));
  await link(join(src, 'snapshots/A/d/shared'), join(src, 'snapshots/B.partial/d/shared'));
  await writeFile(join(src, '.sshvault/manifests/A.sha256.gz'), 'manifest');
  // The options makeFilesystem uses for an ext4 vault.
  await execa('mkfs.ext4', ['-q', '-F', '-m', '0', '-b', '1024', '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard', '-d', src, img, '8M']);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function debugfsWrite(...requests: string[]): Promise<void> {
  for (const r of requests) await execa('debugfs', ['-w', '-R', r, img]);
}

async function repair(): Promise<number> {
  const r = await execa('e2fsck', ['-f', '-y', '-z', undo, img], { reject: false });
  expect([0, 1, 2], r.stdout + r.stderr).toContain(r.exitCode);
  return r.exitCode!;
}

describe('e2undo parser', () => {
  it('lists the old contents of exactly the blocks e2fsck changed', async () => {
    await debugfsWrite('sif /snapshots/B.partial/d/new block[0] 999999999', 'ssv state 0');
    const before = await readFile(img);
    expect(await repair()).toBe(1);
    const after = await readFile(img);
    const u = parseUndoFile(await readFile(undo));
    expect(u.finished).toBe(true);
    expect(u.fsBlockSize).toBe(1024);
    expect(u.extents.length).toBeGreaterThan(0);
    const covered = new Set<number>();
    for (const e of u.extents) {
      expect(e.old.equals(before.subarray(e.offset, e.offset + e.old.length))).toBe(true);
      for (let b = e.offset / 1024; b < (e.offset + e.old.length) / 1024; b++) covered.add(b);
    }
    const changed: number[] = [];
    for (let b = 0; b < before.length / 1024; b++) {
      if (!before.subarray(b * 1024, (b + 1) * 1024).equals(after.subarray(b * 1024, (b + 1) * 1024))) changed.push(b);
    }
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.filter((b) => !covered.has(b))).toEqual([]);
  });

  it('refuses a file that is not an undo file or whose checksums do not match', async () => {
    await debugfsWrite('ssv state 0');
    await repair();
    const good = await readFile(undo);
    expect(() => parseUndoFile(Buffer.alloc(4096))).toThrow(UndoFormatError);
    const bad = Buffer.from(good);
    bad[bad.length - 1] ^= 1;
    expect(() => parseUndoFile(bad)).toThrow(/checksum/);
  });
});

describe('repair audit', () => {
  it('allows what a cut leaves: a damaged .partial and link counts off on shared inodes', async () => {
    await debugfsWrite('sif /snapshots/A/d/shared links_count 1', 'sif /snapshots/B.partial/d/new block[0] 999999999', 'ssv state 0');
    await repair();
    expect(await auditRepair(img, parseUndoFile(await readFile(undo)))).toEqual([]);
  });

  it('refuses a repair of a complete snapshot\u2019s inode, and e2undo puts the image back byte for byte', async () => {
    await debugfsWrite('sif /snapshots/A/only-a block[0] 999999999', 'ssv state 0');
    const before = await readFile(img);
    await repair();
    const u = parseUndoFile(await readFile(undo));
    const problems = await auditRepair(img, u);
    expect(problems.join('\n')).toMatch(/\/snapshots\/A/);
    await execa('e2undo', [undo, img]);
    expect(await matchesUndo(img, u)).toBe(true);
    expect((await readFile(img)).equals(before)).toBe(true);
  });

  it('refuses a repair that removes a complete snapshot\u2019s directory entry', async () => {
    await debugfsWrite('clri /snapshots/A/d', 'ssv state 0');
    await repair();
    expect((await auditRepair(img, parseUndoFile(await readFile(undo)))).join('\n')).toMatch(/\(\/snapshots\/A\) would change/);
  });

  it('judges paths and directory entries by whether a complete snapshot holds them', async () => {
    const complete = new Set(['A']);
    expect(pathMayChange('/snapshots/B.partial/x', complete)).toBe(true);
    expect(pathMayChange('/snapshots/A/x', complete)).toBe(false);
    expect(pathMayChange('/snapshots', complete)).toBe(false);
    expect(pathMayChange('/lost+found/#12', complete)).toBe(true);
    expect(pathMayChange('/.sshvault/catalog.json', complete)).toBe(true);
    expect(pathMayChange('/.sshvault/manifests/A.sha256.gz', complete)).toBe(false);
    expect(pathMayChange('/.sshvault/manifests/B.sha256.gz', complete)).toBe(true);
    const entry = (ino: number, name: string, recLen: number) => {
      const b = Buffer.alloc(recLen);
      b.writeUInt32LE(ino, 0);
      b.writeUInt16LE(recLen, 4);
      b[6] = name.length;
      b[7] = 2;
      b.write(name, 8, 'latin1');
      return b;
    };
    const a = Buffer.concat([entry(12, 'A', 12), entry(13, 'B.partial', 1012)]);
    const b = Buffer.concat([entry(12, 'A', 1024)]);
    expect(changedNames(a, b)).toEqual(['B.partial']);
    expect(changedNames(b, Buffer.concat([entry(14, 'A', 1024)]))).toEqual(['A']);
  });
});

