import { vaultPaths } from '../config/paths.js';
import { checkVaultDirs } from '../config/private-dirs.js';
import { readPassphrase } from '../config/passphrase.js';
import { loadConfig, resolveVaultName, type VaultConfig } from '../config/vault-config.js';
import { configureLog } from '../log.js';
import type { VaultContext } from '../session/open.js';
import { recoverLeftovers } from '../stack/recovery.js';
import { RunLock } from '../stack/run-lock.js';
import { notice } from '../ui/console.js';
import { mountHoldsVault, releaseStaleMount } from './mount-record.js';
import type { GlobalArgs } from './options.js';
import { warnIfStale } from './staleness.js';

export type { VaultContext };

export async function openContext(given: string | undefined): Promise<VaultContext> {
  const name = await resolveVaultName(given);
  const config = await loadConfig(name);
  const paths = vaultPaths(name);
  await checkVaultDirs(paths);
  configureLog({ file: paths.logFile });
  await warnIfStale(name, config, paths.runsFile);
  return { name, config, paths };
}

export async function passphraseFor(args: Pick<GlobalArgs, 'passphraseFile' | 'passphraseCommand'>, config: Partial<VaultConfig>, confirm = false): Promise<string> {
  return readPassphrase(
    { file: args.passphraseFile, command: args.passphraseCommand },
    { file: config.passphraseFile, command: config.passphraseCommand },
    { confirm },
  );
}

/**
 * Runs `fn` as the only sshvault run of this vault on this host, after
 * tearing down whatever a dead run left behind (and saying so in one line).
 */
export async function exclusive<T>(ctx: Pick<VaultContext, 'name' | 'paths'>, fn: () => Promise<T>): Promise<T> {
  const lock = await RunLock.take(ctx.paths, ctx.name).catch(async (e) => {
    throw (await mountHoldsVault(ctx.paths, ctx.name)) ?? e;
  });
  try {
    const stale = await releaseStaleMount(ctx.paths);
    const r = await recoverLeftovers(ctx.paths, ctx.name);
    const tornDown = [...stale, ...r.tornDown];
    if (tornDown.length) {
      const who = r.previous ? ` (${r.previous.command}, pid ${r.previous.pid}, started ${r.previous.started})` : '';
      notice(`Cleaned up after an interrupted run${who}: ${tornDown.join(', ')}.`);
    }
    return await fn();
  } finally {
    await lock.release();
  }
}
