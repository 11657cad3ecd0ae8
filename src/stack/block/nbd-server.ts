import net from 'node:net';
import { rm } from 'node:fs/promises';
import { debug } from '../../log.js';

/**
 * What the NBD server serves: a byte range with reads, writes and a flush.
 * Offsets and lengths come from the client as they are (qemu sends 512-byte aligned ones).
 */
export interface BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Buffer): Promise<void>;
  flush(): Promise<void>;
}

// The NBD protocol (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md),
// fixed newstyle handshake and simple replies: all qemu's NBD client needs.
const NBDMAGIC = Buffer.from('NBDMAGIC');
const IHAVEOPT = Buffer.from('IHAVEOPT');
const OPT_REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;
const OPT_EXPORT_NAME = 1;
const OPT_ABORT = 2;
const OPT_INFO = 6;
const OPT_GO = 7;
const REP_ACK = 1;
const REP_INFO = 3;
const REP_ERR_UNSUP = 0x80000001;
const INFO_EXPORT = 0;
const INFO_BLOCK_SIZE = 3;
const TX_HAS_FLAGS = 1;
const TX_READ_ONLY = 2;
const TX_SEND_FLUSH = 4;
const TX_SEND_FUA = 8;
const CMD_FLAG_FUA = 1;
const CMD_READ = 0;
const CMD_WRITE = 1;
const CMD_DISC = 2;
const CMD_FLUSH = 3;
const EPERM = 1;
const EIO = 5;
const EINVAL = 22;
/** The largest request a client may send; qemu's own default ceiling. */
const MAX_REQUEST = 32 << 20;

/** Reads exact byte counts from a socket, in order. */
class Reader {
  private chunks: Buffer[] = [];
  private have = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;

  constructor(sock: net.Socket) {
    sock.on('data', (b: Buffer) => {
      this.chunks.push(b);
      this.have += b.length;
      this.wake();
    });
    const end = () => {
      this.ended ??= new Error('client disconnected');
      this.wake();
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', end);
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.have >= w.n) {
      this.waiter = undefined;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const out = all.subarray(0, w.n);
      const rest = all.subarray(w.n);
      this.chunks = rest.length ? [rest] : [];
      this.have = rest.length;
      w.resolve(out);
    } else if (this.ended) {
      this.waiter = undefined;
      w.reject(this.ended);
    }
  }
}

function optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  h.writeBigUInt64BE(OPT_REPLY_MAGIC, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(type, 12);
  h.writeUInt32BE(data.length, 16);
  return Buffer.concat([h, data]);
}

function simpleReply(error: number, cookie: Buffer, data?: Buffer): Buffer[] {
  const h = Buffer.alloc(16);
  h.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  h.writeUInt32BE(error, 4);
  cookie.copy(h, 8);
  return data && !error ? [h, data] : [h];
}

/**
 * A minimal NBD server on a unix socket, for qemu-nbd's LUKS driver to read
 * the ciphertext through (docs/design.md, "The block path"). Requests run
 * concurrently and are answered as they finish, as the protocol allows.
 */
export class NbdServer {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Bytes of writes since the last flush, for the debug log. */
  private writtenSinceFlush = 0;
  /** The first backend failure: the stack above sees EIO, the run reports this. */
  failure: Error | undefined;

  constructor(private readonly backend: BlockBackend) {}

  async listen(path: string): Promise<void> {
    await rm(path, { force: true });
    const server = net.createServer((sock) => this.serve(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  }

  /** Stops accepting, waits for requests in flight, drops the connections (a client still there would keep the server open). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    await Promise.allSettled([...this.inFlight]);
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private serve(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    const reader = new Reader(sock);
    this.session(sock, reader).catch((e: Error) => {
      debug(`nbd: connection ended: ${e.message}`);
      sock.destroy();
    });
  }

  private async session(sock: net.Socket, reader: Reader): Promise<void> {
    const hello = Buffer.alloc(18);
    NBDMAGIC.copy(hello, 0);
    IHAVEOPT.copy(hello, 8);
    hello.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
    sock.write(hello);
    const clientFlags = (await reader.read(4)).readUInt32BE(0);
    const noZeroes = (clientFlags & FLAG_NO_ZEROES) !== 0;
    if (!(await this.negotiate(sock, reader, noZeroes))) {
      sock.end();
      return;
    }
    await this.transmit(sock, reader);
  }

  private txFlags(): number {
    return TX_HAS_FLAGS | TX_SEND_FLUSH | TX_SEND_FUA | (this.backend.readOnly ? TX_READ_ONLY : 0);
  }

  /** Option haggling; true once the client has chosen the (one, unnamed) export. */
  private async negotiate(sock: net.Socket, reader: Reader, noZeroes: boolean): Promise<boolean> {
    for (;;) {
      const h = await reader.read(16);
      if (!h.subarray(0, 8).equals(IHAVEOPT)) throw new Error('bad option magic');
      const option = h.readUInt32BE(8);
      const length = h.readUInt32BE(12);
      if (length > 1 << 16) throw new Error('option too long');
      // The export name and info requests do not matter: there is one export, and it always describes itself fully.
      if (length) await reader.read(length);
      if (option === OPT_EXPORT_NAME) {
        const info = Buffer.alloc(noZeroes ? 10 : 134);
        info.writeBigUInt64BE(BigInt(this.backend.size), 0);
        info.writeUInt16BE(this.txFlags(), 8);
        sock.write(info);
        return true;
      }
      if (option === OPT_ABORT) {
        sock.write(optionReply(option, REP_ACK));
        return false;
      }
      if (option === OPT_GO || option === OPT_INFO) {
        const exportInfo = Buffer.alloc(12);
        exportInfo.writeUInt16BE(INFO_EXPORT, 0);
        exportInfo.writeBigUInt64BE(BigInt(this.backend.size), 2);
        exportInfo.writeUInt16BE(this.txFlags(), 10);
        const blockInfo = Buffer.alloc(14);
        blockInfo.writeUInt16BE(INFO_BLOCK_SIZE, 0);
        blockInfo.writeUInt32BE(512, 2);
        blockInfo.writeUInt32BE(4096, 6);
        blockInfo.writeUInt32BE(MAX_REQUEST, 10);
        sock.write(optionReply(option, REP_INFO, exportInfo));
        sock.write(optionReply(option, REP_INFO, blockInfo));
        sock.write(optionReply(option, REP_ACK));
        if (option === OPT_GO) return true;
        continue;
      }
      sock.write(optionReply(option, REP_ERR_UNSUP));
    }
  }

  private async transmit(sock: net.Socket, reader: Reader): Promise<void> {
    for (;;) {
      const h = await reader.read(28);
      if (h.readUInt32BE(0) !== REQUEST_MAGIC) throw new Error('bad request magic');
      const flags = h.readUInt16BE(4);
      const type = h.readUInt16BE(6);
      const cookie = Buffer.from(h.subarray(8, 16));
      const offset = Number(h.readBigUInt64BE(16));
      const length = h.readUInt32BE(24);
      if (type === CMD_DISC) {
        await Promise.allSettled([...this.inFlight]);
        sock.end();
        return;
      }
      const payload = type === CMD_WRITE ? await reader.read(length) : undefined;
      const job = this.handle(type, flags, offset, length, payload).then(
        (data) => this.reply(sock, simpleReply(0, cookie, data)),
        (e: { errno?: number } & Error) => {
          if (!e.errno) {
            this.failure ??= e;
            debug(`nbd: request failed: ${e.message}`);
          }
          this.reply(sock, simpleReply(e.errno ?? EIO, cookie));
        },
      );
      this.inFlight.add(job);
      void job.finally(() => this.inFlight.delete(job));
    }
  }

  private reply(sock: net.Socket, parts: Buffer[]): void {
    if (sock.destroyed) return;
    for (const p of parts) sock.write(p);
  }

  private async handle(type: number, flags: number, offset: number, length: number, payload: Buffer | undefined): Promise<Buffer | undefined> {
    const refuse = (errno: number) => Object.assign(new Error(`refused NBD command ${type}`), { errno });
    if (length > MAX_REQUEST || offset + length > this.backend.size) throw refuse(EINVAL);
    switch (type) {
      case CMD_READ:
        return this.backend.read(offset, length);
      case CMD_WRITE:
        if (this.backend.readOnly) throw refuse(EPERM);
        await this.backend.write(offset, payload!);
        this.writtenSinceFlush += length;
        // Forced unit access: the write is answered once it is as durable as a flush makes it.
        if (flags & CMD_FLAG_FUA) await this.backend.flush();
        return undefined;
      case CMD_FLUSH:
        await this.backend.flush();
        // What each commit of the filesystem costs shows in the log: see "Where the bytes go" in bench/README.md.
        debug(`nbd: flush: the remote has answered every write (${this.writtenSinceFlush} bytes written since the last flush)`);
        this.writtenSinceFlush = 0;
        return undefined;
      default:
        throw refuse(EINVAL);
    }
  }
}
