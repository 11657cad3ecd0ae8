import { open, readFile, rm } from 'node:fs/promises';
import type { VaultPaths } from '../config/paths.js';
import { LockHeldError } from '../errors.js';
import { pidAlive } from '../remote/lock.js';
import { FsLayer } from './fs.js';
import type { Leftover } from './layer.js';
import { LoopLayer } from './loop.js';
import { KernelLuksLayer } from './luks-kernel.js';
import { UserspaceLuksLayer } from './luks-userspace.js';
import { removeKeyLeftovers } from './secret-fifo.js';
import { SshfsLayer } from './sshfs.js';
import type { StackRecord } from './stack.js';

/**
 * One run per vault on this host at a time: a pid file taken with O_EXCL.
 * A pid file whose process is gone is a crash's leftover and is replaced.
 */
export class RunLock {
  private constructor(private readonly file: string) {}

  static async take(paths: VaultPaths, vault: string): Promise<RunLock> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(paths.runLock, 'wx', 0o600);
        await fh.writeFile(`${process.pid}\n`);
        await fh.close();
        return new RunLock(paths.runLock);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const pid = Number((await readFile(paths.runLock, 'utf8').catch(() => '')).trim());
      if (pid && pid !== process.pid && pidAlive(pid)) {
        throw new LockHeldError(`another sshvault run (pid ${pid}) is using vault '${vault}' on this host; wait for it to finish`);
      }
      await rm(paths.runLock, { force: true });
    }
    throw new LockHeldError(`another sshvault run took vault '${vault}' on this host just now; try again`);
  }

  async release(): Promise<void> {
    await rm(this.file, { force: true });
  }
}

/** Everything of this vault's that a dead run may have left, top of the stack first. */
export async function findLeftovers(paths: VaultPaths, vault: string, previous?: StackRecord): Promise<Leftover[]> {
  const loops = (previous?.opened ?? []).filter((o) => o.layer === 'loop').map((o) => ({ device: o.gave, backing: o.on }));
  return [
    ...(await FsLayer.findLeftovers(paths.fsMount)),
    ...(await KernelLuksLayer.findLeftovers(vault, paths.state, previous)),
    ...(await LoopLayer.findLeftovers(paths.run, loops)),
    ...(await UserspaceLuksLayer.findLeftovers(paths.nbdSocket, paths.plainMount)),
    ...(await SshfsLayer.findLeftovers(paths.remoteMount)),
  ];
}

export interface Recovery {
  previous?: StackRecord;
  tornDown: string[];
}

/**
 * Tears down what a dead run left. Must only be called while holding the
 * RunLock, so a live run's stack is never touched.
 */
export async function recoverLeftovers(paths: VaultPaths, vault: string): Promise<Recovery> {
  const previous = await readFile(paths.stackFile, 'utf8').then(
    (t) => JSON.parse(t) as StackRecord,
    () => undefined,
  );
  const tornDown: string[] = [];
  for (const leftover of await findLeftovers(paths, vault, previous)) {
    await leftover.teardown();
    tornDown.push(leftover.what);
  }
  tornDown.push(...(await removeKeyLeftovers(paths.run)));
  await rm(paths.stackFile, { force: true });
  return { previous, tornDown };
}
