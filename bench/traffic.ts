// bench/traffic: the seed's traffic table (ext2, ext3, fsck) reproduced on a
// generated tree and a deterministic churn, plus sshvault's own configurations.
// Everything runs through the built CLI (bin/sshvault) against a throwaway sshd
// on 127.0.0.1 behind a counting TCP relay. See bench/README.md.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { renderTable, type Align } from '../src/ui/table.js';
import { workspace, type Workspace } from '../test/helpers/cli.js';
import { forceCleanup } from '../test/helpers/cleanup.js';
import { repoRoot } from '../test/helpers/repo-root.js';
import { startRelay, type Relay } from '../test/helpers/relay.js';
import { startSshd, type SshdFixture } from '../test/helpers/sshd.js';
import { log, run, sh, which } from './lib/run.js';
import { churn, content, generateTree, type Churn, type Tree, type TreeOptions } from './lib/tree.js';

const ROOT = repoRoot(import.meta.dirname);

// ------------------------------------------------------- configurations
// A configuration is an --fs for init plus optional PATH shims: tiny wrappers
// around system tools that exist only in the bench's work directory. They are
// how the bench builds what the product never makes (ext3: a journal) and how
// it tries variants before they go into src/. The product is never changed by them.
const mountRewrite = (from: string, to: string, extraOpts?: string) => `
args=(); prev=""
for a in "$@"; do
  if [ "$prev" = "-t" ] && [ "$a" = "${from}" ]; then a="${to}"; fi
  ${extraOpts ? `if [ "$prev" = "-o" ]; then a="$a,${extraOpts}"; fi` : ''}
  args+=("$a"); prev="$a"
done
exec REAL "\${args[@]}"`;
const appendArgs = (extra: string) => `exec REAL ${extra} "$@"`;

interface Config {
  fs: 'ext2' | 'ext4' | 'btrfs';
  note: string;
  shims?: Record<string, string>;
}

const CONFIGS: Record<string, Config> = {
  ext2: { fs: 'ext2', note: "the seed's layout (mke2fs)" },
  ext3: {
    fs: 'ext2',
    note: 'comparison only: ext2 + journal via bench shims (mkfs.ext3, mount -t ext3)',
    shims: { 'mkfs.ext2': `exec MKFS_EXT3 "$@"`, mount: mountRewrite('ext2', 'ext3') },
  },
  ext4: { fs: 'ext4', note: 'ext4 without journal, rsync --link-dest' },
  btrfs: { fs: 'btrfs', note: 'default: btrfs (zstd, 4 KiB nodes), snapshots of subvolumes' },
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

const argv = yargs(hideBin(process.argv))
  .scriptName('bench/traffic')
  .usage('$0 [options]\n$0 --render a.json [b.json ...]   print saved --json results again (merged)')
  .option('files', { type: 'number', default: 6000, describe: 'regular files in the generated tree' })
  .option('median-kb', { type: 'number', default: 3, describe: 'median file size in KiB, lognormal (mean about 11 KiB, like /usr/share)' })
  .option('sigma', { type: 'number', default: 1.6, describe: 'lognormal sigma' })
  .option('max-kb', { type: 'number', default: 4096, describe: 'largest file in KiB' })
  .option('seed', { type: 'number', default: 1, describe: 'tree and churn seed' })
  .option('image-size', { type: 'string', default: '2G', describe: 'vault image size for init --size' })
  .option('big-mb', { type: 'number', default: 128, describe: 'size of the sequential-write throughput file (0 skips)' })
  .option('configs', { type: 'string', default: 'ext2,ext3,ext4,btrfs', describe: `comma list of configurations; known: ${Object.keys(CONFIGS).join(', ')}` })
  .option('check', { type: 'boolean', default: true, describe: 'run the forced check (--no-check skips it)' })
  .option('second-incr', { type: 'boolean', default: true, describe: 'run the second incremental push (--no-second-incr skips it)' })
  .option('json', { type: 'boolean', default: false, describe: 'print the results as JSON instead of tables' })
  .option('keep', { type: 'boolean', default: false, describe: 'keep the work directory (for debugging)' })
  .option('render', { type: 'array', string: true, describe: 'print results saved with --json again (merged) and exit' })
  .strict()
  .help()
  .parseSync();

type Options = typeof argv;

// /usr/share has about one directory per 15 files.
const treeOptions = (o: Options): TreeOptions => ({ files: o.files, dirsPerFile: 1 / 14, seed: o.seed, medianKb: o.medianKb, sigma: o.sigma, maxKb: o.maxKb });

/** A churn measured on a 48.8k-file tree, scaled: 1% modified, 0.5% deleted, 0.5% re-timed, 0.115% new. */
const churnCounts = (n: number) => ({ modified: Math.round(n * 0.01), deleted: Math.round(n * 0.005), retimed: Math.round(n * 0.005), added: Math.max(1, Math.round(n * 0.00115)) });

function writeShims(dir: string, shims: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true });
  for (const [tool, body0] of Object.entries(shims)) {
    const real = which(tool);
    if (!real) throw new Error(`${tool} not found; run scripts/install.sh`);
    let body: string;
    if (body0 === 'LOSETUP_RA0') {
      // After `losetup --find --show FILE` the new device's readahead goes to 0.
      body = `out=$(${real} "$@") || exit $?\n[ -n "$out" ] && echo "$out"\nfor a in "$@"; do [ "$a" = --show ] && [ -b "$out" ] && blockdev --setra 0 "$out"; done\nexit 0`;
    } else if (body0.startsWith('QEMU_CACHE:')) {
      const mode = body0.slice('QEMU_CACHE:'.length);
      body = `args=()\nfor a in "$@"; do case "$a" in --cache=*) a="--cache=${mode}";; esac; args+=("$a"); done\nexec ${real} "\${args[@]}"`;
    } else {
      body = body0.replace('REAL', real).replace('MKFS_EXT3', which('mkfs.ext3') ?? 'mkfs.ext3');
    }
    writeFileSync(join(dir, tool), `#!/usr/bin/env bash\n# bench shim for ${tool}\n${body}\n`);
    chmodSync(join(dir, tool), 0o755);
  }
}

// ------------------------------------------------------------ the runs
interface Phase {
  name: string;
  upBytes: number;
  downBytes: number;
  ms: number;
}

interface RunRecord {
  ok: boolean;
  changedBytes?: number;
  upBytes: number;
  downBytes: number;
  phases: Phase[];
}

interface Row {
  config: string;
  run: string;
  ok: boolean;
  changedBytes: number;
  upBytes: number;
  downBytes: number;
  ms: number;
  relayUp: number;
  relayDown: number;
  phases: Phase[];
  wallMs?: number;
  churn?: Churn;
  fsckSummary?: string;
  syncMBps?: number;
}

interface Geometry {
  blockSize: number;
  inodeSize: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
}

interface ConfigResult {
  name: string;
  note: string;
  fs: string;
  tree: Tree;
  rows: Row[];
  fsGeometry?: Geometry;
  metadataInUse?: number;
}

interface RawSshfs {
  bytes: number;
  ms: number;
  mbps: number;
  upBytes: number;
  downBytes: number;
}

interface Goal {
  config: string;
  run: string;
  goal: string;
  value: number;
  limit: number;
  met: boolean;
}

interface Result {
  options: Options;
  configs: ConfigResult[];
  started: string;
  tree?: Tree;
  rawSshfs?: RawSshfs;
  goals?: Goal[];
  seconds?: number;
}

interface Ctx {
  work: string;
  sshd: SshdFixture;
  relay: Relay;
  workspaces: Workspace[];
}

/** A workspace whose PATH starts with the configuration's shims. */
async function sv(ws: Workspace, shimDir: string, args: string[], okCodes: number[] = []) {
  const t0 = Date.now();
  const r = await ws.sv(args, { env: { PATH: `${shimDir}:${process.env.PATH}` }, timeoutMs: 3_600_000 });
  const ms = Date.now() - t0;
  if (r.exitCode !== 0 && !okCodes.includes(r.exitCode)) throw new Error(`sshvault ${args.join(' ')} exited ${r.exitCode}\n${r.stdout}\n${r.stderr}`);
  return { ...r, ms };
}

async function lastRun(ws: Workspace, shimDir: string): Promise<RunRecord> {
  const runs = JSON.parse((await sv(ws, shimDir, ['stats', '--json'])).stdout).runs as RunRecord[];
  return runs[runs.length - 1]!;
}

/** A raw sshfs (OpenSSH, chacha20) on the same sshd via the relay: the sequential-write baseline of the throughput goal. */
async function rawSshfsWrite(ctx: Ctx, mb: number): Promise<RawSshfs> {
  const mnt = join(ctx.work, 'raw-sshfs');
  const remote = ctx.sshd.remoteDir('raw');
  mkdirSync(mnt, { recursive: true });
  const ssh = `ssh -F /dev/null -i ${ctx.sshd.userKeyPath} -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR -c chacha20-poly1305@openssh.com -p ${ctx.relay.port}`;
  await run('sshfs', ['-o', `ssh_command=${ssh}`, `root@127.0.0.1:${remote}`, mnt]);
  try {
    const up0 = ctx.relay.upBytes();
    const down0 = ctx.relay.downBytes();
    const t0 = process.hrtime.bigint();
    await run('dd', ['if=/dev/zero', `of=${mnt}/raw.bin`, 'bs=1M', `count=${mb}`, 'conv=fsync', 'status=none']);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return { bytes: mb << 20, ms: Math.round(ms), mbps: (mb << 20) / 1e6 / (ms / 1000), upBytes: ctx.relay.upBytes() - up0, downBytes: ctx.relay.downBytes() - down0 };
  } finally {
    sh('fusermount3', ['-u', mnt], { allowFail: true });
    rmSync(join(remote, 'raw.bin'), { force: true });
  }
}

function rowFrom(config: string, label: string, rec: RunRecord, relayDelta: { up: number; down: number }, extra: Partial<Row> = {}): Row {
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

async function runConfig(name: string, o: Options, ctx: Ctx): Promise<ConfigResult> {
  const cfg = CONFIGS[name];
  if (!cfg) throw new Error(`unknown configuration ${name}; known: ${Object.keys(CONFIGS).join(', ')}`);
  const ws = await workspace('bench passphrase, not secret');
  ctx.workspaces.push(ws);
  const shimDir = join(ws.dir, 'shims');
  writeShims(shimDir, cfg.shims);
  const src = join(ws.dir, 'src');
  mkdirSync(src);
  log(`${name}: generating the tree`);
  const tree = generateTree(src, treeOptions(o));
  const remote = ctx.sshd.remoteDir(name);
  const rows: Row[] = [];
  const relay = ctx.relay;
  const measured = async (label: string, args: string[], extra: Partial<Row> = {}, okCodes: number[] = [], w = ws) => {
    const up0 = relay.upBytes();
    const down0 = relay.downBytes();
    const r = await sv(w, shimDir, args, okCodes);
    const delta = { up: relay.upBytes() - up0, down: relay.downBytes() - down0 };
    const rec = await lastRun(w, shimDir);
    const row = rowFrom(name, label, rec, delta, { wallMs: r.ms, ...extra });
    rows.push(row);
    log(`${name}: ${label}: up ${mb(row.upBytes)} down ${mb(row.downBytes)} changed ${mb(row.changedBytes)} (${(r.ms / 1000).toFixed(1)} s)`);
    return { r, row };
  };
  log(`${name}: init (${cfg.note})`);
  await measured('init', [
    'init', 'bench', '--remote', `ssh://root@127.0.0.1:${relay.port}${remote}`, '--size', o.imageSize, '--fs', cfg.fs,
    '--identity', ctx.sshd.userKeyPath, '--known-hosts', join(ws.dir, 'known_hosts'), '--accept-new-host-key',
    '--passphrase-file', ws.passphraseFile, '--source', src,
  ]);
  await measured('full push', ['push']);
  const counts = churnCounts(tree.files);
  const c1 = churn(src, treeOptions(o), 1, tree, counts);
  await measured('incremental', ['push'], { churn: c1 });
  if (o.secondIncr) {
    const c2 = churn(src, treeOptions(o), 2, tree, counts);
    await measured('incremental 2', ['push'], { churn: c2 });
  }
  if (o.check) {
    // check never trusts the block cache: it reads from the remote, as on a machine that never opened the vault.
    const { r, row } = await measured('check', ['check', '--json', '--passphrase-file', ws.passphraseFile], {}, [7]);
    try {
      const out = (JSON.parse(r.stdout).fsck?.output ?? '') as string;
      row.fsckSummary = out.split('\n').find((l) => /files.*blocks/.test(l))?.trim();
    } catch {
      // A check that printed no JSON leaves the goals table without its metadata estimate; the row itself stands.
    }
  }
  if (o.bigMb > 0) {
    // A vault of its own holding only the file: the sync phase is then the sequential write, not a walk of the tree.
    const w = await workspace('bench passphrase, not secret');
    ctx.workspaces.push(w);
    const tpSrc = join(w.dir, 'src');
    mkdirSync(tpSrc);
    await sv(w, shimDir, [
      'init', 'bench-tp', '--remote', `ssh://root@127.0.0.1:${relay.port}${ctx.sshd.remoteDir(`${name}-tp`)}`, '--size', o.imageSize, '--fs', cfg.fs,
      '--identity', ctx.sshd.userKeyPath, '--known-hosts', join(ws.dir, 'known_hosts'), '--passphrase-file', w.passphraseFile, '--source', tpSrc,
    ]);
    writeFileSync(join(tpSrc, 'big.bin'), content(`${o.seed}/big`, o.bigMb << 20));
    const { row } = await measured('big file', ['push'], {}, [], w);
    const sync = row.phases.find((p) => p.name === 'sync');
    row.syncMBps = sync ? row.changedBytes / 1e6 / (sync.ms / 1000) : undefined;
  }
  return { name, note: cfg.note, fs: cfg.fs, tree, rows, fsGeometry: await geometry(ws.dir, cfg.fs, o.imageSize, shimDir) };
}

/**
 * The filesystem's geometry as the product's own filesystem (dist/, through the
 * configuration's shims) makes it on a local sparse file of the image's size.
 */
async function geometry(dir: string, fs: string, size: string, shimDir: string): Promise<Geometry | undefined> {
  // An ext geometry: btrfs has no inode tables to estimate from.
  if (fs === 'btrfs') return undefined;
  const f = join(dir, 'geometry.img');
  const savedPath = process.env.PATH;
  try {
    sh('truncate', ['-s', size, f]);
    // The built product at run time, not compiled into the bench: the bench measures what bin/sshvault runs.
    const { filesystemFor } = (await import(join(ROOT, 'dist', 'stack', 'filesystems', 'index.js'))) as { filesystemFor(fs: string): { make(device: string): Promise<void> } };
    process.env.PATH = `${shimDir}:${savedPath}`;
    await filesystemFor(fs).make(f);
    const out = sh('dumpe2fs', ['-h', f], { env: process.env }).stdout;
    const num = (k: string) => Number(new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(out)?.[1]);
    return { blockSize: num('Block size'), inodeSize: num('Inode size'), blocksPerGroup: num('Blocks per group'), inodesPerGroup: num('Inodes per group') };
  } catch (e) {
    log(`geometry: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  } finally {
    process.env.PATH = savedPath;
    rmSync(f, { force: true });
  }
}

// ---------------------------------------------------------- reporting
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const linkSeconds = (up: number, down: number, upMbit: number, downMbit: number) => (up * 8) / (upMbit * 1e6) + (down * 8) / (downMbit * 1e6);

function fmtTime(s: number): string {
  if (s < 60) return `${s.toFixed(0)} s`;
  return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

/** The first `alignLeft` columns left, the rest right, as markdown. */
function table(headers: string[], rows: (string | number)[][], alignLeft = 1): string {
  const align: Align[] = headers.map((_, i) => (i < alignLeft ? 'left' : 'right'));
  return renderTable(headers, rows, { align, markdown: true });
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(2)}x` : '-';
}

function goals(result: Result): Goal[] {
  // The traffic goals on a configuration: upload <= 1.5x changed + 64 B per tree entry;
  // download <= 0.1x changed on the second and later pushes; check download <= 2x metadata in use.
  const out: Goal[] = [];
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
function metadataInUse(c: ConfigResult, fsInfo: Geometry | undefined): number | undefined {
  const chk = c.rows.find((r) => r.run === 'check');
  const m = /(\d+)\/(\d+) files.*?(\d+)\/(\d+) blocks/.exec(chk?.fsckSummary ?? '');
  if (!m || !fsInfo) return undefined;
  const usedInodes = Number(m[1]);
  const snapshots = c.rows.filter((r) => r.run.includes('push') || r.run.startsWith('incremental')).length;
  const dirBlocks = snapshots * c.tree.dirs + 4;
  const groups = Math.ceil(Number(m[4]) / fsInfo.blocksPerGroup);
  return usedInodes * fsInfo.inodeSize + dirBlocks * fsInfo.blockSize + groups * 2 * fsInfo.blockSize + Math.ceil((groups * 64) / fsInfo.blockSize) * fsInfo.blockSize;
}

function render(result: Result): string {
  const L: string[] = [];
  const t = result.tree!;
  L.push(`Tree: ${t.files} files, ${t.dirs} dirs (${t.entries} entries), ${mb(t.bytes)}; image ${result.options.imageSize}; churn per incremental: ${JSON.stringify(result.configs[0]?.rows.find((r) => r.churn)?.churn ?? {})}`);
  L.push('');
  const rows: string[][] = [];
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
  const prow: string[][] = [];
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
      .filter((r): r is Row & { syncMBps: number } => !!r?.syncMBps)
      .map((r) => [r.config, `${raw.mbps.toFixed(1)} MB/s`, `${r.syncMBps.toFixed(1)} MB/s`, `${((100 * r.syncMBps) / raw.mbps).toFixed(0)}%`, ratio(r.upBytes, r.changedBytes)]);
    L.push(`Throughput (goal >= 70%): raw sshfs sequential write of ${result.options.bigMb} MiB (OpenSSH chacha20, same sshd and relay) vs the stack's sync phase pushing one ${result.options.bigMb} MiB file:`);
    L.push(table(['config', 'raw sshfs', 'stack sync', 'ratio', 'up/chg'], trow));
    L.push('');
  }
  L.push('Traffic goals:');
  L.push(table(['config', 'run', 'goal', 'value', 'limit', 'met'], (result.goals ?? []).map((g) => [g.config, g.run, g.goal, mb(g.value), mb(g.limit), g.met ? 'yes' : 'NO'])));
  const mism = result.configs.flatMap((c) => c.rows).filter((r) => r.relayUp !== r.upBytes || r.relayDown !== r.downBytes);
  L.push('');
  L.push(mism.length ? `Relay vs sshvault counters differ on ${mism.length} run(s): ${mism.map((r) => `${r.config}/${r.run} relay ${r.relayUp}/${r.relayDown} vs ${r.upBytes}/${r.downBytes}`).join('; ')}` : "Relay counts equal sshvault's own counters on every run.");
  return L.join('\n');
}

// ---------------------------------------------------------------- main
async function main(): Promise<void> {
  if (argv.render) {
    const parts = argv.render.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Result);
    const result: Result = { ...parts[0]!, configs: parts.flatMap((p) => p.configs) };
    for (const c of result.configs) c.metadataInUse = metadataInUse(c, c.fsGeometry);
    result.goals = goals(result);
    console.log(render(result));
    return;
  }
  const o = argv;
  if (!existsSync(join(ROOT, 'dist'))) throw new Error('dist/ missing: run bash scripts/install.sh (or npm run build)');
  const sshd = await startSshd();
  const relay = await startRelay({ host: sshd.host, port: sshd.port });
  const ctx: Ctx = { work: sshd.dir, sshd, relay, workspaces: [] };
  const cleanup = async () => {
    // recover talks to nothing remote, so it runs before the relay and sshd go.
    for (const ws of ctx.workspaces) {
      sh(join(ROOT, 'bin', 'sshvault'), ['recover'], { env: { ...process.env, ...ws.env }, allowFail: true, timeout: 120_000 });
      await forceCleanup(ws.dir);
    }
    sh('fusermount3', ['-u', join(ctx.work, 'raw-sshfs')], { allowFail: true, stdio: 'ignore' });
    await relay.close();
    if (o.keep) {
      log(`kept ${sshd.dir} and ${ctx.workspaces.map((w) => w.dir).join(' ')}`);
      return;
    }
    await sshd.stop();
    for (const ws of ctx.workspaces) await ws.dispose();
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(s, () => {
      log(`${s}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  const t0 = Date.now();
  try {
    const result: Result = { options: o, configs: [], started: new Date().toISOString() };
    if (o.bigMb > 0) {
      log('raw sshfs sequential write');
      result.rawSshfs = await rawSshfsWrite(ctx, o.bigMb);
    }
    for (const name of o.configs.split(',').map((s) => s.trim()).filter(Boolean)) {
      const c = await runConfig(name, o, ctx);
      result.tree = c.tree;
      result.configs.push(c);
    }
    for (const c of result.configs) c.metadataInUse = metadataInUse(c, c.fsGeometry);
    result.goals = goals(result);
    result.seconds = Math.round((Date.now() - t0) / 1000);
    if (o.json) console.log(JSON.stringify(result, (k, v: unknown) => (k === 'dirList' ? undefined : v), 2));
    else console.log(render(result) + `\n\nBench took ${fmtTime(result.seconds)}.`);
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => {
  console.error(`bench/traffic: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
