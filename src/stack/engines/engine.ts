import type { VaultPaths } from '../../config/paths.js';
import type { Connection } from '../../remote/connection.js';
import type { ByteRange } from '../filesystems/filesystem.js';
import type { Layer, LeftoverFinder } from '../layer.js';

/** An engine's own answer to whether it can run on this machine, and why (what `doctor` prints). */
export interface EngineProbe {
  ok: boolean;
  reason: string;
}

/** What an engine needs to stack its layers on the vault's image. */
export interface BlockContext {
  paths: VaultPaths;
  vault: string;
  conn: Connection;
  image: {
    /** The image's path on the remote, as SFTP sees it. */
    remote: string;
  };
  passphrase: string;
  readOnly: boolean;
  /** The remote LUKS header as checked at connect; init has none yet. */
  phdr?: Buffer;
  /** The header area from the local backup (as checked, or as init made it): what decrypts, when there is one. */
  header?: Buffer;
  /** The remote generation as this run found it and leaves it, which a block cache must match. */
  generation: { found?: string; now?: string };
  cacheBytes: number;
  /** A block cache for this run alone, in the run directory, never saved: the vault's own cache stays as it is. */
  scratchCache?: boolean;
  /** The filesystem's bytes every writer rewrites: what proves a reused block cache. */
  rewrittenEveryRun: ByteRange;
  command: string;
  notice: (message: string) => void;
}

/** The layers between the image and the filesystem, and what the first of them opens. */
export interface BlockStack {
  on: string;
  layers: Layer[];
}

/**
 * One way to decrypt the image (docs/design.md, "Layers and engines"). A new
 * engine is one module implementing this and one entry in the list in
 * engines/index.ts.
 */
export interface Engine {
  readonly name: string;
  probe(): Promise<EngineProbe>;
  blockStack(ctx: BlockContext): BlockStack;
  /** The kinds of layer it stacks, top first: recovery asks each for what a dead run left. */
  readonly layerKinds: readonly LeftoverFinder[];
}
