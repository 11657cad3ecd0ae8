import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../errors.js';

/** Where things live inside the mounted image (docs/design.md, "On-image layout"). */
export const FORMAT_VERSION = 1;

export interface ImageLayout {
  root: string;
  meta: string;
  format: string;
  vaultJson: string;
  catalog: string;
  runs: string;
  snapshots: string;
}

export function imageLayout(root: string): ImageLayout {
  const meta = join(root, '.sshvault');
  return {
    root,
    meta,
    format: join(meta, 'format'),
    vaultJson: join(meta, 'vault.json'),
    catalog: join(meta, 'catalog.json'),
    runs: join(meta, 'runs.jsonl'),
    snapshots: join(root, 'snapshots'),
  };
}

export interface VaultMeta {
  vaultId: string;
  created: string;
  fs: string;
  formatVersion: number;
}

export async function writeInitialLayout(l: ImageLayout, meta: VaultMeta): Promise<void> {
  await mkdir(l.meta, { mode: 0o700 });
  await mkdir(l.snapshots, { mode: 0o700 });
  await writeFile(l.format, `${FORMAT_VERSION}\n`);
  await writeFile(l.vaultJson, JSON.stringify(meta, null, 2) + '\n');
}

/** Refuses images this version does not understand before anything is written to them. */
export async function readVaultMeta(l: ImageLayout): Promise<VaultMeta> {
  const format = Number((await readFile(l.format, 'utf8').catch(() => '')).trim());
  if (!format) throw new UsageError('the vault holds a filesystem but no sshvault metadata (/.sshvault/format); was it made by sshvault init?');
  if (format > FORMAT_VERSION) throw new UsageError(`the vault has format ${format}, newer than this sshvault understands (${FORMAT_VERSION}); upgrade sshvault`);
  return JSON.parse(await readFile(l.vaultJson, 'utf8')) as VaultMeta;
}

export async function snapshotDirs(l: ImageLayout): Promise<string[]> {
  return (await readdir(l.snapshots)).sort();
}
