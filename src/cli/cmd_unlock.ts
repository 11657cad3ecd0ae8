import { UsageError } from '../errors.js';
import { connect } from '../remote/connection.js';
import { breakLock, breakReaders, describeOwner } from '../remote/lock.js';
import { sftpDir } from '../remote/remote-dir.js';
import { parseRemote } from '../remote/url.js';
import { info } from '../ui/console.js';
import { openContext } from './common.js';
import { action } from './action.js';
import { vaultArg, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) =>
  vaultArg(y).option('force', { type: 'boolean', describe: 'really break it' }).example('$0 unlock --force', 'after making sure the lock holder is dead');

type UnlockArgs = ArgsOf<typeof builder>;

export const unlockCommand: CommandOf<typeof builder> = {
  command: 'unlock [vault]',
  describe: 'break the remote lock',
  builder,
  handler: action('unlock', cmdUnlock),
};

/** Breaks the remote lock on purpose. Needs no passphrase: the lock lives beside the image, not in it. */
export async function cmdUnlock(a: UnlockArgs): Promise<number> {
  const ctx = await openContext(a.vault);
  if (!a.force) throw new UsageError("unlock breaks another client's lock and can destroy the vault if that client is still writing; add --force if you are sure");
  const remote = parseRemote(ctx.config.remote);
  const conn = await connect({
    remote,
    identity: ctx.config.identity,
    knownHosts: ctx.config.knownHosts,
    requestTimeoutSeconds: ctx.config.requestTimeoutSeconds,
  });
  try {
    const files = sftpDir(await conn.sftp());
    const holder = await breakLock(files, remote.dir);
    const readers = await breakReaders(files, remote.dir);
    if (holder === undefined && !readers.length) info(`Vault '${ctx.name}' was not locked.`);
    if (holder !== undefined) info(`Broke the lock of vault '${ctx.name}'${holder ? ` held by ${describeOwner(holder)}` : ' (no owner recorded)'}.`);
    for (const r of readers) info(`Broke the read lock of vault '${ctx.name}' held by ${describeOwner(r)}.`);
  } finally {
    await conn.close();
  }
  return 0;
}
