import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzip as gzipCb } from 'node:zlib';
import { debug } from '../log.js';
import type { ImageLayout } from './layout.js';

const gzip = promisify(gzipCb);
const gunzip = promisify(gunzipCb);

/**
 * The per-file SHA-256 manifest of a snapshot, `/.sshvault/manifests/<name>.sha256.gz`:
 * XTS has no integrity, so this is what finds bit rot or tampering on the host.
 * It is sha256sum's own format (paths relative to the snapshot directory), so
 * `zcat M | sha256sum -c` inside the snapshot checks it without sshvault.
 * Compressed because every push uploads its whole manifest: about 45 bytes
 * per file instead of 120.
 */
export interface ManifestEntry {
  /** Raw bytes: file names need not be UTF-8. */
  path: Buffer;
  hash: string;
}

const SUFFIX = '.sha256.gz';

export function manifestsDir(layout: ImageLayout): string {
  return join(layout.meta, 'manifests');
}

export function manifestPath(dir: string, snapshot: string): string {
  return join(dir, `${snapshot}${SUFFIX}`);
}

const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
const CR = 0x0d;

/** sha256sum escapes a name holding a backslash, newline or CR and marks its line with a leading backslash. */
export function formatEntry(e: ManifestEntry): Buffer {
  const needsEscape = e.path.some((b) => b === BACKSLASH || b === NEWLINE || b === CR);
  if (!needsEscape) return Buffer.concat([Buffer.from(`${e.hash}  `), e.path, Buffer.from('\n')]);
  const out: number[] = [];
  for (const b of e.path) {
    if (b === BACKSLASH) out.push(BACKSLASH, BACKSLASH);
    else if (b === NEWLINE) out.push(BACKSLASH, 0x6e);
    else if (b === CR) out.push(BACKSLASH, 0x72);
    else out.push(b);
  }
  return Buffer.concat([Buffer.from(`\\${e.hash}  `), Buffer.from(out), Buffer.from('\n')]);
}

export function parseManifest(data: Buffer): ManifestEntry[] {
  const entries: ManifestEntry[] = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(NEWLINE, start);
    if (end < 0) end = data.length;
    const line = data.subarray(start, end);
    start = end + 1;
    if (!line.length) continue;
    const escaped = line[0] === BACKSLASH;
    const body = escaped ? line.subarray(1) : line;
    const hash = body.subarray(0, 64).toString('latin1');
    // Two spaces, or ' *' for sha256sum's binary mode.
    if (!/^[0-9a-f]{64}$/.test(hash) || body[64] !== 0x20) throw new Error(`manifest line ${entries.length + 1} is not a sha256sum line`);
    const name = body.subarray(66);
    entries.push({ hash, path: escaped ? unescapeName(name) : Buffer.from(name) });
  }
  return entries;
}

function unescapeName(name: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < name.length; i++) {
    if (name[i] !== BACKSLASH || i + 1 >= name.length) {
      out.push(name[i]!);
      continue;
    }
    const next = name[++i];
    out.push(next === 0x6e ? NEWLINE : next === 0x72 ? CR : next!);
  }
  return Buffer.from(out);
}

export async function encodeManifest(entries: ManifestEntry[]): Promise<Buffer> {
  return gzip(Buffer.concat(entries.map(formatEntry)), { level: 9 });
}

export async function readManifest(file: string): Promise<ManifestEntry[] | undefined> {
  let raw: Buffer;
  try {
    raw = await readFile(file);
  } catch {
    return undefined;
  }
  return parseManifest(await gunzip(raw));
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

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
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
  const prevHashes = new Map<string, string>();
  if (o.previous) {
    const prev = (await readManifest(manifestPath(localDir, o.previous.name))) ?? (await readManifest(manifestPath(manifestsDir(o.layout), o.previous.name)));
    for (const e of prev ?? []) prevHashes.set(e.path.toString('latin1'), e.hash);
  }
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
  const data = await encodeManifest(entries);
  const dir = manifestsDir(o.layout);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const target = manifestPath(dir, o.name);
  await writeFile(`${target}.tmp`, data);
  await rename(`${target}.tmp`, target);
  await cacheLocally(localDir, o.name, data);
  const omitted = files.length - entries.length;
  debug(`manifest ${o.name}: ${entries.length} files (${reused} from the previous snapshot), ${omitted} changed during the push and left out`);
  return { files: entries.length, reused, omitted };
}

/** Only the newest manifest is kept locally: it is the only one the next push needs. */
async function cacheLocally(localDir: string, name: string, data: Buffer): Promise<void> {
  await mkdir(localDir, { recursive: true, mode: 0o700 });
  const target = manifestPath(localDir, name);
  await writeFile(`${target}.tmp`, data, { mode: 0o600 });
  await rename(`${target}.tmp`, target);
  for (const f of await readdir(localDir)) {
    if (f !== `${name}${SUFFIX}`) await rm(join(localDir, f), { force: true });
  }
}

export interface VerifyProblem {
  snapshot: string;
  path: string;
  problem: 'content differs' | 'missing' | 'unreadable' | 'checksum error';
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
    const entries = await readManifest(manifestPath(manifestsDir(layout), name));
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
}
