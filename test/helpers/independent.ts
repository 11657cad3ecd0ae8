import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  chmod, chown, lchown, link, lstat, mkdir, mkdtemp, readdir, readlink, rm, stat, symlink, unlink, utimes, writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, posix, resolve } from 'node:path';
import { execa } from 'execa';

/**
 * Verification that shares no code with sshvault: qemu-img's LUKS driver
 * decrypts an image, debugfs reads the filesystem inside without mounting it,
 * and compareTrees judges the result. If sshvault and these disagree, it is
 * sshvault that has to explain itself.
 */

// ---------------------------------------------------------------- decryption

/** qemu's option syntax takes a comma as a separator unless it is doubled. */
function qemuValue(s: string): string {
  return s.replaceAll(',', ',,');
}

/** Decrypts a LUKS image to a raw (sparse) plaintext file with qemu-img, not cryptsetup or sshvault. */
export async function decryptImage(imagePath: string, passphrase: string, outRaw: string): Promise<void> {
  const secretDir = await mkdtemp(join(tmpdir(), 'sshvault-secret-'));
  try {
    const secret = join(secretDir, 'passphrase');
    await writeFile(secret, passphrase, { mode: 0o600 });
    await execa('qemu-img', [
      'convert',
      '--object', `secret,id=s0,format=raw,file=${qemuValue(secret)}`,
      '--image-opts', `driver=luks,key-secret=s0,file.filename=${qemuValue(imagePath)}`,
      '-O', 'raw', outRaw,
    ]);
  } finally {
    await rm(secretDir, { recursive: true, force: true });
  }
}

// -------------------------------------------------------------------- debugfs

/** debugfs's own argument syntax: double quotes, a literal quote doubled. */
function dq(path: string): string {
  return `"${path.replaceAll('"', '""')}"`;
}

/**
 * debugfs reports most failures (a missing path, a bad inode) on stderr and
 * still exits 0, so anything on stderr besides its version banner is an error.
 */
async function debugfs(raw: string, args: string[]): Promise<Buffer> {
  const r = await execa('debugfs', [...args, raw], { encoding: 'buffer', reject: false, stripFinalNewline: false });
  const errors = Buffer.from(r.stderr).toString('utf8').split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l));
  if (r.exitCode !== 0 || errors.length) {
    throw new Error(`debugfs ${args.join(' ')} ${raw}: ${errors.join('; ') || `exit code ${r.exitCode}`}`);
  }
  return Buffer.from(r.stdout);
}

async function debugfsText(raw: string, request: string): Promise<string> {
  return (await debugfs(raw, ['-R', request])).toString('utf8');
}

/** Runs many requests in one debugfs process; returns each request's output, in order. */
async function debugfsBatch(raw: string, requests: string[]): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'sshvault-debugfs-'));
  try {
    const cmds = join(dir, 'cmds');
    await writeFile(cmds, requests.map((r) => `${r}\n`).join(''));
    const out = (await debugfs(raw, ['-f', cmds])).toString('utf8');
    // With -f, debugfs echoes each request as "debugfs: <request>" before its output.
    const parts = out.split(/^debugfs: .*$/m).slice(1);
    if (parts.length !== requests.length) throw new Error(`debugfs answered ${parts.length} of ${requests.length} requests`);
    return parts;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface DebugfsEntry {
  name: string;
  inode: number;
  /** st_mode: file type and permission bits, as Node's Stats.mode. */
  mode: number;
  uid: number;
  gid: number;
  /** 0 for directories, which `ls -p` prints without a size. */
  size: number;
}

function parseLsP(text: string): DebugfsEntry[] {
  const out: DebugfsEntry[] = [];
  for (const line of text.split('\n')) {
    // /inode/mode/uid/gid/name/size/ ; a name cannot contain '/', so the split is exact.
    if (!line.startsWith('/')) continue;
    const [, inode, mode, uid, gid, name, size] = line.split('/');
    // Inode 0 marks an unused slot (lost+found is full of them).
    if (name === '.' || name === '..' || inode === '0') continue;
    out.push({ name, inode: Number(inode), mode: parseInt(mode, 8), uid: Number(uid), gid: Number(gid), size: Number(size || 0) });
  }
  return out;
}

/** The entries of a directory in the image, without '.' and '..'. */
export async function debugfsLs(raw: string, path: string): Promise<DebugfsEntry[]> {
  return parseLsP(await debugfsText(raw, `ls -p ${dq(path)}`));
}

export interface DebugfsStat {
  inode: number;
  links: number;
  /** st_mode: file type and permission bits, as Node's Stats.mode. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
}

const TYPE_BITS: Record<string, number> = {
  regular: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  FIFO: 0o010000,
  socket: 0o140000,
  'character special': 0o020000,
  'block special': 0o060000,
};

export async function debugfsStat(raw: string, path: string): Promise<DebugfsStat> {
  const text = await debugfsText(raw, `stat ${dq(path)}`);
  const head = /Inode:\s+(\d+)\s+Type:\s+(.+?)\s+Mode:\s+([0-7]+)/.exec(text);
  const owner = /User:\s+(\d+)\s+Group:\s+(\d+)\s+(?:Project:\s+\d+\s+)?Size:\s+(\d+)/.exec(text);
  const links = /Links:\s+(\d+)/.exec(text);
  const mtime = /^\s*mtime:\s+0x([0-9a-f]+)(?::([0-9a-f]+))?/m.exec(text);
  if (!head || !owner || !links || !mtime || !(head[2] in TYPE_BITS)) throw new Error(`unexpected debugfs stat output for ${path}:\n${text}`);
  // The low two bits of the extra field extend the signed 32-bit seconds past 2038.
  const seconds = (parseInt(mtime[1], 16) | 0) + (parseInt(mtime[2] ?? '0', 16) & 3) * 2 ** 32;
  return {
    inode: Number(head[1]),
    links: Number(links[1]),
    mode: TYPE_BITS[head[2]] | parseInt(head[3], 8),
    uid: Number(owner[1]),
    gid: Number(owner[2]),
    size: Number(owner[3]),
    mtime: seconds,
  };
}

export async function debugfsCat(raw: string, path: string): Promise<Buffer> {
  return debugfs(raw, ['-R', `cat ${dq(path)}`]);
}

/** Extended attributes of one inode in the image (rdump does not restore them; this is how to check -X). */
export async function debugfsXattrs(raw: string, path: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const line of (await debugfsText(raw, `ea_list ${dq(path)}`)).split('\n')) {
    // '  name (len) = "printable, \" and \\ escaped"' or '  name (len) = 00 ff ' or '  name (0)'
    const m = /^ {2}(.+?) \((\d+)\)(?: = (.*))?$/.exec(line);
    if (!m) continue;
    const [, name, len, value = ''] = m;
    const bytes = value.startsWith('"')
      ? Buffer.from(value.slice(1, value.lastIndexOf('"')).replace(/\\(.)/g, '$1'), 'latin1')
      : Buffer.from(value.replace(/\s+/g, ''), 'hex');
    if (bytes.length !== Number(len)) throw new Error(`cannot parse debugfs ea_list line: ${line}`);
    out[name] = bytes;
  }
  return out;
}

async function walk(root: string, visit: (rel: string, isDir: boolean) => void, rel = ''): Promise<void> {
  for (const d of await readdir(join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    visit(r, d.isDirectory());
    if (d.isDirectory()) await walk(root, visit, r);
  }
}

/**
 * Copies pathInFs out of the image into destDir with debugfs rdump: a
 * directory /x/y lands in destDir/y, the root's contents land in destDir
 * itself (lost+found included).
 *
 * rdump restores mode, owner and mtime (whole seconds) of files and
 * directories, but writes every name as a separate file and creates symlinks
 * as root with the current time. This repairs what compareTrees looks at:
 * names sharing an inode in the image are hard-linked again, and symlinks get
 * their owners back. Still not restored: symlink mtimes, directory mtimes
 * (relinking touches them), xattrs (see debugfsXattrs), special files.
 */
export async function rdump(rawImage: string, pathInFs: string, destDir: string): Promise<void> {
  await mkdir(destDir, { recursive: true });
  await debugfs(rawImage, ['-R', `rdump ${dq(pathInFs)} ${dq(destDir)}`]);
  const isRoot = posix.normalize(pathInFs) === '/';
  const top = isRoot ? destDir : join(destDir, basename(pathInFs));
  if (!(await lstat(top)).isDirectory()) return;

  const dirs = [''];
  await walk(top, (rel, isDir) => isDir && dirs.push(rel));
  const listings = await debugfsBatch(rawImage, dirs.map((d) => `ls -p ${dq(posix.join(pathInFs, d))}`));
  const byInode = new Map<number, string[]>();
  for (const [i, dir] of dirs.entries()) {
    for (const e of parseLsP(listings[i])) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      const type = e.mode & 0o170000;
      if (type === TYPE_BITS.symlink) await lchown(join(top, rel), e.uid, e.gid);
      if (type !== TYPE_BITS.directory) byInode.set(e.inode, [...(byInode.get(e.inode) ?? []), rel]);
    }
  }
  for (const [first, ...others] of byInode.values()) {
    for (const other of others) {
      await unlink(join(top, other));
      await link(join(top, first), join(top, other));
    }
  }
}

// ------------------------------------------------------------- tree compare

export interface CompareOptions {
  /**
   * Compare regular files' mtimes to the second (default true). Only regular
   * files: rdump does not restore symlink mtimes, and directory mtimes change
   * whenever a name inside is added or removed.
   */
  mtimes?: boolean;
  /** Compare extended attributes, ACLs included (default false: rdump does not restore them). */
  xattrs?: boolean;
}

interface Node {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  inode: string;
  target?: string;
}

async function scan(root: string): Promise<Map<string, Node>> {
  const paths: string[] = [];
  await walk(root, (rel) => paths.push(rel));
  const out = new Map<string, Node>();
  for (const rel of paths.sort()) {
    const p = join(root, rel);
    const st = await lstat(p, { bigint: true });
    out.set(rel, {
      mode: Number(st.mode),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: Number(st.size),
      mtime: Number(st.mtimeNs / 1_000_000_000n),
      inode: `${st.dev}:${st.ino}`,
      target: st.isSymbolicLink() ? await readlink(p) : undefined,
    });
  }
  return out;
}

function sha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('error', reject).on('data', (b) => h.update(b)).on('end', () => resolve(h.digest('hex')));
  });
}

/** getfattr's names escape backslashes and unprintable bytes as \ooo; UTF-8 passes through. */
function unescapeOctal(s: string): string {
  return Buffer.from(s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), 'latin1').toString('utf8');
}

async function xattrsOf(dir: string): Promise<Map<string, string>> {
  const root = resolve(dir);
  const r = await execa('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { encoding: 'latin1' });
  const out = new Map<string, string>();
  for (const block of r.stdout.split('\n\n')) {
    const [head, ...attrs] = block.trim().split('\n');
    if (!head?.startsWith('# file: ')) continue;
    const path = unescapeOctal(head.slice('# file: '.length));
    if (path !== root) out.set(path.slice(root.length + 1), attrs.sort().join(' '));
  }
  return out;
}

const TYPE_NAMES: Record<number, string> = {
  0o100000: 'file', 0o040000: 'directory', 0o120000: 'symlink', 0o010000: 'fifo',
  0o140000: 'socket', 0o020000: 'char device', 0o060000: 'block device',
};

const octal = (n: number) => n.toString(8);

/**
 * Human-readable differences between two trees (empty: equal), covering every
 * path below the roots (not the roots themselves): set of names, type,
 * content, permission bits, owner, symlink targets, hard-link structure and,
 * per options, mtimes and xattrs.
 */
export async function compareTrees(a: string, b: string, opts: CompareOptions = {}): Promise<string[]> {
  const [ta, tb] = await Promise.all([scan(a), scan(b)]);
  const diffs: string[] = [];
  for (const p of ta.keys()) if (!tb.has(p)) diffs.push(`only in a: ${p}`);
  for (const p of tb.keys()) if (!ta.has(p)) diffs.push(`only in b: ${p}`);

  const common = [...ta.keys()].filter((p) => tb.has(p));
  const groups = (t: Map<string, Node>) => {
    const g = new Map<string, string[]>();
    for (const p of common) {
      const n = t.get(p)!;
      if ((n.mode & 0o170000) !== 0o040000) g.set(n.inode, [...(g.get(n.inode) ?? []), p]);
    }
    return g;
  };
  const [ga, gb] = [groups(ta), groups(tb)];
  const linkReported = new Set<string>();

  for (const p of common) {
    const x = ta.get(p)!;
    const y = tb.get(p)!;
    const [tx, ty] = [x.mode & 0o170000, y.mode & 0o170000];
    if (tx !== ty) {
      diffs.push(`${p}: ${TYPE_NAMES[tx]} in a, ${TYPE_NAMES[ty]} in b`);
      continue;
    }
    if (x.mode !== y.mode) diffs.push(`${p}: mode ${octal(x.mode)} in a, ${octal(y.mode)} in b`);
    if (x.uid !== y.uid || x.gid !== y.gid) diffs.push(`${p}: owner ${x.uid}:${x.gid} in a, ${y.uid}:${y.gid} in b`);
    if (tx === 0o120000 && x.target !== y.target) diffs.push(`${p}: symlink to '${x.target}' in a, to '${y.target}' in b`);
    if (tx === 0o100000) {
      if (x.size !== y.size) diffs.push(`${p}: ${x.size} bytes in a, ${y.size} in b`);
      else if ((await sha256(join(a, p))) !== (await sha256(join(b, p)))) diffs.push(`${p}: content differs`);
      if (opts.mtimes !== false && x.mtime !== y.mtime) {
        diffs.push(`${p}: mtime ${new Date(x.mtime * 1000).toISOString()} in a, ${new Date(y.mtime * 1000).toISOString()} in b`);
      }
    }
    if (tx !== 0o040000 && !linkReported.has(x.inode)) {
      const la = ga.get(x.inode)!;
      const lb = gb.get(y.inode)!;
      if (la.join('\0') !== lb.join('\0')) {
        diffs.push(`${p}: hard-linked with [${la.join(', ')}] in a, with [${lb.join(', ')}] in b`);
        for (const q of la) linkReported.add(ta.get(q)!.inode);
      }
    }
  }

  if (opts.xattrs) {
    const [xa, xb] = await Promise.all([xattrsOf(a), xattrsOf(b)]);
    for (const p of common) {
      const [va, vb] = [xa.get(p) ?? '', xb.get(p) ?? ''];
      if (va !== vb) diffs.push(`${p}: xattrs {${va}} in a, {${vb}} in b`);
    }
  }
  return diffs;
}

// ------------------------------------------------------------- source trees

/** mulberry32: the trees must be identical from run to run, so no Math.random. */
function prng(seed: string): () => number {
  let s = 0;
  for (const c of seed) s = (Math.imul(s, 31) + c.codePointAt(0)!) | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Bytes that depend only on the seed (a file's path): binary, or text lines that compress like prose. */
function content(seed: string, size: number, text = false): Buffer {
  const rand = prng(seed);
  const buf = Buffer.alloc(size);
  if (!text) {
    for (let i = 0; i < size; i++) buf[i] = (rand() * 256) | 0;
    return buf;
  }
  const words = ['backup', 'snapshot', 'vault', 'remote', 'ciphertext', 'the', 'a', 'of', 'inode', 'link', 'byte', 'ssh'];
  let s = '';
  while (s.length < size) s += words[(rand() * words.length) | 0] + (rand() < 0.1 ? '.\n' : ' ');
  return Buffer.from(s.slice(0, size), 'latin1');
}

async function put(root: string, rel: string, data: Buffer, mode = 0o644): Promise<void> {
  const p = join(root, rel);
  await mkdir(join(p, '..'), { recursive: true });
  await writeFile(p, data, { mode });
  // writeFile's mode passes through the umask and leaves an existing file's mode alone.
  await chmod(p, mode);
}

export interface SourceManifest {
  root: string;
  /** Every path below root, relative, sorted; directories included. */
  paths: string[];
  /** Regular-file names (each name of a hard-linked file counts) and the sum of their sizes. */
  regularFiles: number;
  regularBytes: number;
  /** The 3 MiB of fresh random bytes: nothing can compress or deduplicate it. */
  bigFile: string;
  /** Names that share one inode. */
  hardlinks: string[][];
  /** Carries user.test, unless the filesystem refuses user xattrs. */
  xattrFile?: string;
}

async function manifest(root: string, extra: Pick<SourceManifest, 'bigFile' | 'hardlinks' | 'xattrFile'>): Promise<SourceManifest> {
  const paths: string[] = [];
  await walk(root, (rel) => paths.push(rel));
  let regularFiles = 0;
  let regularBytes = 0;
  for (const p of paths) {
    const st = await lstat(join(root, p));
    if (st.isFile()) {
      regularFiles++;
      regularBytes += st.size;
    }
  }
  return { root, paths: paths.sort(), regularFiles, regularBytes, ...extra };
}

/**
 * A tree with one of everything a backup can get wrong. docs/readme.txt is
 * never touched by churnSourceTree, so tests can check that it is
 * hard-linked between snapshots.
 */
export async function makeSourceTree(dir: string): Promise<SourceManifest> {
  await mkdir(dir, { recursive: true });
  await put(dir, 'docs/readme.txt', content('docs/readme.txt', 2000, true));
  await put(dir, 'docs/guide.md', content('docs/guide.md', 10_000, true));
  await put(dir, 'docs/empty.txt', Buffer.alloc(0));
  // Around the 4 KiB block size, where off-by-one errors in block handling show.
  for (const size of [1, 4095, 4096, 4097, 65_537]) await put(dir, `data/small-${size}.bin`, content(`data/small-${size}.bin`, size));
  await put(dir, 'data/one-mib.bin', content('data/one-mib.bin', 1 << 20));
  const bigFile = 'data/big-random.bin';
  await put(dir, bigFile, randomBytes(3 << 20));
  await put(dir, 'deep/a/b/c/d/e/leaf.txt', content('deep/leaf', 300, true));
  await put(dir, 'deep/a/b/empty.txt', Buffer.alloc(0));
  await mkdir(join(dir, 'empty-dir'), { recursive: true });
  await mkdir(join(dir, 'empty-nested/x/y'), { recursive: true });

  await mkdir(join(dir, 'links'), { recursive: true });
  await symlink('../docs/readme.txt', join(dir, 'links/relative'));
  await symlink('../no/such/file', join(dir, 'links/dangling'));
  await symlink('../deep/a', join(dir, 'links/to-dir'));

  await put(dir, 'hard/one.txt', content('hard/one.txt', 5000, true));
  await link(join(dir, 'hard/one.txt'), join(dir, 'hard/two.txt'));

  await put(dir, 'café/naïve-ñ.txt', content('café', 700, true));
  await put(dir, '日本語/ファイル名.txt', content('日本語', 900, true));
  for (const name of ["with spaces and 'quotes' (1) [x] {y} #$%&!;=@^~,+.txt", '-leading-dash', 'back\\slash', '"double"', '  leading spaces']) {
    await put(dir, `odd names/${name}`, content(name, 100, true));
  }

  await put(dir, 'modes/private-0600', content('modes/0600', 100, true), 0o600);
  await put(dir, 'modes/exec-0755', Buffer.from('#!/bin/sh\necho hi\n'), 0o755);
  await put(dir, 'modes/readonly-0444', content('modes/0444', 100, true), 0o444);
  await mkdir(join(dir, 'modes/private-dir-0700'), { recursive: true });
  await chmod(join(dir, 'modes/private-dir-0700'), 0o700);

  await put(dir, 'owned/uid1234-gid2345.txt', content('owned', 100, true));
  await chown(join(dir, 'owned/uid1234-gid2345.txt'), 1234, 2345);

  let xattrFile: string | undefined = 'xattr/tagged.txt';
  await put(dir, xattrFile, content('xattr', 100, true));
  const set = await execa('setfattr', ['-n', 'user.test', '-v', 'sshvault-xattr', join(dir, xattrFile)], { reject: false });
  if (set.exitCode !== 0) xattrFile = undefined;

  return manifest(dir, { bigFile, hardlinks: [['hard/one.txt', 'hard/two.txt']], xattrFile });
}

export interface ChurnManifest {
  added: string[];
  /** Content changed, size kept. */
  modified: string[];
  removed: string[];
  modeChanged: string[];
  /** Regular files now symlinks. */
  replacedBySymlink: string[];
  /** New names for existing inodes. */
  linked: string[];
  /** Bytes of new or changed file content, as rsync would have to send them. */
  newContentBytes: number;
}

/** One of each kind of change, on a tree made by makeSourceTree. Deterministic. */
export async function churnSourceTree(dir: string): Promise<ChurnManifest> {
  const added: Record<string, Buffer> = {
    'data/added-20k.bin': content('data/added-20k.bin', 20_000),
    'deep/a/b/c/added.txt': content('deep/added', 3000, true),
    'café/crème-brûlée.txt': content('crème', 400, true),
    '新しい/追加.txt': content('新しい', 500, true),
  };
  for (const [rel, data] of Object.entries(added)) await put(dir, rel, data);

  const modified = 'docs/guide.md';
  const before = await stat(join(dir, modified));
  const changed = content(`${modified}#2`, before.size, true);
  await put(dir, modified, changed);
  // rsync's quick check compares sizes and whole-second mtimes: an edit in the
  // same second as the last backup would be skipped, by design. Keep churn
  // visible however fast a test runs.
  const mtime = Math.max(Date.now() / 1000, before.mtimeMs / 1000 + 2);
  await utimes(join(dir, modified), mtime, mtime);

  const removed = 'data/small-4097.bin';
  await unlink(join(dir, removed));
  const modeChanged = 'data/small-1.bin';
  await chmod(join(dir, modeChanged), 0o640);
  const replaced = 'data/small-4095.bin';
  await unlink(join(dir, replaced));
  await symlink('small-4096.bin', join(dir, replaced));
  const linked = 'hard/three.txt';
  await link(join(dir, 'hard/one.txt'), join(dir, linked));
  await mkdir(join(dir, 'empty-added'), { recursive: true });

  return {
    added: [...Object.keys(added), 'empty-added'],
    modified: [modified],
    removed: [removed],
    modeChanged: [modeChanged],
    replacedBySymlink: [replaced],
    linked: [linked],
    newContentBytes: Object.values(added).reduce((t, b) => t + b.length, 0) + changed.length,
  };
}

// ---------------------------------------------------------------------- btrfs

export interface BtrfsSubvolume {
  id: number;
  readOnly: boolean;
  /**
   * Where its tree's root node is: copy-on-write moves it with any change to
   * the subvolume, so an unchanged value means an unchanged subvolume.
   */
  rootNode: string;
}

/** The subvolumes of a btrfs image by name, from its root tree. */
export async function btrfsSubvolumes(raw: string): Promise<Map<string, BtrfsSubvolume>> {
  const out = (await execa('btrfs', ['inspect-internal', 'dump-tree', '-t', 'root', raw])).stdout;
  const items = new Map<number, { readOnly: boolean; rootNode: string }>();
  for (const m of out.matchAll(/key \((\d+) ROOT_ITEM \d+\)[^\n]*\n\t\tgeneration \d+ root_dirid \d+ bytenr (\d+)[^\n]*\n\t\t[^\n]*flags (0x[0-9a-f]+)/g)) {
    items.set(Number(m[1]), { rootNode: m[2]!, readOnly: (Number(m[3]) & 1) === 1 });
  }
  const subvolumes = new Map<string, BtrfsSubvolume>();
  for (const m of out.matchAll(/key \(\S+ ROOT_REF (\d+)\)[^\n]*\n\t\troot ref key dirid \d+ sequence \d+ name (.*)/g)) {
    const id = Number(m[1]);
    const item = items.get(id);
    if (!item) throw new Error(`subvolume ${m[2]} (${id}) has no root item in ${raw}`);
    subvolumes.set(m[2]!, { id, ...item });
  }
  return subvolumes;
}

/** Every name of every inode of one subvolume, as paths from its root, from its INODE_REF items. */
async function btrfsNames(raw: string, id: number): Promise<{ names: Map<number, string[]>; extents: Map<number, string[]> }> {
  const out = (await execa('btrfs', ['inspect-internal', 'dump-tree', '-t', String(id), raw], { encoding: 'buffer' })).stdout;
  const refs = new Map<number, { parent: number; name: string }[]>();
  const extents = new Map<number, string[]>();
  let current: { ino: number; parent: number } | undefined;
  let extentOf: number | undefined;
  for (const line of Buffer.from(out).toString('utf8').split('\n')) {
    const key = /^\titem \d+ key \((\d+) (\w+) (\d+)\)/.exec(line);
    if (key) {
      current = key[2] === 'INODE_REF' ? { ino: Number(key[1]), parent: Number(key[3]) } : undefined;
      extentOf = key[2] === 'EXTENT_DATA' ? Number(key[1]) : undefined;
      continue;
    }
    const name = /^\t\tindex \d+ namelen (\d+) name: (.*)$/.exec(line);
    if (current && name) {
      refs.set(current.ino, [...(refs.get(current.ino) ?? []), { parent: current.parent, name: Buffer.from(name[2]!).subarray(0, Number(name[1])).toString('utf8') }]);
    }
    const disk = /^\t\textent data disk byte (\d+) nr (\d+)/.exec(line);
    if (extentOf !== undefined && disk && disk[1] !== '0') extents.set(extentOf, [...(extents.get(extentOf) ?? []), `${disk[1]}+${disk[2]}`]);
  }
  const ROOT = 256;
  const pathOf = (ino: number, ref: { parent: number; name: string }): string => {
    if (ref.parent === ROOT) return ref.name;
    const up = refs.get(ref.parent)?.[0];
    if (!up) throw new Error(`inode ${ref.parent} of subvolume ${id} has no name`);
    return `${pathOf(ref.parent, up)}/${ref.name}`;
  };
  const names = new Map<number, string[]>();
  for (const [ino, list] of refs) if (ino !== ROOT) names.set(ino, list.map((r) => pathOf(ino, r)));
  return { names, extents };
}

/**
 * Reads one snapshot (a subvolume) out of a decrypted btrfs image with
 * `btrfs restore`, without mounting it: modes, owners, times, symlinks and
 * xattrs. btrfs restore writes every name as its own file, so names that
 * share an inode in the image are hard-linked again.
 */
export async function btrfsRestore(raw: string, snapshot: string, destDir: string, subvolumes?: Map<string, BtrfsSubvolume>): Promise<void> {
  const sub = (subvolumes ?? (await btrfsSubvolumes(raw))).get(snapshot);
  if (!sub) throw new Error(`no subvolume ${snapshot} in ${raw}`);
  await mkdir(destDir, { recursive: true });
  await execa('btrfs', ['restore', '-r', String(sub.id), '-m', '-S', '-x', raw, destDir]);
  for (const [first, ...others] of (await btrfsNames(raw, sub.id)).names.values()) {
    for (const other of others) {
      await unlink(join(destDir, other));
      await link(join(destDir, first), join(destDir, other));
    }
  }
}

/** The data extents (disk byte + length) a file of a snapshot uses: equal lists mean shared, not copied, data. */
export async function btrfsExtents(raw: string, snapshot: string, path: string): Promise<string[]> {
  const sub = (await btrfsSubvolumes(raw)).get(snapshot);
  if (!sub) throw new Error(`no subvolume ${snapshot} in ${raw}`);
  const { names, extents } = await btrfsNames(raw, sub.id);
  const rel = path.replace(/^\/+/, '');
  const ino = [...names].find(([, n]) => n.includes(rel))?.[0];
  if (ino === undefined) throw new Error(`no ${path} in snapshot ${snapshot}`);
  return extents.get(ino) ?? [];
}
