import { mkdir } from 'node:fs/promises';
import type { Connection } from '../../remote/connection.js';
import { UsageError } from '../../errors.js';
import { countSftpPackets } from '../../remote/stall-watch.js';
import { spawn, type Child } from '../../exec.js';
import { unmountFuse } from './fuse.js';
import type { Layer, Leftover, LeftoverContext } from '../layer.js';
import { findProcesses, isMounted, stopProcess, waitUntil } from './mounts.js';
import { sshfsFailure } from './sshfs-failure.js';

/**
 * sshfs in passive mode speaks SFTP on its stdin/stdout, which we connect to
 * an `sftp` channel of the run's one SSH connection (docs/design.md, "Transport and metering"): every
 * byte is then counted on that connection. No `reconnect`: a reconnect would
 * invalidate the image file held open under the loop device.
 */
const SSHFS_GRACE_MS = 5000;

export class SshfsLayer implements Layer {
  readonly name = 'sshfs';
  private child: Child | undefined;

  constructor(
    private readonly conn: Connection,
    private readonly remoteDir: string,
    private readonly mountpoint: string,
    private readonly readOnly: boolean,
  ) {}

  async open(): Promise<string> {
    await mkdir(this.mountpoint, { recursive: true, mode: 0o700 });
    if (await isMounted(this.mountpoint)) {
      throw new UsageError(`${this.mountpoint} is already mounted; unmount it or run 'sshvault recover'`);
    }
    const channel = await this.conn.sftpChannel();
    const opts = ['passive', ...(this.readOnly ? ['ro'] : [])].join(',');
    const child = spawn('sshfs', ['-f', '-o', opts, `sshvault:${this.remoteDir}`, this.mountpoint], { stdin: 'pipe', stdout: 'pipe' });
    this.child = child;
    const stdin = child.process.stdin!;
    const stdout = child.process.stdout!;
    // Its requests and their answers are counted, so that a server that stops answering sshfs is noticed too.
    const watch = this.conn.watch;
    channel.pipe(countSftpPackets(() => watch.end())).pipe(stdin);
    stdout.pipe(countSftpPackets(() => watch.begin())).pipe(channel);
    // When the connection dies, passive sshfs would wait forever and every writer hang in state D;
    // ending its pipes makes it exit, so writers get EIO at once (docs/design.md, "Failure model").
    const cut = () => {
      stdin.destroy();
      stdout.destroy();
      // Watchdog: sshfs normally exits on EOF at once; if it hangs, writers would hang with it.
      setTimeout(() => {
        if (child.running()) child.process.kill('SIGKILL');
      }, SSHFS_GRACE_MS).unref();
    };
    this.conn.onLost(cut);
    channel.on('close', cut);
    stdin.on('error', () => {});
    stdout.on('error', () => {});
    const mounted = await waitUntil(async () => !child.running() || (await isMounted(this.mountpoint)), 30_000);
    if (!mounted || !child.running()) {
      cut();
      child.process.kill('SIGKILL');
      const started = child.pid !== undefined;
      const cause = started ? undefined : (await child.process).cause;
      throw sshfsFailure(this.remoteDir, { started, stderr: child.stderr(), cause });
    }
    return this.mountpoint;
  }

  async alive(): Promise<boolean> {
    return !!this.child?.running() && !this.conn.lost && (await isMounted(this.mountpoint));
  }

  async close(): Promise<void> {
    await unmountFuse(this.mountpoint, this.child, this.conn.lost ? 5000 : 60_000);
  }

  static async findLeftovers(ctx: LeftoverContext): Promise<Leftover[]> {
    const mountpoint = ctx.paths.remoteMount;
    const out: Leftover[] = [];
    const procs = await findProcesses((a) => a[0].endsWith('sshfs') && a.includes(mountpoint));
    if ((await isMounted(mountpoint)) || procs.length) {
      out.push({
        layer: 'sshfs',
        what: `sshfs mount ${mountpoint}`,
        teardown: async () => {
          await unmountFuse(mountpoint, undefined, 5000);
          for (const p of procs) await stopProcess(p.pid, 3000);
        },
      });
    }
    return out;
  }
}
