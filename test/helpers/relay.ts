import { connect, createServer, type Socket } from 'node:net';

/**
 * How a link dies. 'reset': both sides get a TCP RST at once, as when a NAT
 * box or the peer drops the connection. 'blackhole': the relay stops
 * forwarding and stops reading but keeps both sockets open, as a dead route
 * does; only a keepalive can tell.
 */
export type CutMode = 'reset' | 'blackhole';

export interface RelayOptions {
  /**
   * Cut each connection once it has carried this many bytes, both directions
   * together. Exactly this many are counted and handed to the kernel, whatever
   * the chunking (a reset may still discard the last of them from its send
   * queue). Every connection gets its own budget, so a retry through the same
   * relay dies at the same point.
   */
  cutAfterBytes?: number;
  /** How a cutAfterBytes cut happens; default 'reset'. */
  mode?: CutMode;
}

export interface Relay {
  port: number;
  /** Client -> server bytes forwarded so far, over all connections. */
  upBytes(): number;
  /** Server -> client bytes forwarded so far, over all connections. */
  downBytes(): number;
  /** Connections accepted so far. */
  connections(): number;
  /** Cuts every open connection now; later connections are forwarded again. */
  cut(mode?: CutMode): void;
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  server: Socket;
  bytes: number;
  state: 'open' | 'cut';
}

function reset(s: Socket): void {
  // resetAndDestroy throws on a socket whose handle is already gone.
  if (s.destroyed) return;
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}

export async function startRelay(target: { host: string; port: number }, opts: RelayOptions = {}): Promise<Relay> {
  let up = 0;
  let down = 0;
  let accepted = 0;
  const links = new Set<Link>();
  const sockets = new Set<Socket>();

  const cutLink = (link: Link, mode: CutMode) => {
    if (link.state === 'cut') return;
    link.state = 'cut';
    if (mode === 'reset') {
      reset(link.client);
      reset(link.server);
    } else {
      // Paused sockets leave the data in the kernel: the peers' windows fill and their writes stall, as on a dead route.
      link.client.pause();
      link.server.pause();
    }
  };

  const forward = (link: Link, from: Socket, to: Socket, count: (n: number) => void) => {
    from.on('data', (buf: Buffer) => {
      if (link.state !== 'open') return;
      const limit = opts.cutAfterBytes;
      const chunk = limit === undefined ? buf : buf.subarray(0, Math.max(0, limit - link.bytes));
      link.bytes += chunk.length;
      count(chunk.length);
      if (chunk.length && !to.write(chunk)) {
        from.pause();
        to.once('drain', () => link.state === 'open' && from.resume());
      }
      if (limit !== undefined && link.bytes >= limit) cutLink(link, opts.mode ?? 'reset');
    });
    // Half-closes pass through (a peer that shuts down its sending side still
    // gets its replies), and so do resets. A clean close is the two ends in turn.
    from.on('end', () => link.state === 'open' && to.end());
    from.on('error', () => link.state === 'open' && reset(to));
    from.on('close', () => {
      sockets.delete(from);
      if (to.destroyed) links.delete(link);
    });
  };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const link: Link = { client, server: upstream, bytes: 0, state: 'open' };
    links.add(link);
    sockets.add(client);
    sockets.add(upstream);
    forward(link, client, upstream, (n) => (up += n));
    forward(link, upstream, client, (n) => (down += n));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (!addr || typeof addr !== 'object') throw new Error('relay has no address');

  return {
    port: addr.port,
    upBytes: () => up,
    downBytes: () => down,
    connections: () => accepted,
    cut(mode: CutMode = 'reset') {
      for (const link of links) cutLink(link, mode);
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
