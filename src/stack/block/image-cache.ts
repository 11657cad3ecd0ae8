import type { SFTPWrapper } from 'ssh2';
import { rm } from 'node:fs/promises';
import type { VaultFullError } from '../../errors.js';
import type { Connection } from '../../remote/connection.js';
import { remoteFullError } from '../../remote/full.js';
import { call, readInto } from '../../remote/sftp.js';
import { debug } from '../../log.js';
import { BlockCache } from './block-cache.js';
import { proveCache, type CacheProof } from './cache-proof.js';
import { CachedImage, type CacheCounters, type RemoteImage } from './cached-image.js';
import type { Layer } from '../layer.js';
import { isLuks1, PHDR_BYTES, phdrPayloadOffset } from '../luks.js';
import { LocalHeader } from '../local-header.js';
import { NbdServer } from './nbd-server.js';
import type { ByteRange } from '../filesystems/filesystem.js';

/** SFTP requests per piece: large requests are split and sent at once rather than one after another. */
const PIECE = 64 * 1024;

/** The image file through its own SFTP channel, big requests split into pieces in flight together. */
class SftpImage implements RemoteImage {
  private fsyncSupported = true;
  /** Set once a write failed because the remote disk is full: what the run reports, whichever layer it fails in. */
  full: VaultFullError | undefined;
  private fullCheck: Promise<VaultFullError | undefined> | undefined;

  private constructor(
    private readonly sftp: SFTPWrapper,
    private readonly handle: Buffer,
    readonly size: number,
    private readonly whenFull: (e: unknown) => Promise<VaultFullError | undefined>,
  ) {}

  static async open(sftp: SFTPWrapper, path: string, readOnly: boolean, whenFull: (e: unknown) => Promise<VaultFullError | undefined>): Promise<SftpImage> {
    const handle = await call<Buffer>((cb) => sftp.open(path, readOnly ? 'r' : 'r+', cb));
    const st = await call<{ size: number }>((cb) => sftp.fstat(handle, cb as never));
    return new SftpImage(sftp, handle, st.size, whenFull);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    await Promise.all(
      pieces(length).map(async ([at, n]) => {
        const got = await readInto(this.sftp, this.handle, buf, at, n, offset + at);
        if (got < n) throw new Error(`the remote image ended at ${offset + at + got} bytes, before its size of ${this.size}: was it truncated?`);
      }),
    );
    return buf;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    try {
      await Promise.all(pieces(data.length).map(([at, n]) => call<void>((cb) => this.sftp.write(this.handle, data, at, n, offset + at, cb as never))));
    } catch (e) {
      throw (await this.fullNow(e)) ?? e;
    }
  }

  /** One statvfs for a burst of failed writes, not one each. */
  private async fullNow(e: unknown): Promise<VaultFullError | undefined> {
    if (this.full) return this.full;
    this.fullCheck ??= this.whenFull(e)
      .catch(() => undefined)
      .finally(() => (this.fullCheck = undefined));
    this.full ??= await this.fullCheck;
    return this.full;
  }

  /** fsync@openssh.com where the server has it; elsewhere a write is as durable as the server makes it. */
  async flush(): Promise<void> {
    if (!this.fsyncSupported) return;
    try {
      await call<void>((cb) => this.sftp.ext_openssh_fsync(this.handle, cb as never));
    } catch (e) {
      if (!/not support/i.test((e as Error).message)) throw e;
      this.fsyncSupported = false;
    }
  }

  async close(): Promise<void> {
    await call<void>((cb) => this.sftp.close(this.handle, cb as never)).catch(() => {});
    this.sftp.end();
  }
}

function pieces(length: number): [number, number][] {
  const out: [number, number][] = [];
  for (let at = 0; at < length; at += PIECE) out.push([at, Math.min(PIECE, length - at)]);
  return out;
}

export interface ImageCacheOptions {
  conn: Connection;
  /** Its LUKS header if the session has read it already; read here otherwise. */
  phdr?: Buffer;
  /** The header area as checked against (or made from) the local backup: served from here, never read from the remote. */
  header?: Buffer;
  socket: string;
  cacheDir: string;
  /** The remote generation as the run found it (what a cache must match) and as it leaves it (what the cache becomes valid for). */
  generation: { found?: string; now?: string };
  maxBytes: number;
  /** The cache serves this run alone: it starts empty and is removed at close, never saved. */
  scratch: boolean;
  /** Plaintext bytes every writer rewrites, which a reused cache must hold and match. */
  rewrittenEveryRun: ByteRange;
  readOnly: boolean;
  /** The command this run does, for what a full remote disk tells the user to do. */
  command: string;
  notice: (message: string) => void;
}

/**
 * Serves the remote image over NBD to the userspace LUKS engine, with the
 * persistent block cache in front (docs/design.md, "The block path"): a push
 * downloads only metadata this machine has not seen. It runs in this process,
 * like the SSH connection it depends on; a crash leaves only the socket file.
 */
export class ImageCacheLayer implements Layer {
  readonly name = 'image-cache';
  private image: SftpImage | undefined;
  private cache: BlockCache | undefined;
  private backend: CachedImage | undefined;
  private server: NbdServer | undefined;
  private payloadOffset = 0;

  constructor(private readonly o: ImageCacheOptions) {}

  /** Plaintext ranges the filesystem holds file data in: the cache keeps none of it (docs/design.md, "The block path"). */
  keepOut(ranges: readonly ByteRange[]): void {
    this.cache?.exclude(ranges.map((r) => ({ from: r.from + this.payloadOffset, to: r.to + this.payloadOffset })));
  }

  /** Set once a write to the image failed because the remote disk is full. */
  get remoteFull(): VaultFullError | undefined {
    return this.image?.full;
  }

  /** What this run read from the cache and from the remote, in bytes; kept after close for the run record. */
  get counters(): CacheCounters | undefined {
    return this.backend?.counters;
  }

  /** Opens the image at `imagePath`, its path on the remote as SFTP sees it. */
  async open(imagePath: string): Promise<string> {
    const o = this.o;
    const sftp = await o.conn.openSftp();
    this.image = await SftpImage.open(sftp, imagePath, o.readOnly, (e) => remoteFullError(sftp, imagePath, o.conn.target, o.command, e));
    const phdr = o.header ?? o.phdr ?? (await this.image.read(0, Math.min(PHDR_BYTES, this.image.size)));
    // Not a LUKS1 image: qemu-nbd refuses it with its own message, and there is nothing to cache.
    const luks = isLuks1(phdr);
    if (o.generation.now && o.maxBytes > 0 && luks) {
      try {
        this.cache = BlockCache.open(o.cacheDir, this.image.size, o.scratch ? undefined : o.generation.found, o.maxBytes);
        debug(`image cache: ${this.cache.reused ? `reusing ${this.cache.cachedBytes} bytes` : 'starting empty'} (generation ${o.generation.found ?? 'none'})`);
      } catch (e) {
        o.notice(`The block cache in ${o.cacheDir} cannot be used (${(e as Error).message}); this run reads everything from the remote.`);
      }
    }
    this.payloadOffset = luks ? phdrPayloadOffset(phdr) : 0;
    if (this.cache?.reused) await this.proveCache();
    this.backend = new CachedImage(this.image, this.cache, this.payloadOffset, o.readOnly);
    this.server = new NbdServer(o.header ? new LocalHeader(this.backend, o.header) : this.backend);
    await this.server.listen(o.socket);
    return o.socket;
  }

  /** A cache the remote's current content does not bear out starts over empty; the run goes on from the remote. */
  private async proveCache(): Promise<void> {
    const o = this.o;
    let proof: CacheProof;
    try {
      proof = await proveCache(this.image!, this.cache!, this.payloadOffset, this.o.rewrittenEveryRun);
    } catch (e) {
      this.cache!.discard();
      this.cache = undefined;
      throw e;
    }
    debug(`image cache: compared ${proof.compared} units with the remote, ${proof.differing} differ${proof.unprovable ? '; the units every writer changes are not cached' : ''}`);
    if (proof.ok) return;
    if (!proof.unprovable) {
      o.notice(`The block cache in ${o.cacheDir} does not match the remote image (${proof.differing} of ${proof.compared} blocks read back differ): the image changed without a new vault.generation; the cache was emptied and this run reads from the remote.`);
    }
    this.cache!.discard();
    this.cache = undefined;
    this.cache = BlockCache.open(o.cacheDir, this.image!.size, undefined, o.maxBytes);
  }

  async alive(): Promise<boolean> {
    return !!this.server && !this.o.conn.lost && !this.server.failure;
  }

  async close(): Promise<void> {
    await this.server?.close();
    const c = this.backend?.counters;
    if (c) debug(`image cache: ${c.hitBytes} bytes read from the cache, ${c.missBytes} fetched, ${this.cache?.cachedBytes ?? 0} cached`);
    let clean = !this.o.conn.lost && !this.server?.failure;
    try {
      if (clean) await this.backend?.flush();
    } catch (e) {
      clean = false;
      throw e;
    } finally {
      await this.image?.close();
      await rm(this.o.socket, { force: true });
      const dropped = this.backend?.cacheError;
      if (dropped) this.o.notice(`The block cache in ${this.o.cacheDir} failed (${dropped.message}) and was dropped; the next run starts it anew.`);
      // Only a run that ended cleanly knows the cache matches the remote.
      if (this.cache && clean && !dropped && this.o.generation.now && !this.o.scratch) this.commitCache(this.o.generation.now);
      else this.cache?.discard();
      if (this.o.scratch) await rm(this.o.cacheDir, { recursive: true, force: true });
    }
  }

  private commitCache(generation: string): void {
    try {
      this.cache!.commit(generation, !this.o.readOnly);
    } catch (e) {
      this.o.notice(`Could not save the block cache in ${this.o.cacheDir} (${(e as Error).message}); the next run starts it anew.`);
    }
  }
}
