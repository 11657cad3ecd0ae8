import { EventEmitter } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import ssh2, { type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { AuthError, LinkError } from '../errors.js';
import { run, spawn } from '../exec.js';
import { debug } from '../log.js';
import { HostTrust } from './host-trust.js';
import { hostPattern } from './known-hosts.js';
import { expandHome, parseSshG, type ResolvedHost } from './ssh-config.js';
import { throttled, uploadLimit } from './throttle.js';
import { requestTimeoutSeconds, StallWatch } from './stall-watch.js';
import type { ByteCounter } from './traffic.js';
import type { RemoteSpec } from './url.js';
import { sanitize } from '../ui/sanitize.js';

export interface ConnectOptions {
  remote: RemoteSpec;
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  /** The vault's `requestTimeoutSeconds`; SSHVAULT_REQUEST_TIMEOUT and the default apply as in requestTimeoutSeconds(). */
  requestTimeoutSeconds?: number;
  /** Called as soon as the socket exists, so a run that fails in the handshake still has its bytes counted. */
  onCounter?: (counter: ByteCounter) => void;
  /** The vault's `limitUpload` (a link rate such as `2mbit`); `--limit-upload` overrides it. */
  limitUpload?: string;
}

/** Keepalive: a silent link is noticed within about 3 x 5 s (docs/design.md, "Failure model"). */
const KEEPALIVE_MS = 5000;
const KEEPALIVE_COUNT = 3;

/**
 * chacha20 first: with ssh2's native addon it matches OpenSSH, while OpenSSH
 * is twice as CPU-efficient with AES-GCM (docs/design.md, "Transport and metering"). No compression:
 * the payload is ciphertext.
 */
const CIPHERS = [
  'chacha20-poly1305@openssh.com',
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'aes128-ctr',
  'aes192-ctr',
  'aes256-ctr',
] as const;

// ssh2 is CommonJS; its named exports are only reachable through the default export.
const { Client, utils } = ssh2;
type Client = InstanceType<typeof Client>;

export class Connection {
  private lostError: Error | undefined;
  private closing = false;
  private readonly lostListeners: ((e: Error) => void)[] = [];
  private control: SFTPWrapper | undefined;
  /** Every request on this connection, ours and sshfs's: a server that stops answering them ends the connection. */
  readonly watch: StallWatch;

  constructor(
    readonly client: Client,
    readonly counter: ByteCounter,
    readonly target: string,
    private readonly transport: { destroy(): void },
    requestTimeoutMs: number,
  ) {
    const onDown = (why: string, cause?: Error) => {
      this.down(new LinkError(`lost the connection to ${this.target} (${why}); the snapshot stays partial, run 'sshvault push' again when the link is back`, { cause }));
    };
    // The server chooses the text of a disconnect.
    client.on('error', (e: Error) => onDown(sanitize(e.message), e));
    client.on('close', () => onDown('connection closed'));
    client.on('end', () => onDown('connection ended by the server'));
    this.watch = new StallWatch(requestTimeoutMs, () => {
      const s = Math.round(requestTimeoutMs / 1000);
      this.down(
        new LinkError(
          `the remote ${this.target} stopped answering for ${s} s although the connection stayed up; the snapshot stays partial, run 'sshvault push' again when the server answers (a slow server may need a larger requestTimeoutSeconds in the vault's config)`,
        ),
      );
      // Ending the connection ends sshfs's pipes too: sshfs has no request timeout of its own.
      this.transport.destroy();
    });
  }

  private down(e: LinkError): void {
    if (this.closing || this.lostError) return;
    this.lostError = e;
    this.watch.stop();
    debug(`connection lost: ${e.message}`);
    for (const l of this.lostListeners) l(e);
  }

  get lost(): Error | undefined {
    return this.lostError;
  }

  /** Called at once if the connection is already gone. */
  onLost(listener: (e: Error) => void): void {
    if (this.lostError) listener(this.lostError);
    else this.lostListeners.push(listener);
  }

  assertAlive(): void {
    if (this.lostError) throw this.lostError;
  }

  /** The SFTP client used for control operations (image, lock, free space). */
  async sftp(): Promise<SFTPWrapper> {
    this.control ??= await this.openSftp();
    return this.control;
  }

  /** A further SFTP client of its own, for a stream of requests that should not queue behind control operations. */
  async openSftp(): Promise<SFTPWrapper> {
    this.assertAlive();
    const raw = await this.guard(
      new Promise<SFTPWrapper>((resolve, reject) => this.client.sftp((err, sftp) => (err ? reject(this.wrap(err)) : resolve(sftp)))),
    );
    return this.failPendingOnLoss(raw);
  }

  /** A raw `sftp` subsystem channel: what `sshfs -o passive` speaks on its stdin/stdout. */
  async sftpChannel(): Promise<ClientChannel> {
    this.assertAlive();
    return this.guard(new Promise((resolve, reject) => this.client.subsys('sftp', (err, ch) => (err ? reject(this.wrap(err)) : resolve(ch)))));
  }

  /** Settles with the loss of the connection if that comes first: ssh2 leaves some requests pending forever then. */
  guard<T>(p: Promise<T>): Promise<T> {
    if (this.lostError) return Promise.reject(this.lostError);
    this.watch.begin();
    void p.then(
      () => this.watch.end(),
      () => this.watch.end(),
    );
    return new Promise<T>((resolve, reject) => {
      this.onLost(reject);
      p.then(resolve, reject);
    });
  }

  /**
   * ssh2 does not fail SFTP requests that are in flight when the socket is
   * reset; their callbacks would never run. Every callback-taking call on the
   * channel is tracked and failed with the loss instead, and counts as a
   * request for the stall watch until its callback runs.
   */
  private failPendingOnLoss(sftp: SFTPWrapper): SFTPWrapper {
    const pending = new Set<(e: Error) => void>();
    this.onLost((e) => {
      for (const fail of pending) fail(e);
      pending.clear();
    });
    return new Proxy(sftp, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        // Listeners are not requests: their callbacks may never run.
        if (typeof prop === 'string' && prop in EventEmitter.prototype) return value.bind(target);
        return (...args: unknown[]) => {
          const last = args.length - 1;
          if (typeof args[last] !== 'function') return value.apply(target, args);
          if (this.lostError) return (args[last] as (e: Error) => void)(this.lostError);
          const cb = args[last] as (...r: unknown[]) => void;
          let done = false;
          const once = (...r: unknown[]) => {
            if (done) return;
            done = true;
            pending.delete(fail);
            this.watch.end();
            cb(...r);
          };
          const fail = (e: Error) => once(e);
          pending.add(fail);
          this.watch.begin();
          args[last] = once;
          return value.apply(target, args);
        };
      },
    });
  }

  private wrap(err: Error): Error {
    return this.lostError ?? new LinkError(`the SSH server at ${this.target} refused an SFTP channel (${sanitize(err.message)}); is the sftp subsystem enabled?`, { cause: err });
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.watch.stop();
    if (this.lostError) {
      this.transport.destroy();
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.transport.destroy();
        resolve();
      }, 5000);
      this.client.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.client.end();
    });
  }
}

/** `ssh -G` gives the user's OpenSSH view of the host: HostName, Port, User, keys, ProxyJump. */
async function resolveHost(remote: RemoteSpec): Promise<ResolvedHost> {
  const args = ['-G'];
  if (remote.port) args.push('-p', String(remote.port));
  if (remote.user) args.push('-l', remote.user);
  args.push(remote.host);
  const { stdout } = await run('ssh', args);
  return parseSshG(stdout);
}

interface Transport {
  stream: Duplex;
  counter: ByteCounter;
  destroy(): void;
  opened: Promise<void>;
}

function tcpTransport(host: string, port: number): Transport {
  const sock = net.connect({ host, port });
  sock.setNoDelay(true);
  const opened = new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  return {
    stream: sock,
    counter: { up: () => sock.bytesWritten, down: () => sock.bytesRead },
    destroy: () => sock.destroy(),
    opened,
  };
}

/** ProxyJump and ProxyCommand run OpenSSH's client as a pipe; the bytes are counted on that pipe. */
function commandTransport(file: string, args: string[]): Transport {
  const child = spawn(file, args, { stdin: 'pipe', stdout: 'pipe' });
  const stdin = child.process.stdin!;
  const stdout = child.process.stdout!;
  let up = 0;
  let down = 0;
  const counted = new PassThrough();
  stdout.on('data', (b: Buffer) => (down += b.length));
  stdout.pipe(counted);
  const stream = Duplex.from({ readable: counted, writable: stdin });
  const write = stream.write.bind(stream);
  stream.write = ((chunk: Buffer, ...rest: unknown[]) => {
    up += chunk.length;
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof stream.write;
  child.exited.then(({ exitCode }) => {
    stream.destroy(new Error(`proxy command exited with ${exitCode}: ${child.stderr().trim().split('\n').pop() ?? ''}`));
  });
  return {
    stream,
    counter: { up: () => up, down: () => down },
    destroy: () => {
      stream.destroy();
      child.process.kill('SIGTERM');
    },
    opened: Promise.resolve(),
  };
}

function transportFor(h: ResolvedHost): Transport {
  if (h.proxyJump) {
    const hops = h.proxyJump.split(',');
    const last = hops.pop()!;
    return commandTransport('ssh', [...(hops.length ? ['-J', hops.join(',')] : []), '-W', `${h.hostname}:${h.port}`, last]);
  }
  if (h.proxyCommand) {
    const cmd = h.proxyCommand.replace(/%(.)/g, (m, c: string) =>
      c === 'h' ? h.hostname : c === 'p' ? String(h.port) : c === 'r' ? h.user : c === '%' ? '%' : m,
    );
    return commandTransport('sh', ['-c', cmd]);
  }
  return tcpTransport(h.hostname, h.port);
}

type AuthMethod = { type: 'agent'; username: string; agent: string } | { type: 'publickey'; username: string; key: Buffer };

function authMethods(h: ResolvedHost, identity: string | undefined): AuthMethod[] {
  const methods: AuthMethod[] = [];
  const agent = h.identityAgent && h.identityAgent !== 'none' ? expandHome(h.identityAgent, homedir()) : process.env.SSH_AUTH_SOCK;
  const files = identity ? [identity] : h.identityFiles.map((f) => expandHome(f, homedir()));
  if (agent && !(identity && h.identitiesOnly) && existsSync(agent)) methods.push({ type: 'agent', username: h.user, agent });
  for (const file of files) {
    if (!existsSync(file)) {
      if (identity) throw new AuthError(`identity file ${identity} does not exist`);
      continue;
    }
    const key = readFileSync(file);
    const parsed = utils.parseKey(key);
    if (parsed instanceof Error) {
      // Keys with a passphrase are the agent's job; OpenSSH would prompt, we cannot in a backup job.
      debug(`skipping identity ${file}: ${parsed.message}`);
      if (identity) throw new AuthError(`cannot use identity file ${identity} (${parsed.message}); load it into ssh-agent instead`, { cause: parsed });
      continue;
    }
    methods.push({ type: 'publickey', username: h.user, key });
  }
  return methods;
}

export async function connect(opts: ConnectOptions): Promise<Connection> {
  const h = await resolveHost(opts.remote);
  const target = `${h.user}@${hostPattern(h.hostname, h.port)}`;
  const userFiles = opts.knownHosts ? [opts.knownHosts] : h.userKnownHostsFiles.map((f) => expandHome(f, homedir()));
  const pattern = hostPattern(h.hostname, h.port);
  // The global files count as OpenSSH counts them, even beside a vault's own known_hosts: a key revoked there stays revoked.
  const trust = await HostTrust.load({
    pattern,
    recordFile: userFiles[0],
    lookupFiles: [...userFiles, ...h.globalKnownHostsFiles.map((f) => expandHome(f, homedir()))],
    acceptNew: !!opts.acceptNewHostKey,
  });
  const methods = authMethods(h, opts.identity);
  if (methods.length === 0) {
    throw new AuthError(`no SSH key to log in to ${target}: give --identity FILE or start ssh-agent with your key`);
  }

  let refusal: Error | undefined;
  let verified: Buffer | undefined;
  const hostVerifier = (blob: Buffer, verify: (ok: boolean) => void) => {
    // A re-key shows the key again. ssh2 stops queueing outgoing packets once the
    // server's NEWKEYS arrives; if our NEWKEYS waits for an asynchronous answer,
    // packets sent in between go out under the old keys and the server drops the
    // connection as corrupted. The key of this connection is known by then: answer at once.
    if (verified) {
      if (!blob.equals(verified)) refusal = new AuthError(`the host key of ${target} changed during the connection; the run stops`);
      verify(blob.equals(verified));
      return;
    }
    trust.check(blob).then(
      (refused) => {
        if (refused) refusal = refused;
        else verified = Buffer.from(blob);
        verify(!refused);
      },
      (e: Error) => {
        refusal = e;
        verify(false);
      },
    );
  };

  const transport = transportFor(h);
  opts.onCounter?.(transport.counter);
  try {
    await transport.opened;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new LinkError(`cannot reach ${h.hostname}:${h.port} (${err.code ?? err.message}); check the address and that the host is up`, { cause: e });
  }

  const client = new Client();
  const queue = [...methods];
  const limit = uploadLimit(opts.limitUpload);
  if (limit) debug(`upload limited to ${limit} bytes/s`);
  const config: ConnectConfig = {
    sock: limit ? throttled(transport.stream, limit) : transport.stream,
    username: h.user,
    readyTimeout: 30_000,
    keepaliveInterval: KEEPALIVE_MS,
    keepaliveCountMax: KEEPALIVE_COUNT,
    hostVerifier: hostVerifier as ConnectConfig['hostVerifier'],
    authHandler: (_left, _partial, next) => {
      const m = queue.shift();
      (next as (m: unknown) => void)(m ?? false);
    },
    algorithms: {
      cipher: [...CIPHERS],
      compress: ['none'],
      ...(trust.algorithms() ? { serverHostKey: trust.algorithms() as never } : {}),
    },
  };
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error & { level?: string }) => {
      transport.destroy();
      if (refusal) return reject(refusal);
      if (e.level === 'client-authentication') {
        return reject(new AuthError(`${target} refused our SSH keys; give the right key with --identity or load it into ssh-agent`, { cause: e }));
      }
      const code = (e as NodeJS.ErrnoException).code;
      reject(new LinkError(`SSH connection to ${target} failed (${code ?? e.message}); check the address and that sshd is running`, { cause: e }));
    };
    // A reset during the handshake can end the client with 'close' and no 'error'.
    const onClose = () => onError(Object.assign(new Error('connection closed during the handshake'), { code: 'ECONNRESET' }));
    client.once('error', onError);
    client.once('close', onClose);
    client.once('ready', () => {
      client.off('error', onError);
      client.off('close', onClose);
      resolve();
    });
    client.connect(config);
  });
  debug(`connected to ${target}`);
  return new Connection(client, transport.counter, target, transport, requestTimeoutSeconds(opts.requestTimeoutSeconds) * 1000);
}
