import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { VaultPaths } from '../config/paths.js';
import { DEFAULT_CACHE_BYTES, type VaultConfig } from '../config/vault-config.js';
import { AuthError, LinkError, UsageError, VaultFullError } from '../errors.js';
import { debug } from '../log.js';
import { connect, type Connection } from '../remote/connection.js';
import { probeImage } from '../remote/image-probe.js';
import { newGeneration, readGeneration } from '../remote/generation.js';
import { GENERATION_FILE, remotePath } from '../remote/layout.js';
import { forgetLockRun, ownLockRuns, recordLockRun } from '../remote/own-locks.js';
import { acquireLock, acquireSharedLock, assertNoReaders, type RemoteLock, type SharedLock } from '../remote/lock.js';
import { sftpDir } from '../remote/remote-dir.js';
import { remoteFullError } from '../remote/full.js';
import { createImage, freeBytes, mkdirp, PRIVATE_DIR, PRIVATE_FILE, readRange, rmdir, stat, unlink, writeRange } from '../remote/sftp.js';
import { formatBytes } from '../ui/format.js';
import type { TrafficMeter } from '../remote/traffic.js';
import { parseRemote, type RemoteSpec } from '../remote/url.js';
import type { BlockStack, Engine } from './engines/engine.js';
import { chooseEngine } from './engines/index.js';
import { FsLayer } from './fs.js';
import { ImageCacheLayer } from './block/image-cache.js';
import { isLuks1, luksHeaderBackup, PHDR_BYTES, phdrUuid } from './luks.js';
import { formatHeader, readHeaderArea } from './luks-header.js';
import { SshfsLayer } from './mount/sshfs.js';
import { imageLayout, readVaultMeta, snapshotDirs } from '../snapshot/layout.js';
import { judge, type SeenState, type Verdict } from '../snapshot/rollback.js';
import { completeSnapshots, readImageSequence, readLocalSequence, writeImageSequence } from '../snapshot/sequence.js';
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
  /** Ignore the block cache's contents: what is read comes from the remote, and fills the cache anew. */
  freshCache?: boolean;
  /** Take the image's write counter and snapshots as they are, even behind what this machine saw (`accept-remote`). */
  acceptRemote?: boolean;
  /** A vault given by flags: no local state to compare the image with, and none is left. */
  noLocalState?: boolean;
  /** With no local header backup, let a writing run use the remote header as it is (and save a backup of it). */
  trustRemoteHeader?: boolean;
}

/**
 * A vault opened for one command: the SSH connection, the remote lock and
 * the stack of layers, each step metered in its own phase (docs/design.md, "A run").
 */
export class VaultSession {
  readonly runId = randomUUID();
  readonly started = new Date();
  readonly remote: RemoteSpec;
  conn: Connection | undefined;
  lock: RemoteLock | SharedLock | undefined;
  stack: Stack;
  /** The chosen engine's name, for the run record. */
  engine: string | undefined;
  private blockEngine: Engine | undefined;
  /** The remote generation as this run found it, and as it leaves it: a writer replaces it before it writes. */
  generation: { found?: string; now?: string } = {};
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
  /** No local backup and the user trusts the remote header: save it once sshfs is up. */
  private adoptRemoteHeader = false;
  /** What init made so far, so that a failed init can take it away again. */
  private created: { dirs: string[]; image: boolean; generation: boolean; headerBackup: boolean } | undefined;

  constructor(readonly o: SessionOptions) {
    this.remote = parseRemote(o.config.remote);
    this.stack = new Stack(o.paths, o.command, o.paths.remoteMount);
  }

  get imagePath(): string {
    return remotePath(this.remote.dir, this.o.config.image);
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
    if (create) {
      this.created = { dirs: [], image: false, generation: false, headerBackup: false };
      await mkdirp(sftp, this.remote.dir, PRIVATE_DIR, this.created.dirs);
    }
    const dirStat = await stat(sftp, this.remote.dir);
    if (!dirStat?.isDirectory()) {
      throw new LinkError(`the remote directory ${this.remote.dir} does not exist on ${this.conn.target}; check --remote or run 'sshvault init'`);
    }
    const owner = { vaultId: this.o.config.vaultId, runId: this.runId, command: this.o.command };
    const lockCtx = { ownRuns: await ownLockRuns(this.o.paths.ownLocks) };
    await recordLockRun(this.o.paths.ownLocks, this.runId);
    // Readers share the vault with each other; a writer needs it to itself (docs/design.md, "Remote lock").
    if (this.o.readOnly) {
      this.lock = await acquireSharedLock(sftpDir(sftp), this.remote.dir, owner, this.o.notice, lockCtx);
    } else {
      this.lock = await acquireLock(sftpDir(sftp), this.remote.dir, owner, this.o.notice, lockCtx);
      await assertNoReaders(sftpDir(sftp), this.remote.dir, this.o.notice, lockCtx);
    }
    if (create) await this.createImage(create.size, create.preallocate);
    else await this.checkHeader();
    const generationFile = remotePath(this.remote.dir, GENERATION_FILE);
    const found = await readGeneration(sftp, generationFile);
    if (this.created) this.created.generation = true;
    this.generation = { found, now: this.o.readOnly ? found : await newGeneration(sftp, generationFile) };
    await this.stack.push(new SshfsLayer(this.conn, this.remote.dir, this.o.paths.remoteMount, this.o.readOnly));
    if (this.adoptRemoteHeader) await this.saveRemoteHeader();
  }

  private async createImage(size: number, preallocate: boolean): Promise<void> {
    const sftp = await this.conn!.sftp();
    if (await stat(sftp, this.imagePath)) {
      throw new UsageError(`a vault image already exists at ${this.imagePath}; choose another remote directory`);
    }
    const free = await freeBytes(sftp, this.remote.dir);
    if (free !== undefined && preallocate && free < size) {
      throw new VaultFullError(`the remote has ${formatBytes(free)} free, less than the ${formatBytes(size)} image; choose a smaller --size`);
    }
    if (free !== undefined && free < size) {
      this.o.notice(`The remote has only ${formatBytes(free)} free for a ${formatBytes(size)} sparse image; backups fail once it runs out.`);
    }
    this.created!.image = true;
    await createImage(sftp, this.imagePath, size, { mode: PRIVATE_FILE, preallocate, explain: async (e) => (await this.fullError(e)) ?? e });
    await probeImage(sftp, this.imagePath, size);
  }

  /**
   * Undoes a failed init, after the stack is closed and before the lock goes:
   * running init again then meets neither a half-made image nor a header
   * backup of a vault that never was.
   */
  private async removeCreatedFiles(): Promise<void> {
    const made = this.created!;
    if (made.headerBackup) await rm(this.o.paths.headerBackup, { force: true });
    const files = [...(made.image ? [this.imagePath] : []), ...(made.generation ? [remotePath(this.remote.dir, GENERATION_FILE)] : [])];
    if (!files.length) return;
    if (!this.conn || this.conn.lost) {
      this.o.notice(`The failed init could not remove what it made on the remote: remove ${files.join(' and ')} before running init again.`);
      return;
    }
    const sftp = await this.conn.sftp();
    for (const f of files) await unlink(sftp, f);
  }

  private async removeCreatedDirs(): Promise<void> {
    if (!this.conn || this.conn.lost) return;
    const sftp = await this.conn.sftp();
    for (const dir of [...this.created!.dirs].reverse()) await rmdir(sftp, dir);
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

  /**
   * The image must be the one init made: same LUKS header as the local
   * backup. Costs 592 bytes; refuses before anything is written.
   */
  private async checkHeader(): Promise<void> {
    const sftp = await this.conn!.sftp();
    const image = this.imagePath;
    if (!(await stat(sftp, image))) {
      throw new UsageError(`the remote image ${image} is missing; if it was lost, a new vault needs 'sshvault init' (the local header backup cannot bring back data)`);
    }
    const remote = await readRange(sftp, image, 0, PHDR_BYTES);
    this.phdr = remote;
    if (!isLuks1(remote)) {
      throw new UsageError(
        `the remote image ${image} has no LUKS1 header; if it was overwritten, restore it from ${this.o.paths.headerBackup} with 'cryptsetup luksHeaderRestore' (README: Restore without sshvault)`,
      );
    }
    if (this.o.skipHeaderCheck) return;
    const header = await readHeaderArea(this.o.paths.headerBackup);
    if (!header) {
      if (this.o.readOnly) {
        this.o.notice(`No local LUKS header backup for this vault; run 'sshvault key backup-header' to make one.`);
      } else if (this.o.trustRemoteHeader) {
        this.o.notice(`No local LUKS header backup for this vault: trusting the remote header as it is, and saving it to ${this.o.paths.headerBackup}.`);
        this.adoptRemoteHeader = true;
      } else {
        throw new AuthError(
          `no local LUKS header backup for this vault (${this.o.paths.headerBackup}), so the remote header cannot be checked; copy your backup there, or if you trust this host, run again with --trust-remote-header`,
        );
      }
      return;
    }
    const local = header.subarray(0, PHDR_BYTES);
    if (!local.equals(remote)) {
      const was = phdrUuid(local);
      const now = phdrUuid(remote);
      throw new AuthError(
        was !== now
          ? `the remote image is not the vault made by init (LUKS UUID ${now}, expected ${was}): it was replaced; refusing to write to it`
          : `the LUKS header of the remote image changed since the local backup (key slots edited elsewhere?); if you did that, run 'sshvault key backup-header', otherwise do not trust this host`,
      );
    }
    this.header = header;
  }

  /** The remote header, taken as the vault's own: from now on runs check against it and decrypt with it. */
  private async saveRemoteHeader(): Promise<void> {
    await luksHeaderBackup(join(this.o.paths.remoteMount, this.o.config.image), this.o.paths.headerBackup);
    const header = (await readHeaderArea(this.o.paths.headerBackup))!;
    if (!header.subarray(0, PHDR_BYTES).equals(this.phdr!)) {
      await rm(this.o.paths.headerBackup, { force: true });
      throw new AuthError('the LUKS header of the remote image changed while this run read it; do not trust this host');
    }
    this.header = header;
  }

  /**
   * Formats LUKS here and writes the header area to the new image (init):
   * the local backup is what was formatted, and what runs decrypt with.
   */
  async formatImage(size: number): Promise<void> {
    this.created!.headerBackup = true;
    const header = await formatHeader(this.o.paths.run, size, this.o.passphrase, this.o.paths.headerBackup);
    await writeRange(await this.conn!.sftp(), this.imagePath, 0, header);
    this.header = header;
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
      generation: this.o.freshCache ? { now: this.generation.now } : this.generation,
      cacheBytes: this.o.config.cacheBytes ?? DEFAULT_CACHE_BYTES,
      command: this.o.command,
      notice: this.o.notice,
    });
    this.imageCache = block.layers.find((l): l is ImageCacheLayer => l instanceof ImageCacheLayer);
    return block;
  }

  /** Pushes the engine's layers; returns the plaintext block device. */
  async openDecryption(): Promise<string> {
    const block = this.decryptionLayers();
    // The first decryption layer opens the image (inside the sshfs mount, or on the remote), not the mount itself.
    this.stack.setTop(block.on);
    for (const layer of block.layers) await this.stack.push(layer);
    return this.stack.top;
  }

  /** Decrypt and mount: the engine's layers, then the filesystem (repaired under audit if it is not clean). */
  async open(): Promise<string> {
    await this.openDecryption();
    const mount = await this.stack.push(new FsLayer(this.o.paths.fsMount, this.o.config.fs, this.o.readOnly, this.o.notice, this.o.paths.pushRepairUndo));
    await this.guardRollback(!this.o.readOnly);
    return mount;
  }

  /**
   * Refuses an image older than what this machine saw (the host put back a
   * copy), before the command reads or writes anything in it. A writer then
   * advances the counter and flushes it, before any other write: even a run
   * cut off later has moved it on.
   */
  async guardRollback(write: boolean): Promise<void> {
    if (this.o.noLocalState) return;
    const layout = imageLayout(this.o.paths.fsMount);
    // An image this version does not understand is refused as such, before the counter is written into it.
    await readVaultMeta(layout);
    const mark = await readImageSequence(layout);
    const complete = completeSnapshots(await snapshotDirs(layout));
    this.verdict = judge(await readLocalSequence(this.o.paths.sequenceFile), mark?.counter, complete);
    if (this.verdict.kind === 'rollback' && !this.o.acceptRemote) {
      throw new AuthError(
        `refusing a possible rollback of the vault: ${this.verdict.reason}; the host may have put back an older copy. Nothing here was changed. Look into it, then run 'sshvault accept-remote ${this.o.config.name}' to take the remote's state as it is`,
      );
    }
    let counter = mark?.counter ?? 0;
    if (write) {
      counter++;
      await writeImageSequence(layout, { counter, runId: this.runId, at: new Date().toISOString() });
      await this.fsLayer()!.flush();
    }
    this.seen = { counter, snapshots: complete };
  }

  /** What the snapshots are once a command changed them, for the local state. */
  async noteSnapshots(): Promise<void> {
    if (this.seen) this.seen = { ...this.seen, snapshots: completeSnapshots(await snapshotDirs(imageLayout(this.o.paths.fsMount))) };
  }

  fsLayer(): FsLayer | undefined {
    return this.stack.layer<FsLayer>('fs');
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
    const undo = failed && this.created;
    if (undo) await attempt('removing what init made', () => this.removeCreatedFiles());
    if (this.lock && !this.conn?.lost) {
      await attempt('releasing the lock', async () => {
        await this.lock!.release();
        await forgetLockRun(this.o.paths.ownLocks, this.runId);
      });
    }
    if (undo) await attempt('removing the directories init made', () => this.removeCreatedDirs());
    if (this.conn) await attempt('disconnecting', () => this.conn!.close());
    return first;
  }
}
