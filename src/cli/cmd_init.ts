import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { vaultPaths } from '../config/paths.js';
import { checkVaultDirs } from '../config/private-dirs.js';
import { checkVaultName, saveConfig, type VaultConfig } from '../config/vault-config.js';
import { UsageError } from '../errors.js';
import { configureLog } from '../log.js';
import { parseRemote } from '../remote/url.js';
import { chooseEngine, ENGINE_CHOICES } from '../stack/engines/index.js';
import { filesystemFor, FS_CHOICES } from '../stack/filesystems/index.js';
import { emptyCatalog, writeCatalog } from '../snapshot/catalog.js';
import { FORMAT_VERSION, writeInitialLayout } from '../snapshot/layout.js';
import { info } from '../ui/console.js';
import { formatBytes, parseSize } from '../ui/format.js';
import { renderRunsTable, DEFAULT_LINK } from '../ui/runs-view.js';
import { createVault } from '../session/open.js';
import { IMAGE_FILE } from '../remote/layout.js';
import { exclusive, passphraseFor } from './common.js';
import { action } from './action.js';
import { sshOptions, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) =>
  sshOptions(
    y
      .positional('vault', { type: 'string', demandOption: true })
      .option('remote', { type: 'string', demandOption: true, describe: 'ssh://[user@]host[:port]/abs/dir or [user@]host:dir' })
      .option('size', { type: 'string', demandOption: true, describe: 'image size, e.g. 20G' }),
  )
    .option('source', { type: 'string', array: true, describe: 'path to back up (repeatable)' })
    .option('exclude', { type: 'string', array: true, describe: 'rsync exclude pattern (repeatable)' })
    .option('engine', { choices: ENGINE_CHOICES, default: 'auto' })
    .option('fs', { choices: FS_CHOICES, default: FS_CHOICES[0], describe: 'btrfs (read-only subvolume snapshots), ext4 without journal (rsync --link-dest), or ext2 (the seeds\' layout)' })
    .option('preallocate', { type: 'boolean', describe: 'write every byte of the image now (uploads its full size)' })
    .example('$0 init laptop --remote ssh://me@box.example.net/srv/backup --size 200G --source /home/me --passphrase-command "pass show backup"', 'a 200 GiB vault for /home/me');

type InitArgs = ArgsOf<typeof builder>;

export const initCommand: CommandOf<typeof builder> = {
  command: 'init <vault>',
  describe: 'create a vault: a LUKS image on the remote with a filesystem inside',
  builder,
  handler: action('init', cmdInit, { root: true, staleWarning: false }),
};

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
    image: IMAGE_FILE,
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
