import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AuthError, UsageError } from '../errors.js';
import { spawn, type Child } from '../exec.js';
import { unmountFuse } from './mount/fuse.js';
import type { Layer, Leftover, LeftoverContext } from './layer.js';
import { findProcesses, isMounted, stopProcess, waitUntil } from './mount/mounts.js';
import { handOver, withSecretFifo } from './secret-fifo.js';

/** qemu's option syntax doubles commas inside values. */
function optValue(s: string): string {
  return s.replace(/,/g, ',,');
}

const CONNECTIONS = 4;

/**
 * The userspace LUKS engine (docs/design.md, "Layers and engines"), for machines without
 * device-mapper: qemu-nbd's LUKS driver decrypts the image, which the image
 * cache serves over NBD, and serves the plaintext on a unix socket; nbdfuse
 * exposes it as a file for losetup.
 * qemu's driver moves whole requests, unlike nbdkit's luks filter, which moves
 * one 512-byte sector per request. Same on-disk LUKS1 format as dm-crypt.
 */
export class UserspaceLuksLayer implements Layer {
  readonly name = 'luks-userspace';
  private qemu: Child | undefined;
  private fuse: Child | undefined;

  constructor(
    private readonly runDir: string,
    private readonly socket: string,
    private readonly plainMount: string,
    private readonly passphrase: string,
    private readonly readOnly: boolean,
  ) {}

  async open(ciphertextSocket: string): Promise<string> {
    await rm(this.socket, { force: true });
    // qemu reads secrets only from a named file: a FIFO, so the passphrase never lands on disk.
    await withSecretFifo(this.runDir, async (keyFile) => {
      const imageOpts = [
        'driver=luks',
        'key-secret=sec0',
        // The ciphertext comes from the image cache's NBD socket (block/image-cache.ts).
        'file.driver=nbd',
        'file.server.type=unix',
        `file.server.path=${optValue(ciphertextSocket)}`,
      ].join(',');
      const qemu = spawn('qemu-nbd', [
        '--object',
        `secret,id=sec0,file=${optValue(keyFile)},format=raw`,
        '--image-opts',
        imageOpts,
        '--socket',
        this.socket,
        '--shared',
        String(CONNECTIONS + 1),
        '--persistent',
        '--cache=writeback',
        ...(this.readOnly ? ['--read-only'] : []),
      ]);
      this.qemu = qemu;
      await handOver(keyFile, this.passphrase, () => qemu.running());
      await waitUntil(async () => !qemu.running() || (await exists(this.socket)), 120_000);
      if (!qemu.running()) throw classify(qemu.stderr());
      if (!(await exists(this.socket))) throw new Error('qemu-nbd did not start serving within 120 s');
    });
    await mkdir(this.plainMount, { recursive: true, mode: 0o700 });
    const disk = join(this.plainMount, 'disk');
    this.fuse = spawn('nbdfuse', ['-C', String(CONNECTIONS), ...(this.readOnly ? ['-r'] : []), disk, '--unix', this.socket]);
    const fuse = this.fuse;
    await waitUntil(async () => !fuse.running() || (await isMounted(this.plainMount)), 30_000);
    if (!(await isMounted(this.plainMount))) {
      // qemu-nbd listens before it opens the image: a wrong passphrase reaches nbdfuse as a dropped connection.
      const qemu = this.qemu!;
      if (await waitUntil(() => !qemu.running(), 5000)) throw classify(qemu.stderr());
      throw new Error(`nbdfuse could not expose the decrypted image: ${fuse.stderr().trim().split('\n').pop() || 'timed out'}`);
    }
    return disk;
  }

  async alive(): Promise<boolean> {
    return !!this.qemu?.running() && !!this.fuse?.running() && (await isMounted(this.plainMount));
  }

  async close(): Promise<void> {
    await unmountFuse(this.plainMount, this.fuse, 60_000);
    if (this.qemu?.pid && this.qemu.running()) await stopProcess(this.qemu.pid, 60_000);
    await rm(this.socket, { force: true });
  }

  static async findLeftovers(ctx: LeftoverContext): Promise<Leftover[]> {
    const { nbdSocket: socket, plainMount } = ctx.paths;
    const out: Leftover[] = [];
    const fuses = await findProcesses((a) => a[0].endsWith('nbdfuse') && a.includes(socket));
    if ((await isMounted(plainMount)) || fuses.length) {
      out.push({
        layer: 'luks-userspace',
        what: `nbdfuse mount ${plainMount}`,
        teardown: async () => {
          await unmountFuse(plainMount, undefined, 10_000);
          for (const p of fuses) await stopProcess(p.pid, 3000);
        },
      });
    }
    const servers = await findProcesses((a) => a[0].endsWith('qemu-nbd') && a.includes(socket));
    for (const p of servers) {
      out.push({ layer: 'luks-userspace', what: `qemu-nbd (pid ${p.pid})`, teardown: () => stopProcess(p.pid, 10_000) });
    }
    return out;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function classify(stderr: string): Error {
  if (/Invalid password|cannot unlock any keyslot/i.test(stderr)) {
    return new AuthError('wrong passphrase: no LUKS key slot of the vault opens with it; nothing was written');
  }
  if (/not in LUKS format|Unsupported LUKS version/i.test(stderr)) {
    return new UsageError(
      "the remote image is not a LUKS volume (header missing or damaged); if its header was overwritten, restore it from the local header backup (see 'Restore without sshvault' in the README)",
    );
  }
  return new Error(`qemu-nbd could not open the image: ${stderr.trim().split('\n').pop() ?? 'no message'}`);
}
