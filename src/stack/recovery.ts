import { readFile, rm } from 'node:fs/promises';
import type { VaultPaths } from '../config/paths.js';
import { FsLayer } from './fs.js';
import type { Leftover } from './layer.js';
import { LoopLayer } from './loop.js';
import { KernelLuksLayer } from './luks-kernel.js';
import { UserspaceLuksLayer } from './luks-userspace.js';
import { removeKeyLeftovers } from './secret-fifo.js';
import { SshfsLayer } from './mount/sshfs.js';
import type { StackRecord } from './stack.js';

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
