import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * XDG locations (docs/design.md, "Local state"); tests point both variables at temp dirs.
 * Always absolute: mountpoints are compared with the kernel's mount table.
 */
export function configDir(): string {
  return resolve(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'sshvault');
}

export function stateRoot(): string {
  return resolve(process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'sshvault');
}

export function cacheRoot(): string {
  return resolve(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'sshvault');
}

export interface VaultPaths {
  config: string;
  state: string;
  /** Private (0700) directory holding the mountpoints, sockets and transient key files of a run. */
  run: string;
  remoteMount: string;
  plainMount: string;
  /** Where the kernel engine's nbdfuse exposes the ciphertext image the image cache serves. */
  cipherMount: string;
  nbdSocket: string;
  /** Where the image cache serves the remote image to qemu-nbd. */
  imageSocket: string;
  /** The local cache of image blocks (ciphertext), valid for one remote generation. */
  blockCache: string;
  fsMount: string;
  stackFile: string;
  runLock: string;
  runsFile: string;
  catalogFile: string;
  /** The write counter and complete snapshots this machine last saw on the image. */
  sequenceFile: string;
  headerBackup: string;
  logFile: string;
  /** Run ids of this state directory's remote locks not yet released: see remote/own-locks.ts. */
  ownLocks: string;
  /** e2fsck's undo file while push audits a repair after an unclean stop. */
  pushRepairUndo: string;
  /** e2fsck's undo file of the last `check --repair`, for `check --undo-repair`. */
  checkRepairUndo: string;
}

export function vaultPaths(name: string): VaultPaths {
  const state = join(stateRoot(), name);
  const run = join(state, 'run');
  return {
    config: join(configDir(), `${name}.json`),
    state,
    run,
    remoteMount: join(run, 'remote'),
    plainMount: join(run, 'plain'),
    cipherMount: join(run, 'cipher'),
    nbdSocket: join(run, 'nbd.sock'),
    imageSocket: join(run, 'image.sock'),
    blockCache: join(cacheRoot(), name, 'blocks'),
    fsMount: join(run, 'fs'),
    stackFile: join(state, 'stack.json'),
    runLock: join(state, 'run.lock'),
    runsFile: join(state, 'runs.jsonl'),
    catalogFile: join(state, 'catalog.json'),
    sequenceFile: join(state, 'sequence.json'),
    headerBackup: join(state, 'luks-header.img'),
    logFile: join(state, 'last-run.log'),
    ownLocks: join(state, 'remote-locks.json'),
    pushRepairUndo: join(state, 'push-repair.e2undo'),
    checkRepairUndo: join(state, 'check-repair.e2undo'),
  };
}
