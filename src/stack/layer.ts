import type { VaultPaths } from '../config/paths.js';
import type { StackRecord } from './stack.js';

/**
 * One layer of the stack (docs/design.md, "Layers and the stack"): it opens one thing on top of
 * what the layer below gives it (a directory, a file or a block device) and
 * closes it again. `alive` says whether what it depends on is still there, so
 * nothing ever writes into an empty mountpoint after sshfs died.
 */
export interface Layer {
  readonly name: string;
  open(below: string): Promise<string>;
  close(): Promise<void>;
  alive(): Promise<boolean>;
}

/** Something a dead run left behind that a layer recognises as its own. */
export interface Leftover {
  layer: string;
  what: string;
  teardown(): Promise<void>;
}

/** What every layer is told when it looks for leftovers: the same for all, so recovery can ask each in turn. */
export interface LeftoverContext {
  paths: VaultPaths;
  vault: string;
  /** The dead run's stack.json, if it left one: what it opened, and what each layer gave. */
  previous?: StackRecord;
  /** Where `sshvault mount` showed the snapshots, from its mount record. */
  mountpoint?: string;
}

/** A kind of layer, as recovery sees it: every layer class has this as a static method. */
export interface LeftoverFinder {
  findLeftovers(ctx: LeftoverContext): Promise<Leftover[]>;
}
