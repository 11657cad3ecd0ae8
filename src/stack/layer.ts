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
