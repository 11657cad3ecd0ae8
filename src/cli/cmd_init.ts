import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { vaultPaths } from '../config/paths.js';
import { checkVaultDirs } from '../config/private-dirs.js';
import { checkVaultName, saveConfig, type EngineChoice, type FsType, type VaultConfig } from '../config/vault-config.js';
import { UsageError } from '../errors.js';
import { configureLog } from '../log.js';
import { parseRemote } from '../remote/url.js';
import { chooseEngine } from '../stack/engine.js';
import { emptyCatalog, writeCatalog } from '../snapshot/catalog.js';
import { FORMAT_VERSION, writeInitialLayout } from '../snapshot/layout.js';
import { info } from '../ui/console.js';
import { formatBytes, parseSize } from '../ui/format.js';
import { renderRunsTable, DEFAULT_LINK } from '../ui/runs-view.js';
import { createVault } from '../session/open.js';
import { exclusive, passphraseFor, type GlobalArgs } from './common.js';

export interface InitArgs extends GlobalArgs {
  vault: string;
  remote: string;
  size: string;
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  source?: string[];
  exclude?: string[];
  engine: EngineChoice;
  fs: FsType;
  preallocate?: boolean;
}

/** LUKS1 with a 512-bit key puts the payload at 2 MiB; below this there is no room for a useful filesystem. */
const MIN_SIZE = 64 * 1024 * 1024;

export async function cmdInit(a: InitArgs): Promise<number> {
  const name = checkVaultName(a.vault);
  const paths = vaultPaths(name);
  if (existsSync(paths.config)) throw new UsageError(`vault '${name}' already exists (${paths.config})`);
  if (existsSync(paths.headerBackup)) {
    throw new UsageError(`${paths.headerBackup} exists, but vault '${name}' has no config: a LUKS header backup left from another vault; move it away, then run init again`);
  }
  try {
    parseRemote(a.remote);
  } catch (e) {
    throw new UsageError(`--remote ${a.remote}: ${(e as Error).message}`);
  }
  let size: number;
  try {
    size = parseSize(a.size);
  } catch (e) {
    throw new UsageError(`--size ${a.size}: ${(e as Error).message}`);
  }
  if (size < MIN_SIZE) throw new UsageError(`--size must be at least ${formatBytes(MIN_SIZE)}`);
  const sources = (a.source ?? []).map((s) => resolve(s));
  for (const s of sources) if (!existsSync(s)) throw new UsageError(`source path ${s} does not exist`);
  await chooseEngine(a.engine);

  const config: VaultConfig = {
    name,
    vaultId: randomUUID(),
    remote: a.remote,
    image: 'vault.img',
    size,
    fs: a.fs,
    engine: a.engine,
    sources,
    excludes: a.exclude ?? [],
    ...(a.identity ? { identity: resolve(a.identity) } : {}),
    ...(a.knownHosts ? { knownHosts: resolve(a.knownHosts) } : {}),
    ...(a.passphraseFile ? { passphraseFile: resolve(a.passphraseFile) } : {}),
    ...(a.passphraseCommand ? { passphraseCommand: a.passphraseCommand } : {}),
  };
  await checkVaultDirs(paths);
  configureLog({ file: paths.logFile });
  const ctx = { name, config, paths };
  return exclusive(ctx, async () => {
    const passphrase = await passphraseFor(a, {}, true);
    const run = await createVault(ctx, { command: 'init', passphrase, size, preallocate: !!a.preallocate, acceptNewHostKey: a.acceptNewHostKey }, async ({ layout }) => {
      await writeInitialLayout(layout, { vaultId: config.vaultId, created: new Date().toISOString(), fs: config.fs, formatVersion: FORMAT_VERSION });
      await writeCatalog(layout.catalog, emptyCatalog(config.vaultId));
    });
    if (run.error) throw run.error;
    await saveConfig(config);
    await writeCatalog(paths.catalogFile, emptyCatalog(config.vaultId));
    if (a.json) {
      info(JSON.stringify({ vault: name, vaultId: config.vaultId, config: paths.config, headerBackup: paths.headerBackup, run: run.record }, null, 2));
    } else {
      info(`Vault '${name}' created: ${formatBytes(size)} LUKS1 image at ${a.remote}, ${config.fs} inside (${run.record.engine} engine).`);
      info(`Config: ${paths.config}`);
      info(`LUKS header backup: ${paths.headerBackup} (keep a copy off this machine)`);
      info(renderRunsTable([run.record], DEFAULT_LINK));
    }
    return 0;
  });
}
