import { vaultPaths } from '../config/paths.js';
import { checkVaultDirs } from '../config/private-dirs.js';
import { listVaults, resolveVaultName } from '../config/vault-config.js';
import { recoverLeftovers } from '../stack/recovery.js';
import { RunLock } from '../stack/run-lock.js';
import { info } from '../ui/console.js';
import type { GlobalArgs } from './common.js';
import { releaseStaleMount } from './mount-record.js';

export interface RecoverArgs extends GlobalArgs {
  vault?: string;
}

/**
 * `sshvault recover`: tears down what a killed run left (mounts, loop and
 * dm-crypt devices, qemu-nbd, sshfs). Every command does this on its own; this
 * does it on demand, for one vault or all. The dead run's remote lock is
 * stale and the next run breaks it.
 */
export async function cmdRecover(a: RecoverArgs): Promise<number> {
  const names = a.vault ? [await resolveVaultName(a.vault)] : await listVaults();
  const report: { vault: string; tornDown: string[] }[] = [];
  for (const name of names) {
    const paths = vaultPaths(name);
    await checkVaultDirs(paths);
    const lock = await RunLock.take(paths, name);
    try {
      const stale = await releaseStaleMount(paths);
      report.push({ vault: name, tornDown: [...stale, ...(await recoverLeftovers(paths, name)).tornDown] });
    } finally {
      await lock.release();
    }
  }
  if (a.json) info(JSON.stringify(report, null, 2));
  else for (const r of report) info(r.tornDown.length ? `${r.vault}: tore down ${r.tornDown.join(', ')}` : `${r.vault}: nothing to recover`);
  return 0;
}
