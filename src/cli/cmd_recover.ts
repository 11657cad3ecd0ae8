import { vaultPaths } from '../config/paths.js';
import { checkVaultDirs } from '../config/private-dirs.js';
import { listVaults, resolveVaultName } from '../config/vault-config.js';
import { recoverLeftovers } from '../stack/recovery.js';
import { RunLock } from '../stack/run-lock.js';
import { info } from '../ui/console.js';
import { releaseStaleMount } from './mount-record.js';
import { action } from './action.js';
import { vaultArg, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) => vaultArg(y).example('$0 recover', 'after a crash or kill -9');

type RecoverArgs = ArgsOf<typeof builder>;

export const recoverCommand: CommandOf<typeof builder> = {
  command: 'recover [vault]',
  describe: 'tear down what a killed run left behind',
  builder,
  handler: action('recover', cmdRecover, { root: true }),
};

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
