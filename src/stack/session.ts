import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { VaultPaths } from '../config/paths.js';
import { DEFAULT_CACHE_BYTES, type VaultConfig } from '../config/vault-config.js';
import { LinkError, VaultFullError } from '../errors.js';
import { debug } from '../log.js';
import { connect, type Connection } from '../remote/connection.js';
import { newGeneration, readGeneration } from '../remote/generation.js';
import { GENERATION_FILE, remotePath } from '../remote/layout.js';
import { remoteFullError } from '../remote/full.js';
import { stat } from '../remote/sftp.js';
import type { TrafficMeter } from '../remote/traffic.js';
import { parseRemote, type RemoteSpec } from '../remote/url.js';
import { CreatedFiles } from '../session/create.js';
import { adoptRemoteHeader, checkRemoteHeader } from '../session/header.js';
import { lockVault, unlockVault, type VaultLock } from '../session/lock.js';
import { guardRollback } from '../session/rollback-guard.js';
import { imageLayout, snapshotDirs, type ImageLayout } from '../snapshot/layout.js';
import type { SeenState, Verdict } from '../snapshot/rollback.js';
import { completeSnapshots, writeImageSequence } from '../snapshot/sequence.js';
import { BindLayer } from './mount/bind.js';
import type { BlockStack, Engine } from './engines/engine.js';
import type { ByteRange } from './filesystems/filesystem.js';
import { chooseEngine } from './engines/index.js';
import { DETECT_FS, detectFilesystem, filesystemFor } from './filesystems/index.js';
import { FsLayer, readaheadForWholeFiles } from './fs.js';
import { ImageCacheLayer } from './block/image-cache.js';
import { SshfsLayer } from './mount/sshfs.js';
import { Stack } from './stack.js';

export interface SessionOptions {
  config: Pick<VaultConfig, 'name' | 'vaultId' | 'remote' | 'image' | 'engine' | 'fs' | 'identity' | 'knownHosts' | 'cacheBytes' | 'limitUpload' | 'requestTimeoutSeconds'>;
  paths: VaultPaths;
  command: string;
  readOnly: boolean;
  passphrase: string;
  meter: TrafficMeter;
  notice: (message: string) => void;
  acceptNewHostKey?: boolean;
  /**
   * Skip the comparison with the local header backup: a restore configured by
   * flags has none, and `key backup-header` is how a changed header is accepted.
   */
  skipHeaderCheck?: boolean;
  /**
   * Leave the vault's block cache out: everything is read from the remote
   * once (a scratch cache serves this run's re-reads), and the vault's cache
   * stays as the last push left it, neither trusted nor replaced by what a
   * check reads (all of the metadata, which no push needs).
   */
  bypassCache?: boolean;
  /** Take the image's write counter and snapshots as they are, even behind what this machine saw (`accept-remote`). */
  acceptRemote?: boolean;
  /** A vault given by flags: no local state to compare the image with, and none is left. */
  noLocalState?: boolean;
  /** With no local header backup, let a writing run use the remote header as it is (and save a backup of it). */
  trustRemoteHeader?: boolean;
}

/**
 * A vault opened for one command: the SSH connection, the remote lock and
 * the stack of layers, built here and nowhere else. The steps it strings
 * together live in src/session/ (docs/design.md, "A run").
 */
export class VaultSession {
  readonly runId = randomUUID();
  readonly started = new Date();
  readonly remote: RemoteSpec;
  conn: Connection | undefined;
  private lock: VaultLock | undefined;
  private readonly stack: Stack;
  /** The chosen engine's name, for the run record. */
  engine: string | undefined;
  private blockEngine: Engine | undefined;
  /** The remote generation as this run found it, and as it leaves it: a writer replaces it before it writes. */
  private generation: { found?: string; now?: string } = {};
  /** The userspace engine's image cache, once the decryption layers were made. */
  imageCache: ImageCacheLayer | undefined;
  /**
   * The write counter and complete snapshots as this run found them (and, for
   * a writer, left them): the local state takes them when the run succeeds.
   */
  seen: SeenState | undefined;
  /** How the image compared with the local state at open. */
  verdict: Verdict | undefined;
  /** The remote LUKS header as checked at connect; init has none yet. */
  private phdr: Buffer | undefined;
  /**
   * The header area the engines decrypt with, from the local backup (as
   * checked or as init formatted it); undefined when runs read the remote's.
   */
  private header: Buffer | undefined;
  /** What init made so far, so that a failed init can take it away again. */
  private created: CreatedFiles | undefined;

  constructor(private readonly o: SessionOptions) {
    this.remote = parseRemote(o.config.remote);
    this.stack = new Stack(o.paths, o.command, o.paths.remoteMount);
  }

  get imagePath(): string {
    return remotePath(this.remote.dir, this.o.config.image);
  }

  /** The image file inside the sshfs mount, once connected. */
  get imageFile(): string {
    return join(this.o.paths.remoteMount, this.o.config.image);
  }

  /** Where the vault's files are, once the filesystem is mounted. */
  get layout(): ImageLayout {
    return imageLayout(this.o.paths.fsMount);
  }

  /**
   * SSH, the remote lock, a look at the LUKS header, sshfs. With `create`
   * (init) the directory and the image file are made instead of checked.
   */
  async connect(create?: { size: number; preallocate: boolean }): Promise<void> {
    this.blockEngine = (await chooseEngine(this.o.config.engine)).engine;
    this.engine = this.blockEngine.name;
    await mkdir(this.o.paths.run, { recursive: true, mode: 0o700 });
    this.conn = await connect({
      remote: this.remote,
      identity: this.o.config.identity,
      knownHosts: this.o.config.knownHosts,
      acceptNewHostKey: this.o.acceptNewHostKey,
      requestTimeoutSeconds: this.o.config.requestTimeoutSeconds,
      onCounter: (c) => this.o.meter.attach(c),
      limitUpload: this.o.config.limitUpload,
    });
    const sftp = await this.conn.sftp();
    const generationFile = remotePath(this.remote.dir, GENERATION_FILE);
    if (create) {
      this.created = new CreatedFiles({ image: this.imagePath, generation: generationFile, headerBackup: this.o.paths.headerBackup }, this.o.notice);
      await this.created.makeDir(sftp, this.remote.dir);
    }
    const dirStat = await stat(sftp, this.remote.dir);
    if (!dirStat?.isDirectory()) {
      throw new LinkError(`the remote directory ${this.remote.dir} does not exist on ${this.conn.target}; check --remote or run 'sshvault init'`);
    }
    const lockOptions = {
      dir: this.remote.dir,
      owner: { vaultId: this.o.config.vaultId, runId: this.runId, command: this.o.command },
      readOnly: this.o.readOnly,
      ownLocksFile: this.o.paths.ownLocks,
      notice: this.o.notice,
    };
    await lockVault(sftp, lockOptions, (lock) => (this.lock = lock));
    let adopt = false;
    if (create) {
      await this.created!.makeImage(sftp, this.remote.dir, create.size, create.preallocate, async (e) => (await this.fullError(e)) ?? e);
    } else {
      const checked = await checkRemoteHeader(sftp, this.imagePath, {
        headerBackup: this.o.paths.headerBackup,
        readOnly: this.o.readOnly,
        skip: this.o.skipHeaderCheck,
        trustRemote: this.o.trustRemoteHeader,
        notice: this.o.notice,
      });
      this.phdr = checked.phdr;
      this.header = checked.header;
      adopt = checked.adopt;
    }
    const found = await readGeneration(sftp, generationFile);
    if (this.created) this.created.generation = true;
    this.generation = { found, now: this.o.readOnly ? found : await newGeneration(sftp, generationFile) };
    await this.stack.push(new SshfsLayer(this.conn, this.remote.dir, this.o.paths.remoteMount, this.o.readOnly));
    if (adopt) this.header = await adoptRemoteHeader(this.imageFile, this.o.paths.headerBackup, this.phdr!);
  }

  /**
   * Why a writing run failed, if the remote disk is full: a write into the
   * sparse image can fail in any layer (an I/O error under rsync, a flush at
   * unmount, cryptsetup writing through sshfs), so the failure is classified
   * here by asking the remote, not by the message that surfaced.
   */
  async fullError(e: unknown): Promise<VaultFullError | undefined> {
    if (e instanceof VaultFullError) return e;
    if (this.imageCache?.remoteFull) return this.imageCache.remoteFull;
    if (this.o.readOnly || !this.conn || this.conn.lost) return undefined;
    return remoteFullError(await this.conn.sftp(), this.remote.dir, this.conn.target, this.o.command, e).catch(() => undefined);
  }

  /** The LUKS engine's layers, below the filesystem. */
  private decryptionLayers(): BlockStack {
    const p = this.o.paths;
    const block = this.blockEngine!.blockStack({
      paths: p,
      vault: this.o.config.name,
      conn: this.conn!,
      image: { remote: this.imagePath },
      passphrase: this.o.passphrase,
      readOnly: this.o.readOnly,
      phdr: this.phdr,
      header: this.header,
      generation: this.generation,
      cacheBytes: this.o.config.cacheBytes ?? DEFAULT_CACHE_BYTES,
      scratchCache: this.o.bypassCache,
      rewrittenEveryRun: this.rewrittenEveryRun(),
      command: this.o.command,
      notice: this.o.notice,
    });
    this.imageCache = block.layers.find((l): l is ImageCacheLayer => l instanceof ImageCacheLayer);
    return block;
  }

  /** Where the cache proof looks: a filesystem found only once decrypted (restore --remote) has no cache to prove. */
  private rewrittenEveryRun(): ByteRange {
    return this.o.config.fs === DETECT_FS ? { from: 0, to: 0 } : filesystemFor(this.o.config.fs).rewrittenEveryRun;
  }

  /** Decrypts the image with the engine's layers. Gives the plaintext block device. */
  async openImage(): Promise<string> {
    const block = this.decryptionLayers();
    // The first decryption layer opens the image (inside the sshfs mount, or on the remote), not the mount itself.
    this.stack.setTop(block.on);
    for (const layer of block.layers) await this.stack.push(layer);
    return this.stack.top;
  }

  /** Decrypt and mount: the engine's layers, then the filesystem (repaired under audit if it is not clean). */
  async open(): Promise<string> {
    await this.openImage();
    const mount = await this.mountFs(this.o.readOnly, this.o.notice);
    await this.guard(!this.o.readOnly);
    return mount;
  }

  private async mountFs(readOnly: boolean, notice: (message: string) => void): Promise<string> {
    const fs = this.o.config.fs === DETECT_FS ? await detectFilesystem(this.stack.top) : filesystemFor(this.o.config.fs);
    const cache = this.imageCache;
    const keepOut = cache && ((ranges: ByteRange[]) => cache.keepOut(ranges));
    return this.stack.push(new FsLayer(this.o.paths.fsMount, fs, readOnly, notice, this.o.paths.pushRepairUndo, keepOut));
  }

  /** After a bare `openImage` (check --verify-data): the filesystem read-only, behind the rollback guard, with readahead for reading whole files. */
  async mountReadOnly(): Promise<ImageLayout> {
    await readaheadForWholeFiles(this.stack.top);
    await this.mountFs(true, this.o.notice);
    await this.guard(false);
    return this.layout;
  }

  /**
   * init, once connected: formats LUKS (the local header backup is what was
   * formatted, and what runs decrypt with), decrypts, makes the filesystem
   * and mounts it.
   */
  async create(size: number): Promise<ImageLayout> {
    this.header = await this.created!.formatImage(await this.conn!.sftp(), this.o.paths.run, size, this.o.passphrase);
    await filesystemFor(this.o.config.fs).make(await this.openImage());
    await this.mountFs(false, () => {});
    return this.layout;
  }

  /** A new vault's write counter starts at 1: what init wrote is the first state a rollback is judged against. */
  async startSequence(): Promise<void> {
    await writeImageSequence(this.layout, { counter: 1, runId: this.runId, at: new Date().toISOString() });
    this.seen = { counter: 1, snapshots: [] };
  }

  private async guard(write: boolean): Promise<void> {
    if (this.o.noLocalState) return;
    ({ seen: this.seen, verdict: this.verdict } = await guardRollback({
      fsMount: this.o.paths.fsMount,
      sequenceFile: this.o.paths.sequenceFile,
      vaultName: this.o.config.name,
      runId: this.runId,
      acceptRemote: this.o.acceptRemote,
      flush: write ? () => this.fsLayer()!.flush() : undefined,
    }));
  }

  /** What the snapshots are once a command changed them, for the local state. */
  async noteSnapshots(): Promise<void> {
    if (this.seen) this.seen = { ...this.seen, snapshots: completeSnapshots(await snapshotDirs(this.layout)) };
  }

  fsLayer(): FsLayer | undefined {
    return this.stack.layer<FsLayer>('fs');
  }

  /** Binds `dir` of the mounted filesystem read-only at `mountpoint` (mount); closing the stack unbinds it. */
  async bind(dir: string, mountpoint: string): Promise<BindLayer> {
    this.stack.setTop(dir);
    const layer = new BindLayer(mountpoint);
    await this.stack.push(layer);
    return layer;
  }

  /** Every layer still stands: checked before anything is written. */
  assertAlive(): Promise<void> {
    return this.stack.assertAlive();
  }

  /**
   * Unmounts and closes everything, releases the lock, ends the connection.
   * After a failed init, also removes what it made. Never throws over a prior error.
   */
  async close(failed = false): Promise<Error | undefined> {
    let first: Error | undefined;
    const attempt = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (e) {
        debug(`${what} failed: ${(e as Error).message}`);
        first ??= e as Error;
      }
    };
    await attempt('closing the stack', () => this.stack.close());
    const undo = failed ? this.created : undefined;
    if (undo) await attempt('removing what init made', () => undo.removeFiles(this.conn));
    if (this.lock && !this.conn?.lost) await attempt('releasing the lock', () => unlockVault(this.lock!, this.o.paths.ownLocks, this.runId));
    if (undo) await attempt('removing the directories init made', () => undo.removeDirs(this.conn));
    if (this.conn) await attempt('disconnecting', () => this.conn!.close());
    return first;
  }
}
