import { rm, writeFile } from 'node:fs/promises';
import type { VaultPaths } from '../config/paths.js';
import { LinkError } from '../errors.js';
import { debug } from '../log.js';
import type { Layer } from './layer.js';

export interface StackRecord {
  pid: number;
  command: string;
  started: string;
  layers: string[];
  /** What each opened layer gave the next one (a mountpoint, file or device), by layer name. */
  opened?: { layer: string; on: string; gave: string }[];
}

/**
 * Opens layers one on top of the other and closes them in reverse. Before a
 * layer opens, stack.json says so: if this process dies without closing,
 * the next command (or `sshvault recover`) knows what to look for.
 */
export class Stack {
  private readonly opened: Layer[] = [];
  private readonly record: StackRecord;
  private topPath: string;

  constructor(
    private readonly paths: VaultPaths,
    command: string,
    base: string,
  ) {
    this.record = { pid: process.pid, command, started: new Date().toISOString(), layers: [], opened: [] };
    this.topPath = base;
  }

  get top(): string {
    return this.topPath;
  }

  /** Where the next layer opens: normally the top, but the first decryption layer opens a file inside a mount. */
  setTop(path: string): void {
    this.topPath = path;
  }

  layer<T extends Layer>(name: string): T | undefined {
    return this.opened.find((l) => l.name === name) as T | undefined;
  }

  async push(layer: Layer): Promise<string> {
    this.record.layers.push(layer.name);
    await writeFile(this.paths.stackFile, JSON.stringify(this.record, null, 2) + '\n', { mode: 0o600 });
    debug(`opening ${layer.name} on ${this.topPath}`);
    const next = await layer.open(this.topPath);
    this.opened.push(layer);
    // A loop device's backing path can turn unrecognisable once sshfs under it is dead; the recorded name is not.
    this.record.opened!.push({ layer: layer.name, on: this.topPath, gave: next });
    await writeFile(this.paths.stackFile, JSON.stringify(this.record, null, 2) + '\n', { mode: 0o600 });
    this.topPath = next;
    return next;
  }

  /**
   * Every layer is still there. Checked before anything is written: once sshfs
   * is gone its mountpoint is an ordinary local directory (docs/design.md, "Failure model").
   */
  async assertAlive(): Promise<void> {
    for (const l of this.opened) {
      if (!(await l.alive())) throw new LinkError(`the ${l.name} layer went away (link lost?); the snapshot stays partial, run 'sshvault push' again`);
    }
  }

  /** Closes everything opened, in reverse, going on past failures so nothing is left behind. */
  async close(): Promise<void> {
    const errors: Error[] = [];
    while (this.opened.length) {
      const l = this.opened.pop()!;
      debug(`closing ${l.name}`);
      try {
        await l.close();
      } catch (e) {
        debug(`closing ${l.name} failed: ${(e as Error).message}`);
        errors.push(e as Error);
      }
    }
    if (errors.length) throw errors[0];
    await rm(this.paths.stackFile, { force: true });
  }
}
