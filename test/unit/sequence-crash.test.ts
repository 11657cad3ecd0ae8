import { execa } from 'execa';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { imageLayout } from '../../src/snapshot/layout.js';
import { writeImageSequence } from '../../src/snapshot/sequence.js';

/**
 * The write counter is what tells a rolled-back vault from a current one, so
 * no cut may lose it. ext4 without a journal orders nothing: a cut can land
 * any subset of the blocks a counter update dirtied. This builds every such
 * subset on a real image, lets e2fsck repair it as a push would, and reads
 * the counter back from outside with debugfs: it must be the old one or the
 * new one, never gone or garbled.
 */
const BLOCK = 1024;
let dir: string;
let img: string;
let mnt: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sshvault-seqcut-'));
  img = join(dir, 'fs.img');
  mnt = join(dir, 'mnt');
  const src = join(dir, 'src');
  await mkdir(join(src, '.sshvault'), { recursive: true });
  await mkdir(join(src, 'snapshots'), { recursive: true });
  await mkdir(mnt);
  // The options makeFilesystem uses for an ext4 vault.
  await execa('mkfs.ext4', ['-q', '-F', '-m', '0', '-b', String(BLOCK), '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard', '-d', src, img, '8M']);
});

afterEach(async () => {
  await execa('umount', [mnt], { reject: false });
  await rm(dir, { recursive: true, force: true });
});

async function withMounted(fn: (root: string) => Promise<void>): Promise<void> {
  await execa('mount', ['-o', 'loop,nosuid,nodev', img, mnt]);
  try {
    await fn(mnt);
  } finally {
    await execa('umount', [mnt]);
  }
}

async function counterOnImage(file: string): Promise<number | string> {
  const r = await execa('debugfs', ['-R', 'cat /.sshvault/sequence', file], { reject: false });
  try {
    return (JSON.parse(r.stdout) as { counter: number }).counter;
  } catch {
    return `unreadable: ${JSON.stringify(r.stdout.slice(0, 80))} ${r.stderr.trim()}`;
  }
}

function changedBlocks(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length / BLOCK; i++) {
    if (!a.subarray(i * BLOCK, (i + 1) * BLOCK).equals(b.subarray(i * BLOCK, (i + 1) * BLOCK))) out.push(i);
  }
  return out;
}

describe('write counter across a cut', () => {
  it('every subset of the blocks one update dirties repairs to the old or the new counter', async () => {
    const mark = (counter: number) => ({ counter, runId: `run-${counter}`, at: '2026-11-30T00:00:00.000Z' });
    await withMounted((root) => writeImageSequence(imageLayout(root), mark(1)));
    for (const c of [2, 3, 4, 5]) await withMounted((root) => writeImageSequence(imageLayout(root), mark(c)));
    const before = await readFile(img);
    await withMounted((root) => writeImageSequence(imageLayout(root), mark(6)));
    const after = await readFile(img);
    const blocks = changedBlocks(before, after);
    expect(blocks.length).toBeGreaterThan(0);
    expect(blocks.length, `blocks changed: ${blocks.join(' ')}`).toBeLessThanOrEqual(10);

    const cut = join(dir, 'cut.img');
    const found = new Map<string, number | string>();
    for (let subset = 0; subset < 1 << blocks.length; subset++) {
      const image = Buffer.from(before);
      blocks.forEach((b, i) => {
        if (subset & (1 << i)) after.copy(image, b * BLOCK, b * BLOCK, (b + 1) * BLOCK);
      });
      await writeFile(cut, image);
      const fsck = await execa('e2fsck', ['-f', '-y', cut], { reject: false });
      expect([0, 1, 2], fsck.stdout).toContain(fsck.exitCode);
      const landed = blocks.filter((_, i) => subset & (1 << i)).join(',');
      found.set(landed || 'none', await counterOnImage(cut));
    }
    const wrong = [...found].filter(([, c]) => c !== 5 && c !== 6);
    expect(wrong, 'blocks landed -> counter after repair').toEqual([]);
  });
});
