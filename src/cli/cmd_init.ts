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
import { filesystemFor } from '../stack/filesystems/index.js';
import { FsLayer } from '../stack/fs.js';
import { emptyCatalog, writeCatalog } from '../snapshot/catalog.js';
import { FORMAT_VERSION, imageLayout, writeInitialLayout } from '../snapshot/layout.js';
import { writeImageSequence } from '../snapshot/sequence.js';
import { info } from '../ui/console.js';
import { formatBytes, parseSize } from '../ui/format.js';
import { renderRunsTable, DEFAULT_LINK } from '../ui/runs-view.js';
import { exclusive, meteredSession, passphraseFor, type GlobalArgs } from './common.js';
import { join } from 'node:path';

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
  const fs = filesystemFor(a.fs);
  if (size < fs.minImageBytes) throw new UsageError(`--size must be at least ${formatBytes(fs.minImageBytes)} for ${a.fs}`);
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
    const run = await meteredSession(
      ctx,
      { command: 'init', readOnly: false, passphrase, mountFs: false, create: { size, preallocate: !!a.preallocate }, acceptNewHostKey: a.acceptNewHostKey },
      async (session, meter) => {
        meter.begin('format');
        try {
          await session.formatImage(size);
          session.stack.setTop(join(paths.remoteMount, config.image));
          for (const layer of session.decryptionLayers()) await session.stack.push(layer);
          await fs.make(session.stack.top);
          await session.stack.push(new FsLayer(paths.fsMount, fs, false, () => {}, paths.pushRepairUndo));
          const layout = imageLayout(paths.fsMount);
          await writeInitialLayout(layout, { vaultId: config.vaultId, created: new Date().toISOString(), fs: config.fs, formatVersion: FORMAT_VERSION });
          await writeCatalog(layout.catalog, emptyCatalog(config.vaultId));
          await writeImageSequence(layout, { counter: 1, runId: session.runId, at: new Date().toISOString() });
          session.seen = { counter: 1, snapshots: [] };
          await session.fsLayer()!.flush();
        } catch (e) {
          // Asked now: closing the session removes the half-made image, which frees the space.
          throw (await session.fullError(e)) ?? e;
        }
      },
    );
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
