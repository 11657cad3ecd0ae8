#!/usr/bin/env node
// A TCP relay that breaks the link on demand, run inside the VM (which has no
// iptables) between sshvault and the host's sshd.
//
//   node cut-relay.mjs LISTEN_PORT TARGET_HOST:TARGET_PORT CONTROL_FILE
//
// CONTROL_FILE is read at each new connection, so one relay serves a whole
// test run: empty or missing means "forward everything"; "BYTES reset" means
// that once more than BYTES have gone client -> server the relay resets both
// sides (the client sees ECONNRESET at once); "BYTES silent" means it stops
// forwarding but keeps both sockets open, as a dead route does, so only the
// client's keepalive can notice. One line per event goes to stdout.
import { readFileSync } from 'node:fs';
import net from 'node:net';

const [listenPort, target, controlFile] = process.argv.slice(2);
if (!listenPort || !target || !controlFile) {
  console.error('usage: cut-relay.mjs LISTEN_PORT TARGET_HOST:TARGET_PORT CONTROL_FILE');
  process.exit(2);
}
const [targetHost, targetPort] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];

function readControl() {
  let text = '';
  try {
    text = readFileSync(controlFile, 'utf8').trim();
  } catch {
    return null;
  }
  if (!text) return null;
  const [bytes, mode = 'reset'] = text.split(/\s+/);
  if (!/^\d+$/.test(bytes) || !['reset', 'silent'].includes(mode)) throw new Error(`bad control line: ${text}`);
  return { limit: Number(bytes), mode };
}

let seq = 0;
const server = net.createServer((client) => {
  const id = ++seq;
  const cut = readControl();
  const upstream = net.connect(targetPort, targetHost);
  let up = 0;
  let down = 0;
  let dead = false;
  const log = (what) => console.log(`relay conn ${id}: ${what} (up ${up}, down ${down})`);
  log(cut ? `open, cut after ${cut.limit} bytes up (${cut.mode})` : 'open, no cut');

  const breakLink = () => {
    dead = true;
    if (cut.mode === 'reset') {
      client.resetAndDestroy();
      upstream.destroy();
      log('cut: reset');
    } else {
      log('cut: silent, nothing forwarded from now on');
    }
  };
  client.on('data', (buf) => {
    if (dead) return;
    if (cut && up + buf.length > cut.limit) {
      // Forward exactly up to the limit so the cut point does not depend on chunking.
      const part = buf.subarray(0, Math.max(0, cut.limit - up));
      up += part.length;
      if (part.length) upstream.write(part);
      breakLink();
      return;
    }
    up += buf.length;
    upstream.write(buf);
  });
  upstream.on('data', (buf) => {
    if (dead) return;
    down += buf.length;
    client.write(buf);
  });
  // A silent cut ends only when the client gives up on the connection.
  client.on('close', () => {
    upstream.destroy();
    log('client closed');
  });
  upstream.on('close', () => {
    if (!dead) client.destroy();
  });
  client.on('error', () => {});
  upstream.on('error', (e) => {
    log(`upstream error ${e.code ?? e.message}`);
    client.destroy();
  });
});
server.listen(Number(listenPort), '127.0.0.1', () => console.log(`relay listening on 127.0.0.1:${listenPort} -> ${target}`));
