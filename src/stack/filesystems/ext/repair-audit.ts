import { open } from 'node:fs/promises';
import { run } from '../../../exec.js';
import type { UndoFile } from './e2undo.js';

/**
 * Judges a repair e2fsck made (its undo file: old contents; the device: new
 * contents) by what it changed. Allowed: summary metadata (superblocks,
 * group descriptors, bitmaps), link counts and ctimes of any inode (a cut
 * link-dest leaves those off on inodes complete snapshots share), and
 * anything that belongs only to an unfinished `.partial`, lost+found or
 * sshvault's own files besides complete snapshots' manifests. Anything else
 * could be a complete snapshot's content, which nothing unattended may touch.
 */

export interface Geometry {
  blockSize: number;
  inodeSize: number;
  inodesPerGroup: number;
  firstInode: number;
  /** Superblocks, group descriptors, reserved GDT blocks and bitmaps, as inclusive ranges. */
  summary: [number, number][];
  inodeTables: { group: number; first: number; last: number }[];
}

function headerNumber(out: string, field: string): number {
  const m = new RegExp(`^${field}:\\s*(\\d+)`, 'm').exec(out);
  if (!m) throw new Error(`dumpe2fs output lacks "${field}"`);
  return Number(m[1]);
}

/** The block layout `dumpe2fs` (without -h) prints. */
export function parseGeometry(out: string): Geometry {
  const range = (a: string, b?: string): [number, number] => [Number(a), Number(b ?? a)];
  const summary: [number, number][] = [];
  for (const m of out.matchAll(/superblock at (\d+)/g)) summary.push(range(m[1]!));
  for (const m of out.matchAll(/(?:Group descriptors|Reserved GDT blocks) at (\d+)-(\d+)/g)) summary.push(range(m[1]!, m[2]));
  for (const m of out.matchAll(/(?:Block|Inode) bitmap at (\d+)/g)) summary.push(range(m[1]!));
  const inodeTables: Geometry['inodeTables'] = [];
  for (const g of out.split(/^Group /m).slice(1)) {
    const m = /Inode table at (\d+)-(\d+)/.exec(g);
    if (m) inodeTables.push({ group: Number(/^(\d+)/.exec(g)![1]), first: Number(m[1]), last: Number(m[2]) });
  }
  return {
    blockSize: headerNumber(out, 'Block size'),
    inodeSize: headerNumber(out, 'Inode size'),
    inodesPerGroup: headerNumber(out, 'Inodes per group'),
    firstInode: headerNumber(out, 'First inode'),
    summary,
    inodeTables,
  };
}

/** Byte ranges of an inode that may change without changing what the inode holds. */
const VOLATILE_INODE_BYTES: [number, number][] = [
  [0x0c, 0x10], // i_ctime
  [0x1a, 0x1c], // i_links_count
  [0x7c, 0x7e], // l_i_checksum_lo
  [0x82, 0x88], // i_checksum_hi, i_ctime_extra
];

export function inodeContentDiffers(a: Buffer, b: Buffer): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  for (const [s, e] of VOLATILE_INODE_BYTES) {
    if (s >= x.length) continue;
    x.fill(0, s, Math.min(e, x.length));
    y.fill(0, s, Math.min(e, y.length));
  }
  return !x.equals(y);
}

/** The live entries of one directory block, as "name/inode/type" strings (names only from byte-exact parsing). */
export function directoryEntries(block: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off + 8 <= block.length) {
    const inode = block.readUInt32LE(off);
    const recLen = block.readUInt16LE(off + 4);
    const nameLen = block[off + 6]!;
    if (recLen < 8 || off + recLen > block.length || 8 + nameLen > recLen) {
      out.set(`\0unparseable@${off}`, '');
      break;
    }
    if (inode !== 0) {
      const name = block.toString('latin1', off + 8, off + 8 + nameLen);
      out.set(`${name}\0${inode}\0${block[off + 7]}`, name);
    }
    off += recLen;
  }
  return out;
}

/** Names added, removed or changed between two versions of a directory block. */
export function changedNames(a: Buffer, b: Buffer): string[] {
  const [x, y] = [directoryEntries(a), directoryEntries(b)];
  const names = new Set<string>();
  for (const [k, n] of x) if (!y.has(k)) names.add(n || k);
  for (const [k, n] of y) if (!x.has(k)) names.add(n || k);
  return [...names];
}

/** Whether a path's inode is no complete snapshot's content. */
export function pathMayChange(path: string, complete: ReadonlySet<string>): boolean {
  if (path === '/lost+found' || path.startsWith('/lost+found/')) return true;
  if (/^\/snapshots\/[^/]+\.partial(\/|$)/.test(path)) return true;
  const manifest = /^\/\.sshvault\/manifests\/([^/]+)/.exec(path);
  if (manifest) return !isCompleteManifest(manifest[1]!, complete);
  return path === '/.sshvault' || path.startsWith('/.sshvault/');
}

function isCompleteManifest(name: string, complete: ReadonlySet<string>): boolean {
  return [...complete].some((c) => name === c || name.startsWith(`${c}.`));
}

/**
 * For the directories that hold both what may change and what may not: which
 * entry names may change. Undefined for every other directory.
 */
export function entryMayChange(dir: string, name: string, complete: ReadonlySet<string>): boolean | undefined {
  if (dir === '/') return name === 'lost+found';
  if (dir === '/snapshots') return name.endsWith('.partial');
  if (dir === '/.sshvault/manifests') return !isCompleteManifest(name, complete);
  return undefined;
}

async function debugfs(device: string, request: string): Promise<string> {
  return (await run('debugfs', ['-R', request, device])).stdout;
}

/** inode -> every path naming it (debugfs ncheck lists each hard link). */
async function pathsOf(device: string, inodes: number[]): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>(inodes.map((i) => [i, []]));
  if (!inodes.length) return out;
  for (const line of (await debugfs(device, `ncheck ${inodes.join(' ')}`)).split('\n').slice(1)) {
    const m = /^(\d+)\t(.*)$/.exec(line);
    if (m) out.get(Number(m[1]))?.push(m[2]!.replace(/^\/+/, '/'));
  }
  return out;
}

/** block -> the inode owning it, for blocks some inode owns. */
async function ownersOf(device: string, blocks: number[]): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  if (!blocks.length) return out;
  for (const line of (await debugfs(device, `icheck ${blocks.join(' ')}`)).split('\n').slice(1)) {
    const m = /^(\d+)\t(\d+)$/.exec(line);
    if (m) out.set(Number(m[1]), Number(m[2]));
  }
  return out;
}

async function completeSnapshots(device: string): Promise<Set<string>> {
  const names = new Set<string>();
  // ls -p: /inode/mode/uid/gid/name/size/ per entry.
  for (const line of (await debugfs(device, 'ls -p /snapshots')).split('\n')) {
    const name = /^\/\d+\/\d+\/\d+\/\d+\/(.*)\/\d*\/$/.exec(line)?.[1];
    if (name && name !== '.' && name !== '..' && !name.endsWith('.partial')) names.add(name);
  }
  return names;
}

async function readRanges(device: string, ranges: { offset: number; length: number }[]): Promise<Buffer[]> {
  const fh = await open(device, 'r');
  try {
    const out: Buffer[] = [];
    for (const r of ranges) {
      const b = Buffer.alloc(r.length);
      const { bytesRead } = await fh.read(b, 0, r.length, r.offset);
      out.push(b.subarray(0, bytesRead));
    }
    return out;
  } finally {
    await fh.close();
  }
}

/** Whether the device holds exactly the old contents the undo file lists: a rollback took. */
export async function matchesUndo(device: string, undo: UndoFile): Promise<boolean> {
  const now = await readRanges(device, undo.extents.map((e) => ({ offset: e.offset, length: e.old.length })));
  return undo.extents.every((e, i) => e.old.equals(now[i]!));
}

/**
 * What the repair changed that it may not have: one line each; empty when
 * the repair touched nothing a complete snapshot holds.
 */
export async function auditRepair(device: string, undo: UndoFile): Promise<string[]> {
  if (!undo.finished) return ['e2fsck did not finish its undo file'];
  const geo = parseGeometry((await run('dumpe2fs', [device])).stdout);
  const bs = geo.blockSize;
  const problems: string[] = [];
  const now = await readRanges(device, undo.extents.map((e) => ({ offset: e.offset, length: e.old.length })));
  const changedInodes = new Set<number>();
  const otherBlocks = new Map<number, { old: Buffer; now: Buffer }>();
  for (const [i, e] of undo.extents.entries()) {
    if (e.offset % bs || e.old.length % bs || now[i]!.length !== e.old.length) {
      problems.push(`e2fsck changed ${e.old.length} bytes at offset ${e.offset}, not whole filesystem blocks`);
      continue;
    }
    for (let k = 0; k < e.old.length / bs; k++) {
      const block = e.offset / bs + k;
      const old = e.old.subarray(k * bs, (k + 1) * bs);
      const cur = now[i]!.subarray(k * bs, (k + 1) * bs);
      if (old.equals(cur) || geo.summary.some(([a, b]) => block >= a && block <= b)) continue;
      const table = geo.inodeTables.find((t) => block >= t.first && block <= t.last);
      if (!table) {
        otherBlocks.set(block, { old, now: cur });
        continue;
      }
      for (let s = 0; s < bs / geo.inodeSize; s++) {
        const slot = (a: Buffer) => a.subarray(s * geo.inodeSize, (s + 1) * geo.inodeSize);
        if (!inodeContentDiffers(slot(old), slot(cur))) continue;
        changedInodes.add(table.group * geo.inodesPerGroup + (block - table.first) * (bs / geo.inodeSize) + s + 1);
      }
    }
  }
  const owners = await ownersOf(device, [...otherBlocks.keys()]);
  const userInode = (ino: number) => ino >= geo.firstInode;
  const paths = await pathsOf(device, [...new Set([...changedInodes, ...owners.values(), 2])].filter((i) => userInode(i) || i === 2));
  const complete = await completeSnapshots(device);
  // An inode no name reaches after the repair is in no complete snapshot: had the repair removed
  // such a name, that is a directory-block change, judged below like any other.
  const where = (ino: number) => (ino === 2 ? ['/'] : paths.get(ino) ?? []);

  for (const ino of changedInodes) {
    if (ino === 2) problems.push('the root directory inode would change');
    else if (userInode(ino)) {
      const bad = where(ino).filter((p) => !pathMayChange(p, complete));
      if (bad.length) problems.push(`inode ${ino} (${bad.join(', ')}) would change`);
    }
  }
  for (const [block, { old, now: cur }] of otherBlocks) {
    const ino = owners.get(block);
    if (ino === undefined) {
      problems.push(`block ${block}, owned by no inode, would change`);
      continue;
    }
    if (!userInode(ino) && ino !== 2) continue;
    for (const dir of where(ino)) {
      const byEntry = entryMayChange(dir, '', complete) !== undefined;
      if (byEntry) {
        const bad = changedNames(old, cur).filter((n) => !entryMayChange(dir, n, complete));
        if (bad.length) problems.push(`entries ${bad.join(', ')} of ${dir} would change`);
      } else if (!pathMayChange(dir, complete)) {
        problems.push(`block ${block} of inode ${ino} (${dir}) would change`);
      }
    }
  }
  return problems;
}
