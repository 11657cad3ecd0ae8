import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UsageError } from '../errors.js';
import { configDir, vaultPaths } from './paths.js';
import type { RetentionPolicy } from '../snapshot/retention.js';
import { parseDuration, parseLinkRate } from '../ui/format.js';
import { ENGINE_CHOICES } from '../stack/engines/index.js';
import { FS_CHOICES } from '../stack/filesystems/index.js';

/** A filesystem's name (`FS_CHOICES`). */
export type FsType = string;
/** `auto` or an engine's name (`ENGINE_CHOICES`). */
export type EngineChoice = string;

/** One human-editable JSON file per vault (docs/design.md, "Local state"). */
export interface VaultConfig {
  name: string;
  vaultId: string;
  remote: string;
  image: string;
  size: number;
  fs: FsType;
  engine: EngineChoice;
  sources: string[];
  excludes: string[];
  identity?: string;
  knownHosts?: string;
  passphraseFile?: string;
  passphraseCommand?: string;
  retention?: RetentionPolicy;
  /** Size limit of the local block cache in bytes; 0 turns it off (default: DEFAULT_CACHE_BYTES). */
  cacheBytes?: number;
  /** How old the last successful push may be before the vault counts as stale: `36h`, `3d` (default DEFAULT_MAX_AGE). */
  maxAge?: string;
  /** Shell commands run after a push: they get the summary on stdin and SSHVAULT_* variables. */
  onSuccess?: string;
  onFailure?: string;
  /** Upload cap of every run, a link rate such as `2mbit` (`--limit-upload` overrides it). */
  limitUpload?: string;
  /** How long a remote request may go unanswered before the run gives up with exit 4 (default: DEFAULT_REQUEST_TIMEOUT_SECONDS). */
  requestTimeoutSeconds?: number;
}

export const DEFAULT_MAX_AGE = '3d';

/** Enough for the metadata of a few million files with 1 KiB blocks; see the README's 'Local block cache'. */
export const DEFAULT_CACHE_BYTES = 1 << 30;

const nameRe = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function checkVaultName(name: string): string {
  if (!nameRe.test(name)) {
    throw new UsageError(`invalid vault name '${name}': use letters, digits, '.', '_' and '-' (at most 63 characters)`);
  }
  return name;
}

export async function listVaults(): Promise<string[]> {
  try {
    const names = await readdir(configDir());
    return names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)).sort();
  } catch {
    return [];
  }
}

/** `<vault>` may be left out when exactly one vault is configured (docs/design.md, "CLI contract"). */
export async function resolveVaultName(given: string | undefined): Promise<string> {
  if (given) return checkVaultName(given);
  const all = await listVaults();
  if (all.length === 1) return all[0];
  if (all.length === 0) throw new UsageError(`no vault is configured in ${configDir()}; create one with 'sshvault init'`);
  throw new UsageError(`several vaults are configured (${all.join(', ')}); name the one to use`);
}

function fail(file: string, why: string): never {
  throw new UsageError(`config file ${file} is broken: ${why}; fix it or run 'sshvault init' again`);
}

export function validateConfig(raw: unknown, file: string): VaultConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, 'it is not a JSON object');
  const c = raw as Record<string, unknown>;
  const str = (k: string, required = true): string | undefined => {
    const v = c[k];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || v === '') fail(file, `'${k}' must be a non-empty string`);
    return v;
  };
  const strList = (k: string): string[] => {
    const v = c[k] ?? [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail(file, `'${k}' must be a list of strings`);
    return v as string[];
  };
  if (typeof c.size !== 'number' || !Number.isSafeInteger(c.size) || c.size <= 0) fail(file, `'size' must be a positive number of bytes`);
  const fs = str('fs');
  if (fs === undefined || !FS_CHOICES.includes(fs)) fail(file, `'fs' must be ${FS_CHOICES.slice(0, -1).join(', ')} or ${FS_CHOICES.at(-1)}`);
  const engine = str('engine');
  if (engine === undefined || !ENGINE_CHOICES.includes(engine)) fail(file, `'engine' must be ${ENGINE_CHOICES.slice(0, -1).join(', ')} or ${ENGINE_CHOICES.at(-1)}`);
  if (c.cacheBytes !== undefined && (typeof c.cacheBytes !== 'number' || !Number.isSafeInteger(c.cacheBytes) || c.cacheBytes < 0)) {
    fail(file, `'cacheBytes' must be a number of bytes (0 turns the block cache off)`);
  }
  if (c.maxAge !== undefined) {
    if (typeof c.maxAge !== 'string') fail(file, `'maxAge' must be a duration such as "3d" or "36h"`);
    try {
      parseDuration(c.maxAge);
    } catch (e) {
      fail(file, `'maxAge': ${(e as Error).message}`);
    }
  }
  if (c.limitUpload !== undefined) {
    try {
      parseLinkRate(String(c.limitUpload));
    } catch (e) {
      fail(file, `'limitUpload': ${(e as Error).message}`);
    }
  }
  const timeout = c.requestTimeoutSeconds;
  if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0)) {
    fail(file, `'requestTimeoutSeconds' must be a positive number of seconds`);
  }
  const retention = c.retention;
  if (retention !== undefined) {
    if (typeof retention !== 'object' || retention === null) fail(file, `'retention' must be an object`);
    for (const [k, v] of Object.entries(retention)) {
      if (!['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'].includes(k)) fail(file, `unknown retention rule '${k}'`);
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(file, `retention rule '${k}' must be a whole number`);
    }
  }
  return {
    name: checkVaultName(str('name')!),
    vaultId: str('vaultId')!,
    remote: str('remote')!,
    image: str('image')!,
    size: c.size,
    fs,
    engine,
    sources: strList('sources'),
    excludes: strList('excludes'),
    identity: str('identity', false),
    knownHosts: str('knownHosts', false),
    passphraseFile: str('passphraseFile', false),
    passphraseCommand: str('passphraseCommand', false),
    retention: retention as RetentionPolicy | undefined,
    ...(c.cacheBytes !== undefined ? { cacheBytes: c.cacheBytes as number } : {}),
    ...(c.maxAge !== undefined ? { maxAge: c.maxAge as string } : {}),
    ...(str('onSuccess', false) !== undefined ? { onSuccess: str('onSuccess', false) } : {}),
    ...(str('onFailure', false) !== undefined ? { onFailure: str('onFailure', false) } : {}),
    ...(str('limitUpload', false) !== undefined ? { limitUpload: str('limitUpload', false) } : {}),
    ...(timeout !== undefined ? { requestTimeoutSeconds: timeout as number } : {}),
  };
}

export async function loadConfig(name: string): Promise<VaultConfig> {
  const file = vaultPaths(name).config;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    const known = await listVaults();
    throw new UsageError(`unknown vault '${name}'${known.length ? ` (configured: ${known.join(', ')})` : ''}; create it with 'sshvault init'`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(file, `it is not valid JSON (${(e as Error).message})`);
  }
  return validateConfig(raw, file);
}

export async function saveConfig(config: VaultConfig): Promise<void> {
  const file = vaultPaths(config.name).config;
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp`;
  await writeFile(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, file);
}
