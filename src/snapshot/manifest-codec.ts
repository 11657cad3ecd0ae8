import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzip as gzipCb } from 'node:zlib';

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

const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
const CR = 0x0d;
const HASH_SIGN = 0x23;

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
    if (!line.length || line[0] === HASH_SIGN) continue;
    const escaped = line[0] === BACKSLASH;
    const body = escaped ? line.subarray(1) : line;
    const hash = body.subarray(0, 64).toString('latin1');
    // Two spaces, or ' *' for sha256sum's binary mode.
    if (!/^([0-9a-f]{64}|-{64})$/.test(hash) || body[64] !== 0x20) throw new Error(`manifest line ${entries.length + 1} is not a sha256sum line`);
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

export async function decodeManifest(data: Buffer): Promise<ManifestEntry[]> {
  return parseManifest(await gunzip(data));
}

/**
 * A delta manifest, `<name>.delta.gz`: the entries added or changed since its
 * base snapshot's manifest in sha256sum's format, and each path no longer
 * listed as a line whose hash is 64 dashes, after a `# base <name>` line. An
 * entry's key is its line without the hash, so `awk` can resolve a chain
 * without sshvault (README, "Restore without sshvault").
 */
export interface ManifestDelta {
  base: string;
  upserts: ManifestEntry[];
  removed: Buffer[];
}

export const REMOVED = '-'.repeat(64);

export async function encodeDelta(d: ManifestDelta): Promise<Buffer> {
  const lines = [Buffer.from(`# base ${d.base}\n`), ...d.upserts.map(formatEntry), ...d.removed.map((path) => formatEntry({ path, hash: REMOVED }))];
  return gzip(Buffer.concat(lines), { level: 9 });
}

export async function decodeDelta(data: Buffer): Promise<ManifestDelta> {
  const text = await gunzip(data);
  const header = /^# base (\S+)\n/.exec(text.subarray(0, 200).toString('latin1'));
  if (!header) throw new Error('delta manifest has no base line');
  const upserts: ManifestEntry[] = [];
  const removed: Buffer[] = [];
  for (const e of parseManifest(text)) {
    if (e.hash === REMOVED) removed.push(e.path);
    else upserts.push(e);
  }
  return { base: header[1]!, upserts, removed };
}
