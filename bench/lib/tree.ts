// Generated source trees and their churn, shared by bench/traffic and bench/scale.
// Everything is deterministic from a seed: two runs (or two tools) see the same bytes.
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Rng = () => number;

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Incompressible, deterministic bytes: AES-256-CTR keystream keyed by the label. */
export function content(label: string, size: number): Buffer {
  const key = createHash('sha256').update(label).digest();
  const c = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return c.update(Buffer.alloc(size));
}

function gauss(rnd: Rng): number {
  const u = Math.max(rnd(), 1e-12);
  const v = rnd();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * File sizes: lognormal (median, sigma, capped at maxKb), and optionally a
 * fraction of large files, log-uniform between largeMinKb and largeMaxKb, as a
 * home directory's photos, archives and disk images are.
 */
export interface SizeModel {
  medianKb: number;
  sigma: number;
  maxKb: number;
  large?: { fraction: number; minKb: number; maxKb: number };
}

export function fileSize(rnd: Rng, m: SizeModel): number {
  // The large-file draw comes only with a model that has one, so models without it keep their sequence of sizes.
  if (m.large && rnd() < m.large.fraction) {
    const lo = Math.log(m.large.minKb * 1024);
    const hi = Math.log(m.large.maxKb * 1024);
    return Math.round(Math.exp(lo + (hi - lo) * rnd()));
  }
  const s = Math.round(m.medianKb * 1024 * Math.exp(m.sigma * gauss(rnd)));
  return Math.max(0, Math.min(s, m.maxKb * 1024));
}

export interface TreeOptions extends SizeModel {
  files: number;
  /** Directories per file: /usr/share has about one per 15 files. */
  dirsPerFile: number;
  seed: number;
}

export interface Tree {
  files: number;
  dirs: number;
  bytes: number;
  entries: number;
  dirList: string[];
}

/** Two levels of directories, files spread over them, every mtime the same so that only the churn makes files differ. */
export function generateTree(root: string, o: TreeOptions): Tree {
  const rnd = mulberry32(o.seed);
  const nDirs = Math.max(1, Math.round(o.files * o.dirsPerFile));
  const top = Math.max(1, Math.round(Math.sqrt(nDirs)));
  const dirs: string[] = [];
  for (let i = 0; i < nDirs; i++) {
    dirs.push(i < top ? `d${String(i).padStart(3, '0')}` : `d${String(i % top).padStart(3, '0')}/sub-${String(i).padStart(5, '0')}`);
  }
  for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
  let bytes = 0;
  for (let i = 0; i < o.files; i++) {
    const d = dirs[Math.floor(rnd() * dirs.length)]!;
    const size = fileSize(rnd, o);
    const name = `${d}/file-${String(i).padStart(6, '0')}.dat`;
    writeFileSync(join(root, name), content(`${o.seed}/${name}`, size));
    utimesSync(join(root, name), 1_600_000_000, 1_600_000_000);
    bytes += size;
  }
  return { files: o.files, dirs: nDirs + 1, bytes, entries: o.files + nDirs + 1, dirList: dirs };
}

export function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk('');
  return out.sort();
}

export interface ChurnCounts {
  modified: number;
  deleted: number;
  retimed: number;
  added: number;
}

export interface Churn extends ChurnCounts {
  changedBytes: number;
}

/**
 * One round of changes: `modified` files get new content of the same size,
 * picked with probability growing with sqrt(size) (edits hit the big files of
 * a real tree more often) or, with `uniform`, every file alike (a day of
 * small edits: what a per-file cost shows up in); `deleted` go; `retimed`
 * keep their content under a new mtime; `added` new files land in the tree's
 * directories.
 */
export function churn(root: string, o: TreeOptions, round: number, tree: Tree, counts: ChurnCounts, uniform = false): Churn {
  const rnd = mulberry32(o.seed * 1000 + round);
  const files = listFiles(root);
  const pick = (k: number) => {
    const chosen: string[] = [];
    for (let i = 0; i < k && files.length; i++) chosen.push(files.splice(Math.floor(rnd() * files.length), 1)[0]!);
    return chosen;
  };
  const pickBySize = (k: number) => {
    const w = files.map((f) => Math.sqrt(statSync(join(root, f)).size + 1));
    const chosen: string[] = [];
    for (let i = 0; i < k && files.length; i++) {
      let x = rnd() * w.reduce((a, b) => a + b, 0);
      let j = 0;
      while (j < w.length - 1 && (x -= w[j]!) > 0) j++;
      chosen.push(files.splice(j, 1)[0]!);
      w.splice(j, 1);
    }
    return chosen;
  };
  let changed = 0;
  for (const f of uniform ? pick(counts.modified) : pickBySize(counts.modified)) {
    const size = statSync(join(root, f)).size;
    writeFileSync(join(root, f), content(`${o.seed}/${f}/r${round}`, size));
    changed += size;
  }
  for (const f of pick(counts.deleted)) unlinkSync(join(root, f));
  for (const f of pick(counts.retimed)) utimesSync(join(root, f), 1_700_000_000 + round, 1_700_000_000 + round);
  for (let i = 0; i < counts.added; i++) {
    const d = tree.dirList[Math.floor(rnd() * tree.dirList.length)]!;
    const size = fileSize(rnd, o);
    const name = `${d}/new-r${round}-${i}.dat`;
    writeFileSync(join(root, name), content(`${o.seed}/${name}`, size));
    changed += size;
  }
  return { ...counts, changedBytes: changed };
}
