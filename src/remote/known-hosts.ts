import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { run } from '../exec.js';
import { CommandError } from '../errors.js';

/**
 * Host key checking against OpenSSH's known_hosts files. ssh2 has no
 * known_hosts support, and hashed entries need OpenSSH's own matching, so
 * lookups go through `ssh-keygen -F` (docs/design.md, "Transport and metering").
 */

export function keyType(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The name known_hosts uses for a host: bare on port 22, `[host]:port` elsewhere. */
export function hostPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export interface KnownKey {
  type: string;
  blob: string;
  revoked: boolean;
  /** A `@cert-authority` line: it vouches for host certificates, which ssh2 cannot check, never for a plain key. */
  certAuthority?: boolean;
  /** The known_hosts file it is in. */
  file?: string;
}

export async function lookupKnownKeys(pattern: string, files: string[]): Promise<KnownKey[]> {
  const keys: KnownKey[] = [];
  for (const file of files) {
    let out: string;
    try {
      out = (await run('ssh-keygen', ['-F', pattern, '-f', file])).stdout;
    } catch (e) {
      // Exit 1 means "no entry" (or no such file): nothing known there.
      if (e instanceof CommandError && e.commandExitCode === 1) continue;
      throw e;
    }
    for (const line of out.split('\n')) {
      if (!line.trim() || line.startsWith('#')) continue;
      const fields = line.trim().split(/\s+/);
      const marker = fields[0].startsWith('@') ? fields.shift() : undefined;
      if (fields.length < 3) continue;
      keys.push({
        type: fields[1],
        blob: fields[2],
        revoked: marker === '@revoked',
        ...(marker === '@cert-authority' ? { certAuthority: true } : {}),
        file,
      });
    }
  }
  return keys;
}

export type HostKeyVerdict =
  | { kind: 'known' }
  | { kind: 'unknown'; certAuthorityOnly?: true }
  | { kind: 'changed'; knownTypes: string[] }
  | { kind: 'revoked' };

export function judgeHostKey(presented: Buffer, known: KnownKey[]): HostKeyVerdict {
  const b64 = presented.toString('base64');
  if (known.some((k) => k.revoked && k.blob === b64)) return { kind: 'revoked' };
  const valid = plainKeys(known);
  if (valid.some((k) => k.blob === b64)) return { kind: 'known' };
  if (valid.length === 0) return known.some((k) => k.certAuthority && !k.revoked) ? { kind: 'unknown', certAuthorityOnly: true } : { kind: 'unknown' };
  return { kind: 'changed', knownTypes: [...new Set(valid.map((k) => k.type))] };
}

/** The host's own keys that are trusted: not revoked, not certificate authorities. */
export function plainKeys(known: KnownKey[]): KnownKey[] {
  return known.filter((k) => !k.revoked && !k.certAuthority);
}

/** Appends the key unless the file already has it for this host (another run may have recorded it meanwhile). */
export async function recordHostKey(file: string, pattern: string, blob: Buffer): Promise<void> {
  const b64 = blob.toString('base64');
  if (existsSync(file) && plainKeys(await lookupKnownKeys(pattern, [file])).some((k) => k.blob === b64)) return;
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await appendFile(file, `${pattern} ${keyType(blob)} ${blob.toString('base64')}\n`, { mode: 0o600 });
}

/** ssh2 host key algorithm names for a known_hosts key type, so the server shows us a key we can check. */
export function hostKeyAlgorithms(types: string[]): string[] {
  const out: string[] = [];
  for (const t of types) {
    if (t === 'ssh-rsa') out.push('rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa');
    else out.push(t);
  }
  return [...new Set(out)];
}
