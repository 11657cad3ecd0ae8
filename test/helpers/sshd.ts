import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { processTree, signal, sleep, terminate } from './proc.js';
import { repoRoot } from './repo-root.js';

const TEMPLATE = join(repoRoot(import.meta.dirname), 'fixtures/sshd_config.template');

export interface SshdOptions {
  /** Accept only the sftp subsystem (every exec request becomes internal-sftp), as SFTP-only storage boxes do. */
  sftpOnly?: boolean;
  /**
   * The sftp subsystem as a program of its own (one process per channel)
   * instead of internal-sftp, so that a test can stop it while sshd itself
   * goes on answering keepalives.
   */
  sftpServer?: string;
  /**
   * The sftp subsystem's command line (run by the shell), given the fixture's
   * dir; internal-sftp when absent. E.g. `sftp-server -u 000` for a server
   * that applies the modes clients send as they are.
   */
  sftpSubsystem?: (dir: string) => string;
  /** sshd_config lines placed before the fixture's own (sshd keeps the first value), e.g. `RekeyLimit 256K` for a server that re-keys often. */
  extraConfig?: string;
}

export interface SshdFixture {
  host: '127.0.0.1';
  port: number;
  /** The fixture's temp dir; everything it made lives here. */
  dir: string;
  /** ed25519, no passphrase, authorized for root. */
  userKeyPath: string;
  /** Holds the host key for [127.0.0.1] on any port: sshd's own and any relay's. */
  knownHostsPath: string;
  /** SHA256:... as ssh-keygen -l prints it. */
  hostKeyFingerprint: string;
  /** Creates and returns an absolute directory under dir, to serve as the remote directory of a vault. */
  remoteDir(name: string): string;
  /** sshd's own log (-e), useful when a connection is refused. */
  logPath: string;
  /** Kills sshd and every per-connection child, then removes dir. */
  stop(): Promise<void>;
}

/** A port that was free a moment ago; sshd's bind can still lose the race, and startSshd retries then. */
function probeFreePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolvePort(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function keygen(path: string, comment: string): Promise<void> {
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

type Start = { child: ChildProcess } | { bindFailed: true };

/**
 * Waits for sshd's own "Server listening" line rather than probing the port:
 * a successful connect could reach whichever process won the race for it.
 */
async function launch(config: string, logPath: string, port: number): Promise<Start> {
  const logFd = openSync(logPath, 'w');
  // setpriv execs sshd with a parent-death signal: a test runner killed before its afterAll
  // (a CI timeout, a kill of its workers) takes its sshd with it instead of leaving a listener behind.
  const child = spawn('setpriv', ['--pdeathsig', 'SIGTERM', '/usr/sbin/sshd', '-D', '-e', '-f', config], { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  let exited = false;
  child.once('exit', () => (exited = true));
  const ready = `Server listening on 127.0.0.1 port ${port}.`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const log = await readFile(logPath, 'utf8');
    if (log.includes(ready)) return { child };
    if (exited) {
      if (/Bind to port .* failed|Cannot bind any address/.test(log)) return { bindFailed: true };
      throw new Error(`sshd exited before listening:\n${log}`);
    }
    if (Date.now() > deadline) {
      await terminate(processTree(child.pid!));
      throw new Error(`sshd did not listen on port ${port} within 15 s:\n${log}`);
    }
    await sleep(20);
  }
}

export async function startSshd(opts: SshdOptions = {}): Promise<SshdFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'sshvault-sshd-'));
  let started: { child: ChildProcess; port: number } | undefined;
  try {
    // Privilege separation needs it; a container without systemd-tmpfiles does not have it.
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    const hostKey = join(dir, 'host_ed25519');
    const userKeyPath = join(dir, 'user_ed25519');
    await keygen(hostKey, 'sshvault-test-host');
    await keygen(userKeyPath, 'sshvault-test-user');
    const authorizedKeys = join(dir, 'authorized_keys');
    await copyFile(`${userKeyPath}.pub`, authorizedKeys);
    const hostPub = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
    const hostKeyFingerprint = (await execa('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`])).stdout.split(/\s+/)[1];
    const template = await readFile(TEMPLATE, 'utf8');
    const config = join(dir, 'sshd_config');
    const logPath = join(dir, 'sshd.log');

    for (let attempt = 0; attempt < 10 && !started; attempt++) {
      const port = await probeFreePort();
      const text = template
        .replaceAll('{{PORT}}', String(port))
        .replaceAll('{{HOST_KEY}}', hostKey)
        .replaceAll('{{PID_FILE}}', join(dir, 'sshd.pid'))
        .replaceAll('{{AUTHORIZED_KEYS}}', authorizedKeys)
        .replaceAll('{{SFTP_SUBSYSTEM}}', opts.sftpSubsystem?.(dir) ?? opts.sftpServer ?? 'internal-sftp')
        .replaceAll('{{SFTP_ONLY}}', opts.sftpOnly ? 'ForceCommand internal-sftp\nDisableForwarding yes\nPermitTTY no' : '')
        .replaceAll('{{EXTRA}}', opts.extraConfig ?? '');
      await writeFile(config, text, { mode: 0o600 });
      const r = await launch(config, logPath, port);
      if ('child' in r) started = { child: r.child, port };
    }
    if (!started) throw new Error('sshd could not bind a free port in 10 attempts');
    const { child, port } = started;

    const knownHostsPath = join(dir, 'known_hosts');
    // Any port, so the file also vouches for the host through a relay on its own port.
    await writeFile(knownHostsPath, `[127.0.0.1]:* ${hostPub}\n`);

    // A test file that forgets stop() (or crashes) must not leave sshd behind.
    const onExit = () => signal(processTree(child.pid!), 'SIGKILL');
    process.once('exit', onExit);
    let stopped: Promise<void> | undefined;

    return {
      host: '127.0.0.1',
      port,
      dir,
      userKeyPath,
      knownHostsPath,
      hostKeyFingerprint,
      logPath,
      remoteDir(name: string): string {
        const p = join(dir, 'remote', name);
        mkdirSync(p, { recursive: true });
        return p;
      },
      stop() {
        stopped ??= (async () => {
          process.off('exit', onExit);
          // Per-connection sshd processes call setsid(), so the process group would miss them: walk the tree.
          await terminate(processTree(child.pid!));
          await rm(dir, { recursive: true, force: true });
        })();
        return stopped;
      },
    };
  } catch (e) {
    if (started) await terminate(processTree(started.child.pid!));
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
