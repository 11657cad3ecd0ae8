import { readFile, rm } from 'node:fs/promises';
import type { VaultPaths } from '../config/paths.js';
import type { Engine } from './engines/engine.js';
import { ENGINES } from './engines/index.js';
import { FsLayer } from './fs.js';
import type { Leftover, LeftoverContext, LeftoverFinder } from './layer.js';
import { layersTopFirst } from './layer-order.js';
import { SshfsLayer } from './mount/sshfs.js';
import { removeKeyLeftovers } from './secret-fifo.js';
import type { StackRecord } from './stack.js';

const fsLeftovers: LeftoverFinder = { findLeftovers: (ctx) => FsLayer.findLeftovers(ctx.paths.fsMount) };

/** Every kind of layer a run may leave, top first: the filesystem, each engine's layers, sshfs at the bottom. */
export function leftoverFinders(engines: readonly Engine[] = ENGINES): LeftoverFinder[] {
  return [fsLeftovers, ...layersTopFirst(engines.map((e) => e.layerKinds)), SshfsLayer];
}

/** Everything of this vault's that a dead run may have left, top of the stack first. */
export async function findLeftovers(ctx: LeftoverContext, finders: readonly LeftoverFinder[] = leftoverFinders()): Promise<Leftover[]> {
  const out: Leftover[] = [];
  for (const finder of finders) out.push(...(await finder.findLeftovers(ctx)));
  return out;
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
  for (const leftover of await findLeftovers({ paths, vault, previous })) {
    await leftover.teardown();
    tornDown.push(leftover.what);
  }
  tornDown.push(...(await removeKeyLeftovers(paths.run)));
  await rm(paths.stackFile, { force: true });
  return { previous, tornDown };
}
