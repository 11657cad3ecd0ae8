// bench/traffic: the seed's traffic table (ext2, ext3, fsck) reproduced on a
// generated tree and a deterministic churn, plus sshvault's own configurations.
// Everything runs through the built CLI (bin/sshvault) against a throwaway sshd
// on 127.0.0.1 behind a counting TCP relay. See bench/README.md.
import { spawn, spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync, unlinkSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SV = join(ROOT, 'bin', 'sshvault');

// ---------------------------------------------------------------- options
const DEFAULTS = {
  files: 6000, // regular files in the generated tree
  dirsPerFile: 1 / 14, // /usr/share has about one directory per 15 files
  medianKb: 3, // lognormal file sizes: median 3 KiB, mean about 11 KiB (like /usr/share)
  sigma: 1.6,
  maxKb: 4096,
  seed: 1,
  imageSize: '2G',
  bigMb: 128, // the throughput row: one file of this size, pushed after the check
  configs: 'ext2,ext3,ext4',
  json: false,
  keep: false,
  pbkdf: '1000', // SSHVAULT_TEST_PBKDF_ITERATIONS: only the time of a LUKS open changes, not its bytes
  check: true,
  secondIncr: true,
};

function usage() {
  return `usage: bench/traffic [options]
  --files N          regular files in the generated tree (default ${DEFAULTS.files})
  --median-kb K      median file size in KiB, lognormal (default ${DEFAULTS.medianKb})
  --sigma S          lognormal sigma (default ${DEFAULTS.sigma})
  --max-kb K         largest file in KiB (default ${DEFAULTS.maxKb})
  --seed N           tree and churn seed (default ${DEFAULTS.seed})
  --image-size S     vault image size for init --size (default ${DEFAULTS.imageSize})
  --big-mb M         size of the sequential-write throughput file (default ${DEFAULTS.bigMb}; 0 skips)
  --configs LIST     comma list of configurations (default ${DEFAULTS.configs}); known: ${Object.keys(CONFIGS).join(', ')}
  --no-check         skip the forced check
  --no-second-incr   skip the second incremental push
  --json             print the results as JSON instead of tables
  --keep             keep the work directory (for debugging)`;
}

function parseArgs(argv) {
  const o = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--files': o.files = Number(val()); break;
      case '--median-kb': o.medianKb = Number(val()); break;
      case '--sigma': o.sigma = Number(val()); break;
      case '--max-kb': o.maxKb = Number(val()); break;
      case '--seed': o.seed = Number(val()); break;
      case '--image-size': o.imageSize = val(); break;
      case '--big-mb': o.bigMb = Number(val()); break;
      case '--configs': o.configs = val(); break;
      case '--no-check': o.check = false; break;
      case '--no-second-incr': o.secondIncr = false; break;
      case '--json': o.json = true; break;
      case '--keep': o.keep = true; break;
      case '-h': case '--help': console.log(usage()); process.exit(0);
      default: throw new Error(`unknown option ${a}\n${usage()}`);
    }
  }
  return o;
}

// ------------------------------------------------------- configurations
// A configuration is an --fs for init plus optional PATH shims: tiny wrappers
// around system tools that exist only in the bench's work directory. They are
// how the bench builds what the product never makes (ext3: a journal) and how
// it tries variants before they go into src/. The product is never changed by them.
const mountRewrite = (from, to, extraOpts) => `
args=(); prev=""
for a in "$@"; do
  if [ "$prev" = "-t" ] && [ "$a" = "${from}" ]; then a="${to}"; fi
  ${extraOpts ? `if [ "$prev" = "-o" ]; then a="$a,${extraOpts}"; fi` : ''}
  args+=("$a"); prev="$a"
done
exec REAL "\${args[@]}"`;
const appendArgs = (extra) => `exec REAL ${extra} "$@"`;

const CONFIGS = {
  ext2: { fs: 'ext2', note: "the seed's layout (mke2fs)" },
  ext3: {
    fs: 'ext2',
    note: 'comparison only: ext2 + journal via bench shims (mkfs.ext3, mount -t ext3)',
    shims: { 'mkfs.ext2': `exec ${'MKFS_EXT3'} "$@"`, mount: mountRewrite('ext2', 'ext3') },
  },
  ext4: { fs: 'ext4', note: 'default: ext4 without journal' },
  // Variants tried on top of the default (shims; the winners went into src/):
  'ext4-ra0': { fs: 'ext4', note: 'loop readahead 0 for push too', shims: { losetup: 'LOSETUP_RA0' } },
  'ext4-1k': { fs: 'ext4', note: 'ext4, 1 KiB blocks', shims: { 'mkfs.ext4': appendArgs('-b 1024') } },
  'ext4-1k-ra0': { fs: 'ext4', note: '1 KiB blocks + loop readahead 0', shims: { 'mkfs.ext4': appendArgs('-b 1024'), losetup: 'LOSETUP_RA0' } },
  'ext4-i16k': { fs: 'ext4', note: 'bytes-per-inode 16K (default), inode size 128', shims: { 'mkfs.ext4': appendArgs('-I 128') } },
  'ext4-nodelalloc': { fs: 'ext4', note: 'mount -o nodelalloc', shims: { mount: mountRewrite('ext4', 'ext4', 'nodelalloc') } },
  'ext4-irab0': { fs: 'ext4', note: 'mount -o inode_readahead_blks=0', shims: { mount: mountRewrite('ext4', 'ext4', 'inode_readahead_blks=0') } },
  'ext4-nbd-none': { fs: 'ext4', note: 'qemu-nbd --cache=none', shims: { 'qemu-nbd': 'QEMU_CACHE:none' } },
  'ext4-nbd-wt': { fs: 'ext4', note: 'qemu-nbd --cache=writethrough', shims: { 'qemu-nbd': 'QEMU_CACHE:writethrough' } },
};

function which(tool) {
  const r = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  if (!p) throw new Error(`${tool} not found; run scripts/install.sh`);
  return p;
}

function writeShims(dir, shims) {
  mkdirSync(dir, { recursive: true });
  for (const [tool, body0] of Object.entries(shims ?? {})) {
    const real = which(tool);
    let body;
    if (body0 === 'LOSETUP_RA0') {
      // After `losetup --find --show FILE` the new device's readahead goes to 0.
      body = `out=$(${real} "$@") || exit $?\n[ -n "$out" ] && echo "$out"\nfor a in "$@"; do [ "$a" = --show ] && [ -b "$out" ] && blockdev --setra 0 "$out"; done\nexit 0`;
    } else if (body0.startsWith('QEMU_CACHE:')) {
      const mode = body0.slice('QEMU_CACHE:'.length);
      body = `args=()\nfor a in "$@"; do case "$a" in --cache=*) a="--cache=${mode}";; esac; args+=("$a"); done\nexec ${real} "\${args[@]}"`;
    } else {
      body = body0.replace('REAL', real).replace('MKFS_EXT3', which('mkfs.ext3'));
    }
    writeFileSync(join(dir, tool), `#!/usr/bin/env bash\n# bench shim for ${tool}\n${body}\n`);
    chmodSync(join(dir, tool), 0o755);
  }
}

// ---------------------------------------------------------------- helpers
function log(...a) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout ?? ''}\n${r.stderr ?? ''}`);
  }
  return r;
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Incompressible, deterministic bytes: AES-256-CTR keystream keyed by the label. */
function content(label, size) {
  const key = createHash('sha256').update(label).digest();
  const c = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return c.update(Buffer.alloc(size));
}

function gauss(rnd) {
  const u = Math.max(rnd(), 1e-12);
  const v = rnd();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

function fileSize(rnd, o) {
  const s = Math.round(o.medianKb * 1024 * Math.exp(o.sigma * gauss(rnd)));
  return Math.max(0, Math.min(s, o.maxKb * 1024));
}

/** Like sh, but async: the relay lives in this process and must keep forwarding while children run. */
function ash(cmd, args, opts = {}) {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', opts.ignoreOutput ? 'ignore' : 'pipe', opts.ignoreOutput ? 'ignore' : 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    child.on('error', rej);
    child.on('close', (status) => {
      if (status !== 0 && !opts.allowFail) rej(new Error(`${cmd} ${args.join(' ')} exited ${status}\n${stdout}\n${stderr}`));
      else res({ status, stdout, stderr });
    });
  });
}

// ------------------------------------------------------------- the tree
/** Deterministic tree: two levels of directories, files spread over them. */
function generateTree(root, o) {
  const rnd = mulberry32(o.seed);
  const nDirs = Math.max(1, Math.round(o.files * o.dirsPerFile));
  const top = Math.max(1, Math.round(Math.sqrt(nDirs)));
  const dirs = [];
  for (let i = 0; i < nDirs; i++) {
    const d = i < top ? `d${String(i).padStart(3, '0')}` : `d${String(i % top).padStart(3, '0')}/sub-${String(i).padStart(5, '0')}`;
    dirs.push(d);
  }
  for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
  let bytes = 0;
  for (let i = 0; i < o.files; i++) {
    const d = dirs[Math.floor(rnd() * dirs.length)];
    const size = fileSize(rnd, o);
    const name = `${d}/file-${String(i).padStart(6, '0')}.dat`;
    writeFileSync(join(root, name), content(`${o.seed}/${name}`, size));
    // Every file gets the same old mtime, so only the churn makes files differ.
    utimesSync(join(root, name), 1_600_000_000, 1_600_000_000);
    bytes += size;
  }
  return { files: o.files, dirs: nDirs + 1, bytes, entries: o.files + nDirs + 1, dirList: dirs };
}

function listFiles(root) {
  const out = [];
  const walk = (rel) => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk('');
  return out.sort();
}

/**
 * The issue's churn on 48.8k files, scaled: 1% modified (new content, same size),
 * 0.5% deleted, 0.5% re-timed (same content, new mtime), 0.115% new files.
 */
function churn(root, o, round, tree) {
  const rnd = mulberry32(o.seed * 1000 + round);
  const files = listFiles(root);
  const n = files.length;
  const pick = (k) => {
    const chosen = [];
    for (let i = 0; i < k && files.length; i++) chosen.push(files.splice(Math.floor(rnd() * files.length), 1)[0]);
    return chosen;
  };
  const counts = { modified: Math.round(n * 0.01), deleted: Math.round(n * 0.005), retimed: Math.round(n * 0.005), added: Math.max(1, Math.round(n * 0.00115)) };
  let changed = 0;
  // Modified files are picked with probability growing with their size (as edits hit
  // the big files of a real tree more often): the issue's churn changed 3.5% of the bytes with 1% of the files.
  const pickBySize = (k) => {
    const w = files.map((f) => Math.sqrt(statSync(join(root, f)).size + 1));
    const chosen = [];
    for (let i = 0; i < k && files.length; i++) {
      let x = rnd() * w.reduce((a, b) => a + b, 0);
      let j = 0;
      while (j < w.length - 1 && (x -= w[j]) > 0) j++;
      chosen.push(files.splice(j, 1)[0]);
      w.splice(j, 1);
    }
    return chosen;
  };
  for (const f of pickBySize(counts.modified)) {
    const size = statSync(join(root, f)).size;
    writeFileSync(join(root, f), content(`${o.seed}/${f}/r${round}`, size));
    changed += size;
  }
  for (const f of pick(counts.deleted)) unlinkSync(join(root, f));
  for (const f of pick(counts.retimed)) utimesSync(join(root, f), 1_700_000_000 + round, 1_700_000_000 + round);
  for (let i = 0; i < counts.added; i++) {
    const d = tree.dirList[Math.floor(rnd() * tree.dirList.length)];
    const size = fileSize(rnd, o);
    const name = `${d}/new-r${round}-${i}.dat`;
    writeFileSync(join(root, name), content(`${o.seed}/${name}`, size));
    changed += size;
  }
  return { ...counts, changedBytes: changed };
}

// -------------------------------------------------------- sshd and relay
async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

async function startSshd(dir) {
  mkdirSync('/run/sshd', { recursive: true });
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id_bench')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'id_bench.pub')));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    writeFileSync(
      join(dir, 'sshd_config'),
      `ListenAddress 127.0.0.1:${port}\nHostKey ${dir}/host_key\nAuthorizedKeysFile ${dir}/authorized_keys\nPidFile ${dir}/sshd.pid\n` +
        `PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\n` +
        `MaxStartups 100\nMaxSessions 100\nSubsystem sftp internal-sftp\nLogLevel INFO\n`,
    );
    const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const ok = await new Promise((res) => {
      const t0 = Date.now();
      const poll = () => {
        if (err.includes(`Server listening on 127.0.0.1 port ${port}`)) return res(true);
        if (child.exitCode !== null || Date.now() - t0 > 15000) return res(false);
        setTimeout(poll, 20);
      };
      poll();
    });
    if (ok) return { port, child, stop: () => child.exitCode === null && child.kill('SIGTERM') };
    child.kill('SIGKILL');
  }
  throw new Error('sshd would not start');
}

/** A TCP relay that counts bytes each way: the independent check of sshvault's own socket counters. */
async function startRelay(targetPort) {
  let up = 0;
  let down = 0;
  const socks = new Set();
  const server = createServer((c) => {
    const s = connect(targetPort, '127.0.0.1');
    socks.add(c);
    socks.add(s);
    c.on('data', (d) => {
      up += d.length;
      if (!s.write(d)) c.pause();
    });
    s.on('drain', () => c.resume());
    s.on('data', (d) => {
      down += d.length;
      if (!c.write(d)) s.pause();
    });
    c.on('drain', () => s.resume());
    const end = () => {
      c.destroy();
      s.destroy();
      socks.delete(c);
      socks.delete(s);
    };
    c.on('close', end).on('error', end);
    s.on('close', end).on('error', end);
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  return {
    port: server.address().port,
    counts: () => ({ up, down }),
    close: () => {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

// ------------------------------------------------------------ the runs
async function sv(ws, args, opts = {}) {
  const t0 = Date.now();
  const r = await ash(SV, args, { env: ws.env, allowFail: true, ...opts });
  const ms = Date.now() - t0;
  if (r.status !== 0 && !(opts.okCodes ?? []).includes(r.status)) {
    throw new Error(`sshvault ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  }
  return { ...r, ms };
}

async function lastRun(ws) {
  const runs = JSON.parse((await sv(ws, ['stats', '--json'])).stdout).runs;
  return runs[runs.length - 1];
}

/** A raw sshfs (OpenSSH, chacha20) on the same sshd via the relay: the sequential-write baseline of the throughput goal. */
async function rawSshfsWrite(work, sshd, relay, mb) {
  const mnt = join(work, 'raw-sshfs');
  const remote = join(work, 'remote-raw');
  mkdirSync(mnt, { recursive: true });
  mkdirSync(remote, { recursive: true });
  const ssh = `ssh -F /dev/null -i ${work}/id_bench -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR -c chacha20-poly1305@openssh.com -p ${relay.port}`;
  await ash('sshfs', ['-o', `ssh_command=${ssh}`, `root@127.0.0.1:${remote}`, mnt], { ignoreOutput: true });
  try {
    const before = relay.counts();
    const t0 = process.hrtime.bigint();
    await ash('dd', ['if=/dev/zero', `of=${mnt}/raw.bin`, 'bs=1M', `count=${mb}`, 'conv=fsync', 'status=none']);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const after = relay.counts();
    return { bytes: mb << 20, ms: Math.round(ms), mbps: (mb << 20) / 1e6 / (ms / 1000), upBytes: after.up - before.up, downBytes: after.down - before.down };
  } finally {
    sh('fusermount3', ['-u', mnt], { allowFail: true });
    rmSync(join(remote, 'raw.bin'), { force: true });
  }
}

function rowFrom(config, label, rec, relayDelta, extra = {}) {
  const phases = rec.phases.map((p) => ({ name: p.name, upBytes: p.upBytes, downBytes: p.downBytes, ms: p.ms }));
  return {
    config,
    run: label,
    ok: rec.ok,
    changedBytes: rec.changedBytes ?? 0,
    upBytes: rec.upBytes,
    downBytes: rec.downBytes,
    ms: phases.reduce((t, p) => t + p.ms, 0),
    relayUp: relayDelta.up,
    relayDown: relayDelta.down,
    phases,
    ...extra,
  };
}

async function runConfig(name, o, ctx) {
  const cfg = CONFIGS[name];
  if (!cfg) throw new Error(`unknown configuration ${name}; known: ${Object.keys(CONFIGS).join(', ')}`);
  const dir = join(ctx.work, `cfg-${name}`);
  mkdirSync(dir, { recursive: true });
  const shimDir = join(dir, 'shims');
  writeShims(shimDir, cfg.shims);
  const ws = {
    dir,
    env: {
      ...process.env,
      PATH: `${shimDir}:${process.env.PATH}`,
      XDG_CONFIG_HOME: join(dir, 'config'),
      XDG_STATE_HOME: join(dir, 'state'),
      XDG_CACHE_HOME: join(dir, 'cache'),
      SSHVAULT_TEST_PBKDF_ITERATIONS: o.pbkdf,
    },
  };
  ctx.workspaces.push(ws);
  const src = join(dir, 'src');
  mkdirSync(src);
  log(`${name}: generating the tree`);
  const tree = generateTree(src, o);
  const pass = join(dir, 'passphrase');
  writeFileSync(pass, 'bench passphrase, not secret', { mode: 0o600 });
  const remote = join(ctx.work, `remote-${name}`);
  mkdirSync(remote);
  const rows = [];
  const relay = ctx.relay;
  const measured = async (label, args, extra = {}, svOpts = {}, w = ws) => {
    const before = relay.counts();
    const r = await sv(w, args, svOpts);
    const after = relay.counts();
    const rec = await lastRun(w);
    const row = rowFrom(name, label, rec, { up: after.up - before.up, down: after.down - before.down }, { wallMs: r.ms, ...extra });
    rows.push(row);
    log(`${name}: ${label}: up ${mb(row.upBytes)} down ${mb(row.downBytes)} changed ${mb(row.changedBytes)} (${(r.ms / 1000).toFixed(1)} s)`);
    return { r, row };
  };
  log(`${name}: init (${cfg.note})`);
  await measured('init', [
    'init', 'bench', '--remote', `ssh://root@127.0.0.1:${relay.port}${remote}`, '--size', o.imageSize, '--fs', cfg.fs,
    '--identity', join(ctx.work, 'id_bench'), '--known-hosts', join(dir, 'known_hosts'), '--accept-new-host-key',
    '--passphrase-file', pass, '--source', src,
  ]);
  await measured('full push', ['push']);
  const c1 = churn(src, o, 1, tree);
  await measured('incremental', ['push'], { churn: c1 });
  if (o.secondIncr) {
    const c2 = churn(src, o, 2, tree);
    await measured('incremental 2', ['push'], { churn: c2 });
  }
  if (o.check) {
    // check never trusts the block cache: it reads from the remote, as on a machine that never opened the vault.
    const { r, row } = await measured('check', ['check', '--json', '--passphrase-file', pass], {}, { okCodes: [7] });
    try {
      const out = JSON.parse(r.stdout).fsck?.output ?? '';
      row.fsckSummary = out.split('\n').find((l) => /files.*blocks/.test(l))?.trim();
    } catch {}
  }
  if (o.bigMb > 0) {
    // A vault of its own holding only the file: the sync phase is then the sequential write, not a walk of the tree.
    const tp = join(dir, 'throughput');
    mkdirSync(join(tp, 'src'), { recursive: true });
    mkdirSync(join(ctx.work, `remote-${name}-tp`));
    const w = { ...ws, env: { ...ws.env, XDG_CONFIG_HOME: join(tp, 'config'), XDG_STATE_HOME: join(tp, 'state'), XDG_CACHE_HOME: join(tp, 'cache') } };
    ctx.workspaces.push(w);
    await sv(w, [
      'init', 'bench-tp', '--remote', `ssh://root@127.0.0.1:${relay.port}${ctx.work}/remote-${name}-tp`, '--size', o.imageSize, '--fs', cfg.fs,
      '--identity', join(ctx.work, 'id_bench'), '--known-hosts', join(dir, 'known_hosts'), '--passphrase-file', pass, '--source', join(tp, 'src'),
    ]);
    writeFileSync(join(tp, 'src', 'big.bin'), content(`${o.seed}/big`, o.bigMb << 20));
    const { row } = await measured('big file', ['push'], {}, {}, w);
    const sync = row.phases.find((p) => p.name === 'sync');
    row.syncMBps = sync ? row.changedBytes / 1e6 / (sync.ms / 1000) : undefined;
  }
  return { name, note: cfg.note, fs: cfg.fs, tree, rows, fsGeometry: await geometry(dir, cfg.fs, o.imageSize, ws.env) };
}

/**
 * The filesystem's geometry as the product's own makeFilesystem (dist/, through the
 * configuration's shims) makes it on a local sparse file of the image's size.
 */
async function geometry(dir, fs, size, env) {
  const f = join(dir, 'geometry.img');
  const savedPath = process.env.PATH;
  try {
    sh('truncate', ['-s', size, f]);
    const { makeFilesystem } = await import(join(ROOT, 'dist', 'stack', 'fs.js'));
    process.env.PATH = env.PATH;
    await makeFilesystem(f, fs);
    const out = sh('dumpe2fs', ['-h', f], { env }).stdout;
    const num = (k) => Number(new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(out)?.[1]);
    return { blockSize: num('Block size'), inodeSize: num('Inode size'), blocksPerGroup: num('Blocks per group'), inodesPerGroup: num('Inodes per group') };
  } catch (e) {
    log(`geometry: ${e.message}`);
    return undefined;
  } finally {
    process.env.PATH = savedPath;
    rmSync(f, { force: true });
  }
}

// ---------------------------------------------------------- reporting
const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
const linkSeconds = (up, down, upMbit, downMbit) => (up * 8) / (upMbit * 1e6) + (down * 8) / (downMbit * 1e6);

function fmtTime(s) {
  if (s < 60) return `${s.toFixed(0)} s`;
  return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

function table(headers, rows, alignLeft = 1) {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => '| ' + cells.map((c, i) => (i < alignLeft ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join(' | ') + ' |';
  return [line(headers), '|' + w.map((x, i) => (i < alignLeft ? ':' : '-') + '-'.repeat(x) + (i < alignLeft ? '-' : ':')).join('|') + '|', ...rows.map(line)].join('\n');
}

function ratio(a, b) {
  return b > 0 ? `${(a / b).toFixed(2)}x` : '-';
}

function goals(result) {
  // The traffic goals on a configuration: upload <= 1.5x changed + 64 B per tree entry;
  // download <= 0.1x changed on the second and later pushes; check download <= 2x metadata in use.
  const out = [];
  for (const c of result.configs) {
    const entries = c.tree.entries;
    for (const r of c.rows.filter((r) => r.run.startsWith('incremental'))) {
      const upLimit = 1.5 * r.changedBytes + 64 * entries;
      const downLimit = 0.1 * r.changedBytes;
      out.push({ config: c.name, run: r.run, goal: 'upload', value: r.upBytes, limit: Math.round(upLimit), met: r.upBytes <= upLimit });
      out.push({ config: c.name, run: r.run, goal: 'download', value: r.downBytes, limit: Math.round(downLimit), met: r.downBytes <= downLimit });
    }
    const chk = c.rows.find((r) => r.run === 'check');
    if (chk && c.metadataInUse) {
      const lim = 2 * c.metadataInUse;
      out.push({ config: c.name, run: 'check', goal: 'check download', value: chk.downBytes, limit: lim, met: chk.downBytes <= lim });
    }
  }
  return out;
}

/**
 * Metadata actually in use, estimated from e2fsck's own summary (used inodes)
 * and the snapshots' directories: used inodes x inode size, one block per
 * directory and snapshot (the generated directories are small), the
 * bitmaps and descriptors of every group. This is what a check must read at least.
 */
function metadataInUse(c, fsInfo) {
  const chk = c.rows.find((r) => r.run === 'check');
  const m = /(\d+)\/(\d+) files.*?(\d+)\/(\d+) blocks/.exec(chk?.fsckSummary ?? '');
  if (!m || !fsInfo) return undefined;
  const usedInodes = Number(m[1]);
  const snapshots = c.rows.filter((r) => r.run.includes('push') || r.run.startsWith('incremental')).length;
  const dirBlocks = snapshots * c.tree.dirs + 4;
  const groups = Math.ceil(Number(m[4]) / fsInfo.blocksPerGroup);
  return usedInodes * fsInfo.inodeSize + dirBlocks * fsInfo.blockSize + groups * 2 * fsInfo.blockSize + Math.ceil((groups * 64) / fsInfo.blockSize) * fsInfo.blockSize;
}

function render(result) {
  const L = [];
  const t = result.tree;
  L.push(`Tree: ${t.files} files, ${t.dirs} dirs (${t.entries} entries), ${mb(t.bytes)}; image ${result.options.imageSize}; churn per incremental: ${JSON.stringify(result.configs[0]?.rows.find((r) => r.churn)?.churn ?? {})}`);
  L.push('');
  const rows = [];
  for (const c of result.configs) {
    for (const r of c.rows) {
      rows.push([
        c.name, r.run, mb(r.upBytes), mb(r.downBytes), mb(r.changedBytes),
        r.changedBytes ? ratio(r.upBytes, r.changedBytes) : '-', r.changedBytes ? ratio(r.downBytes, r.changedBytes) : '-',
        r.changedBytes ? `${Math.round((r.upBytes - r.changedBytes) / t.entries)}` : '-',
        fmtTime(linkSeconds(r.upBytes, r.downBytes, 10, 10)), fmtTime(linkSeconds(r.upBytes, r.downBytes, 10, 50)),
        `${(r.ms / 1000).toFixed(1)} s`,
      ]);
    }
  }
  L.push(table(['config', 'run', 'up', 'down', 'changed', 'up/chg', 'down/chg', 'extra up B/entry', '10/10 Mbit', '50/10 Mbit', 'here'], rows, 2));
  L.push('');
  L.push('Phases (bytes up / down, time here):');
  const prow = [];
  for (const c of result.configs) {
    for (const r of c.rows.filter((r) => r.run !== 'init' && r.run !== 'full push')) {
      prow.push([c.name, r.run, ...['connect', 'open', 'sync', 'fsck', 'close'].map((n) => {
        const p = r.phases.find((p) => p.name === n);
        return p ? `${mb(p.upBytes)} / ${mb(p.downBytes)} ${(p.ms / 1000).toFixed(1)}s` : '';
      })]);
    }
  }
  L.push(table(['config', 'run', 'connect', 'open', 'sync', 'fsck', 'close'], prow, 2));
  L.push('');
  if (result.rawSshfs) {
    const raw = result.rawSshfs;
    const trow = result.configs
      .map((c) => c.rows.find((r) => r.run === 'big file'))
      .filter((r) => r?.syncMBps)
      .map((r) => [r.config, `${raw.mbps.toFixed(1)} MB/s`, `${r.syncMBps.toFixed(1)} MB/s`, `${((100 * r.syncMBps) / raw.mbps).toFixed(0)}%`, ratio(r.upBytes, r.changedBytes)]);
    L.push(`Throughput (goal >= 70%): raw sshfs sequential write of ${result.options.bigMb} MiB (OpenSSH chacha20, same sshd and relay) vs the stack's sync phase pushing one ${result.options.bigMb} MiB file:`);
    L.push(table(['config', 'raw sshfs', 'stack sync', 'ratio', 'up/chg'], trow));
    L.push('');
  }
  L.push('Traffic goals:');
  L.push(table(['config', 'run', 'goal', 'value', 'limit', 'met'], result.goals.map((g) => [g.config, g.run, g.goal, mb(g.value), mb(g.limit), g.met ? 'yes' : 'NO'])));
  const mism = result.configs.flatMap((c) => c.rows).filter((r) => r.relayUp !== r.upBytes || r.relayDown !== r.downBytes);
  L.push('');
  L.push(mism.length ? `Relay vs sshvault counters differ on ${mism.length} run(s): ${mism.map((r) => `${r.config}/${r.run} relay ${r.relayUp}/${r.relayDown} vs ${r.upBytes}/${r.downBytes}`).join('; ')}` : 'Relay counts equal sshvault\'s own counters on every run.');
  return L.join('\n');
}

// ---------------------------------------------------------------- main
async function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === '--render') {
    // Re-render (and merge) results saved with --json: bench/traffic --render a.json b.json
    const parts = argv.slice(1).map((f) => JSON.parse(readFileSync(f, 'utf8')));
    const result = { ...parts[0], configs: parts.flatMap((p) => p.configs) };
    for (const c of result.configs) c.metadataInUse = metadataInUse(c, c.fsGeometry);
    result.goals = goals(result);
    console.log(render(result));
    return;
  }
  const o = parseArgs(argv);
  if (!existsSync(join(ROOT, 'dist'))) throw new Error('dist/ missing: run bash scripts/install.sh (or npm run build)');
  const work = mkdtempSync(join(tmpdir(), 'sshvault-bench-'));
  const ctx = { work, workspaces: [] };
  let sshd;
  const cleanup = () => {
    // The relay must be gone first: recover talks to nothing remote, and a stuck link must not hang it.
    for (const ws of ctx.workspaces) sh(SV, ['recover'], { env: ws.env, allowFail: true, timeout: 120000 });
    sh('fusermount3', ['-u', join(work, 'raw-sshfs')], { allowFail: true, stdio: 'ignore' });
    ctx.relay?.close();
    sshd?.stop();
    if (!o.keep) rmSync(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  };
  const onSignal = (s) => {
    log(`${s}: cleaning up`);
    cleanup();
    process.exit(130);
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, onSignal);
  const t0 = Date.now();
  try {
    sshd = await startSshd(work);
    ctx.relay = await startRelay(sshd.port);
    const result = { options: o, configs: [], started: new Date().toISOString() };
    if (o.bigMb > 0) {
      log('raw sshfs sequential write');
      result.rawSshfs = await rawSshfsWrite(work, sshd, ctx.relay, o.bigMb);
    }
    for (const name of o.configs.split(',').map((s) => s.trim()).filter(Boolean)) {
      const c = await runConfig(name, o, ctx);
      result.tree = c.tree;
      result.configs.push(c);
    }
    for (const c of result.configs) c.metadataInUse = metadataInUse(c, c.fsGeometry);
    result.goals = goals(result);
    result.seconds = Math.round((Date.now() - t0) / 1000);
    if (o.json) console.log(JSON.stringify(result, (k, v) => (k === 'dirList' ? undefined : v), 2));
    else console.log(render(result) + `\n\nBench took ${fmtTime(result.seconds)}.`);
  } finally {
    cleanup();
  }
}

main().catch((e) => {
  console.error(`bench/traffic: ${e.stack ?? e}`);
  process.exit(1);
});
