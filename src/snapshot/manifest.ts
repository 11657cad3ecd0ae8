import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { constants as zlib, gunzipSync } from 'node:zlib';
import { debug } from '../log.js';
import { mapLimit } from '../map-limit.js';
import type { ImageLayout } from './layout.js';
import { applyDelta, diffManifests, planRewrites, writeFull, type ChainStats } from './manifest-chain.js';
import { decodeDelta, decodeManifest, encodeDelta, encodeManifest, type ManifestEntry } from './manifest-codec.js';

/*
 * The manifests on the image and their local copy: writing one for a new
 * snapshot, reading them back, verifying snapshots against them. The format
 * itself is manifest-codec.ts; the chain rules are manifest-chain.ts.
 */
const SUFFIX = '.sha256.gz';
const DELTA_SUFFIX = '.delta.gz';
const CHAIN_SUFFIX = '.chain.json';

export function manifestsDir(layout: ImageLayout): string {
  return join(layout.meta, 'manifests');
}

export function manifestPath(dir: string, snapshot: string): string {
  return join(dir, `${snapshot}${SUFFIX}`);
}

export function deltaPath(dir: string, snapshot: string): string {
  return join(dir, `${snapshot}${DELTA_SUFFIX}`);
}

export interface ResolvedManifest {
  entries: ManifestEntry[];
  chain: ChainStats;
}

export class BrokenChainError extends Error {}

async function readIfThere(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * A snapshot's manifest: its full one, or its delta applied to its base's,
 * down the chain to a full one. Undefined when the snapshot has neither (made
 * before manifests existed); a chain that does not reach a full manifest
 * throws BrokenChainError.
 */
export async function resolveManifest(dir: string, name: string): Promise<ResolvedManifest | undefined> {
  const deltas: Awaited<ReturnType<typeof decodeDelta>>[] = [];
  const seen = new Set<string>();
  for (let at = name; ; ) {
    const full = await readIfThere(manifestPath(dir, at));
    if (full) {
      let entries = await decodeManifest(full);
      for (const d of deltas.reverse()) entries = applyDelta(entries, d);
      return { entries, chain: { depth: deltas.length, lines: deltas.reduce((t, d) => t + d.upserts.length + d.removed.length, 0) } };
    }
    const delta = await readIfThere(deltaPath(dir, at));
    if (!delta) {
      if (at === name) return undefined;
      throw new BrokenChainError(`the manifest of ${name} needs that of ${at}, which is gone`);
    }
    seen.add(at);
    const d = await decodeDelta(delta);
    if (seen.has(d.base)) throw new BrokenChainError(`the manifest chain of ${name} loops at ${d.base}`);
    deltas.push(d);
    at = d.base;
  }
}

export async function readManifest(file: string): Promise<ManifestEntry[] | undefined> {
  let raw: Buffer;
  try {
    raw = await readFile(file);
  } catch {
    return undefined;
  }
  return decodeManifest(raw);
}

async function sha256File(path: Buffer | string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

function joinBuf(dir: Buffer, name: Buffer): Buffer {
  return dir.length ? Buffer.concat([dir, Buffer.from('/'), name]) : name;
}

/** Regular files under `root`, as paths relative to it, sorted: d_type from readdir, no stat per file. */
async function regularFiles(root: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const walk = async (rel: Buffer) => {
    const abs = rel.length ? Buffer.concat([Buffer.from(`${root}/`), rel]) : Buffer.from(root);
    const entries = await readdir(abs, { withFileTypes: true, encoding: 'buffer' });
    entries.sort((a, b) => Buffer.compare(a.name, b.name));
    for (const e of entries) {
      const child = joinBuf(rel, e.name);
      if (e.isDirectory()) await walk(child);
      else if (e.isFile()) out.push(child);
    }
  };
  await walk(Buffer.alloc(0));
  return out;
}

async function inode(path: Buffer): Promise<bigint | undefined> {
  try {
    return (await lstat(path, { bigint: true })).ino;
  } catch {
    return undefined;
  }
}

export interface ManifestOptions {
  layout: ImageLayout;
  /** The snapshot's final name; its directory may still be `<name>.partial`. */
  name: string;
  dir: string;
  /** The complete snapshot rsync hard-linked against, if any. */
  previous?: { name: string; dir: string };
  /** Local cache of the newest manifest (the state directory), so the next push reads none over the wire. */
  cacheDir: string;
}

export interface ManifestResult {
  files: number;
  /** Hashes taken over from the previous snapshot for files hard-linked to it. */
  reused: number;
  /** Files that changed in the source after rsync copied them: their content is not known without reading it back. */
  omitted: number;
  /** Written as a full manifest rather than a delta against the previous snapshot's. */
  full: boolean;
}

/**
 * Writes the new snapshot's manifest with no wire traffic for file contents:
 * a file hard-linked to the previous snapshot is the same inode, so its hash
 * comes from the previous manifest (cached locally); any other file is hashed
 * from the SOURCE (rsync --relative keeps `/abs/path` as `<snapshot>/abs/path`),
 * provided the source still has the size and mtime rsync gave the copy.
 */
export async function writeManifest(o: ManifestOptions): Promise<ManifestResult> {
  const localDir = join(o.cacheDir, 'manifests');
  const dir = manifestsDir(o.layout);
  const prevHashes = new Map<string, string>();
  const prev = o.previous && ((await readCached(localDir, o.previous.name)) ?? (await resolveManifest(dir, o.previous.name).catch(() => undefined)));
  for (const e of prev?.entries ?? []) prevHashes.set(e.path.toString('latin1'), e.hash);
  const files = await regularFiles(o.dir);
  const hashes: (string | undefined)[] = new Array(files.length);
  let reused = 0;
  await mapLimit(
    files.map((rel, i) => ({ rel, i })),
    4,
    async ({ rel, i }) => {
      const inSnapshot = Buffer.concat([Buffer.from(`${o.dir}/`), rel]);
      const copy = await lstat(inSnapshot, { bigint: true });
      const known = prevHashes.get(rel.toString('latin1'));
      if (known && o.previous && (await inode(Buffer.concat([Buffer.from(`${o.previous.dir}/`), rel]))) === copy.ino) {
        hashes[i] = known;
        reused++;
        return;
      }
      const source = Buffer.concat([Buffer.from('/'), rel]);
      const st = await lstat(source, { bigint: true }).catch(() => undefined);
      // Whole seconds: ext2 keeps no sub-second times.
      if (!st?.isFile() || st.size !== copy.size || st.mtimeMs / 1000n !== copy.mtimeMs / 1000n) return;
      const hash = await sha256File(source).catch(() => undefined);
      // Changed while being hashed: the hash would describe neither version.
      const after = await lstat(source, { bigint: true }).catch(() => undefined);
      if (hash && after && after.size === st.size && after.mtimeNs === st.mtimeNs) hashes[i] = hash;
    },
  );
  const entries = files.flatMap((path, i) => (hashes[i] ? [{ path, hash: hashes[i]! }] : []));
  const delta = prev && diffManifests(prev.entries, entries);
  const deltaLines = delta ? delta.upserts.length + delta.removed.length : 0;
  const full = !delta || writeFull(prev.chain, deltaLines, entries.length);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // A file of the other kind under this name (a cut push's) must not shadow or outlive the one written now.
  await rm(full ? deltaPath(dir, o.name) : manifestPath(dir, o.name), { force: true });
  const target = full ? manifestPath(dir, o.name) : deltaPath(dir, o.name);
  await writeFile(`${target}.tmp`, full ? await encodeManifest(entries) : await encodeDelta({ base: o.previous!.name, ...delta! }));
  await rename(`${target}.tmp`, target);
  const chain: ChainStats = full ? { depth: 0, lines: 0 } : { depth: prev.chain.depth + 1, lines: prev.chain.lines + deltaLines };
  await cacheLocally(localDir, o.name, { entries, chain });
  const omitted = files.length - entries.length;
  debug(`manifest ${o.name}: ${full ? 'full' : `delta of ${deltaLines} lines`}, ${entries.length} files (${reused} from the previous snapshot), ${omitted} changed during the push and left out`);
  return { files: entries.length, reused, omitted, full };
}

/**
 * Only the newest manifest is kept locally, resolved, with where it stands in
 * its chain: that is all the next push needs to write its own.
 */
async function cacheLocally(localDir: string, name: string, m: ResolvedManifest): Promise<void> {
  await mkdir(localDir, { recursive: true, mode: 0o700 });
  const target = manifestPath(localDir, name);
  await writeFile(`${target}.tmp`, await encodeManifest(m.entries), { mode: 0o600 });
  await rename(`${target}.tmp`, target);
  await writeFile(join(localDir, `${name}${CHAIN_SUFFIX}`), JSON.stringify(m.chain), { mode: 0o600 });
  for (const f of await readdir(localDir)) {
    if (f !== `${name}${SUFFIX}` && f !== `${name}${CHAIN_SUFFIX}`) await rm(join(localDir, f), { force: true });
  }
}

async function readCached(localDir: string, name: string): Promise<ResolvedManifest | undefined> {
  const entries = await readManifest(manifestPath(localDir, name)).catch(() => undefined);
  const chain = await readFile(join(localDir, `${name}${CHAIN_SUFFIX}`), 'utf8').then((t) => JSON.parse(t) as ChainStats, () => undefined);
  return entries && chain ? { entries, chain } : undefined;
}

export interface VerifyProblem {
  snapshot: string;
  path: string;
  problem: 'content differs' | 'missing' | 'unreadable' | 'manifest chain broken' | 'checksum error';
}

export interface VerifyResult {
  snapshots: { name: string; files: number; manifest: boolean }[];
  /** Distinct files read: a file hard-linked into several snapshots is read once. */
  filesRead: number;
  bytesRead: number;
  problems: VerifyProblem[];
  /** Set where the filesystem's own checksums were verified (btrfs scrub) instead of manifests: what it found. */
  scrub?: { errors: string | undefined };
}

/** Verification's progress: the bytes it will read (each distinct file once), then each file read. */
export interface VerifyProgress {
  total(bytes: number): void;
  read(bytes: number): void;
}

/**
 * Re-reads every file a manifest lists and compares its SHA-256. Hard links
 * share an inode, so each distinct file is read over the wire once however
 * many snapshots hold it. The files are looked up first, so that progress
 * knows the total to read before the reading starts.
 */
export async function verifySnapshots(layout: ImageLayout, names: string[], progress?: VerifyProgress): Promise<VerifyResult> {
  const result: VerifyResult = { snapshots: [], filesRead: 0, bytesRead: 0, problems: [] };
  const work: { name: string; shown: string; path: Buffer; hash: string; ino?: bigint; size: number }[] = [];
  const sizes = new Map<bigint, number>();
  for (const name of names) {
    let entries: ManifestEntry[] | undefined;
    try {
      entries = (await resolveManifest(manifestsDir(layout), name))?.entries;
    } catch (e) {
      if (!(e instanceof BrokenChainError)) throw e;
      result.problems.push({ snapshot: name, path: '', problem: 'manifest chain broken' });
      continue;
    }
    result.snapshots.push({ name, files: entries?.length ?? 0, manifest: !!entries });
    if (!entries) continue;
    const root = join(layout.snapshots, name);
    await mapLimit(entries, 4, async (e) => {
      const path = Buffer.concat([Buffer.from(`${root}/`), e.path]);
      const st = await lstat(path, { bigint: true }).catch(() => undefined);
      const file = st?.isFile() ? st : undefined;
      if (file) sizes.set(file.ino, Number(file.size));
      work.push({ name, shown: `/${e.path.toString('utf8')}`, path, hash: e.hash, ino: file?.ino, size: Number(file?.size ?? 0) });
    });
  }
  progress?.total([...sizes.values()].reduce((t, n) => t + n, 0));
  const hashes = new Map<bigint, Promise<string>>();
  await mapLimit(work, 4, async (w) => {
    if (w.ino === undefined) {
      result.problems.push({ snapshot: w.name, path: w.shown, problem: 'missing' });
      return;
    }
    let pending = hashes.get(w.ino);
    if (!pending) {
      // A read error (EIO from a damaged block) is a finding, not a crash.
      pending = sha256File(w.path).catch(() => '');
      hashes.set(w.ino, pending);
      const hash = await pending;
      result.filesRead++;
      result.bytesRead += w.size;
      progress?.read(w.size);
      if (hash !== w.hash) result.problems.push({ snapshot: w.name, path: w.shown, problem: hash ? 'content differs' : 'unreadable' });
      return;
    }
    const hash = await pending;
    if (hash !== w.hash) result.problems.push({ snapshot: w.name, path: w.shown, problem: hash ? 'content differs' : 'unreadable' });
  });
  result.problems.sort((a, b) => a.snapshot.localeCompare(b.snapshot) || a.path.localeCompare(b.path));
  return result;
}

/** Manifests of snapshots that are gone (pruned): they would only cost space. */
export async function removeManifest(layout: ImageLayout, name: string): Promise<void> {
  await rm(manifestPath(manifestsDir(layout), name), { force: true });
  await rm(deltaPath(manifestsDir(layout), name), { force: true });
}

/** A delta's base, from its first line: the start of the file is enough, not the whole of it. */
async function deltaBase(file: string): Promise<string | undefined> {
  const fh = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(4096), 0, 4096, 0);
    const text = gunzipSync(buffer.subarray(0, bytesRead), { finishFlush: zlib.Z_SYNC_FLUSH }).toString('latin1');
    return /^# base (\S+)\n/.exec(text)?.[1];
  } finally {
    await fh.close();
  }
}

/**
 * Before prune removes snapshots: every kept snapshot whose delta's base goes
 * is given a full manifest (docs/design.md, "Manifest chains"). Returns the
 * snapshots rewritten; the caller flushes before it removes anything, and
 * only then drops their deltas with dropDeltas.
 */
export async function keepChainsWhole(layout: ImageLayout, keep: ReadonlySet<string>): Promise<string[]> {
  const dir = manifestsDir(layout);
  const names = await readdir(dir).catch(() => [] as string[]);
  const bases = new Map<string, string>();
  for (const f of names) {
    if (!f.endsWith(DELTA_SUFFIX)) continue;
    const name = f.slice(0, -DELTA_SUFFIX.length);
    if (!keep.has(name) || names.includes(`${name}${SUFFIX}`)) continue;
    const base = await deltaBase(join(dir, f));
    if (base) bases.set(name, base);
  }
  const rewritten: string[] = [];
  for (const name of planRewrites(bases, keep)) {
    // A chain already broken stays as it is: check --verify-data names it, and it must not stop a prune.
    const m = await resolveManifest(dir, name).catch((e) => {
      if (e instanceof BrokenChainError) return undefined;
      throw e;
    });
    if (!m) continue;
    const target = manifestPath(dir, name);
    await writeFile(`${target}.tmp`, await encodeManifest(m.entries));
    await rename(`${target}.tmp`, target);
    rewritten.push(name);
  }
  return rewritten;
}

/** The deltas of snapshots that now have a full manifest, once that is flushed. */
export async function dropDeltas(layout: ImageLayout, names: string[]): Promise<void> {
  for (const name of names) await rm(deltaPath(manifestsDir(layout), name), { force: true });
}
