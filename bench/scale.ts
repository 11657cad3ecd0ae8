// bench/scale: sshvault against restic, borg and plain rsync on one large,
// home-like tree and a fixed churn. Every tool talks to the same throwaway sshd
// through the same counting relay; bytes are the relay's. See bench/README.md.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { renderTable } from '../src/ui/table.js';
import { BIN } from '../test/helpers/cli.js';
import { forceCleanup } from '../test/helpers/cleanup.js';
import { startRelay, type Relay } from '../test/helpers/relay.js';
import { startSshd, type SshdFixture } from '../test/helpers/sshd.js';
import { churn, generateTree, type Churn, type Tree, type TreeOptions } from './lib/tree.js';
import { diskUsage, log, run, RunError, sh, which, type Ran, type RunOptions } from './lib/run.js';

const METHODS = ['ext4', 'ext2', 'btrfs', 'restic', 'borg', 'rsync'] as const;
type MethodName = (typeof METHODS)[number];

const argv = yargs(hideBin(process.argv))
  .scriptName('bench/scale')
  .usage('$0 [options]: sshvault, restic, borg and rsync on one generated tree (see bench/README.md)')
  .option('files', { type: 'number', default: 10_000, describe: 'regular files in the tree (the default takes 15-20 minutes on 2 busy cores)' })
  .option('seed', { type: 'number', default: 1, describe: 'tree and churn seed' })
  .option('methods', { type: 'string', default: METHODS.join(','), describe: `comma list of rows: ${METHODS.join(', ')}` })
  .option('image-size', { type: 'string', describe: 'sshvault image size (default: 3x the tree, at least 32 KiB per file and 2G)' })
  .option('json', { type: 'boolean', default: false, describe: 'print the results as JSON' })
  .option('keep', { type: 'boolean', default: false, describe: 'keep the work directory' })
  .option('render', { type: 'string', describe: 'print the table of a saved --json result again, and run nothing' })
  .strict()
  .help()
  .parseSync();

// Home-like: mostly small files (median 2 KiB), a tail up to 4 MiB, and one file in a thousand large (1-32 MiB).
const treeOptions: TreeOptions = {
  files: argv.files,
  dirsPerFile: 1 / 14,
  seed: argv.seed,
  medianKb: 2,
  sigma: 1.6,
  maxKb: 4096,
  large: { fraction: 0.001, minKb: 1024, maxKb: 32 * 1024 },
};
const CHURN = { modified: 100, added: 20, deleted: 20, retimed: 0 };

interface Step {
  up: number;
  down: number;
  ms: number;
  peakRss?: number;
}

interface Row {
  method: MethodName;
  note: string;
  /** Why the row has no numbers, when it has none. */
  unavailable?: string;
  /** A step that failed after the method started; the rest of the row is then missing. */
  failed?: string;
  steps: Partial<Record<'init' | 'first' | 'incremental' | 'unchanged' | 'check' | 'verify', Step>>;
  remoteBytes?: number;
  localStateBytes?: number;
}

/** What one backup method does at each step; each call runs the tool once, through the relay. */
interface Method {
  note: string;
  init(): Promise<Ran>;
  push(n: number): Promise<Ran>;
  check?(): Promise<Ran>;
  verify?(): Promise<Ran>;
  remoteDir: string;
  localState?: string;
  cleanup?(): Promise<void>;
}

interface Ctx {
  work: string;
  src: string;
  sshd: SshdFixture;
  relay: Relay;
  /** The ssh command line every OpenSSH-based tool uses: through the relay, the fixture's key, no config of the machine's. */
  ssh: string[];
}

function imageSize(tree: Tree): string {
  const gib = Math.max(2, Math.ceil((3 * tree.bytes) / 2 ** 30), Math.ceil((tree.files * 32 * 1024) / 2 ** 30));
  return argv.imageSize ?? `${gib}G`;
}

function sshvaultMethod(ctx: Ctx, fs: 'ext4' | 'ext2' | 'btrfs', tree: Tree): Method {
  const dir = join(ctx.work, `sv-${fs}`);
  mkdirSync(dir);
  const pass = join(dir, 'passphrase');
  writeFileSync(pass, 'bench passphrase, not secret', { mode: 0o600 });
  const env = {
    ...process.env,
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_STATE_HOME: join(dir, 'state'),
    XDG_CACHE_HOME: join(dir, 'cache'),
    // Only the time of a LUKS open depends on it, not its bytes.
    SSHVAULT_TEST_PBKDF_ITERATIONS: '1000',
  };
  const remoteDir = ctx.sshd.remoteDir(`sv-${fs}`);
  const sv = (args: string[], o: RunOptions = {}) => run(BIN, args, { env, okCodes: [8], timeoutMs: 3_600_000, ...o });
  return {
    note: `sshvault --fs ${fs}`,
    remoteDir,
    localState: dir,
    init: () =>
      sv([
        'init', 'bench', '--remote', `ssh://root@127.0.0.1:${ctx.relay.port}${remoteDir}`, '--size', imageSize(tree), '--fs', fs,
        '--identity', ctx.sshd.userKeyPath, '--known-hosts', ctx.sshd.knownHostsPath, '--passphrase-file', pass, '--source', ctx.src,
      ]),
    push: () => sv(['push', 'bench'], { rssFile: join(dir, 'rss') }),
    check: () => sv(['check', 'bench', '--passphrase-file', pass]),
    verify: () => sv(['check', 'bench', '--verify-data', 'latest', '--passphrase-file', pass]),
    async cleanup() {
      sh(BIN, ['recover'], { env, allowFail: true, timeout: 120_000 });
      await forceCleanup(dir);
    },
  };
}

function resticMethod(ctx: Ctx): Method {
  const dir = join(ctx.work, 'restic');
  mkdirSync(dir);
  writeFileSync(join(dir, 'password'), 'bench password, not secret', { mode: 0o600 });
  const remoteDir = ctx.sshd.remoteDir('restic');
  const env = { ...process.env, RESTIC_PASSWORD_FILE: join(dir, 'password'), RESTIC_CACHE_DIR: join(dir, 'cache') };
  const restic = (args: string[], o: RunOptions = {}) =>
    run('restic', ['-r', `sftp:root@127.0.0.1:${remoteDir}`, '-o', `sftp.command=${[...ctx.ssh, 'root@127.0.0.1', '-s', 'sftp'].join(' ')}`, ...args], { env, timeoutMs: 3_600_000, ...o });
  return {
    note: `restic ${version('restic', ['version'])}, sftp backend`,
    remoteDir,
    localState: join(dir, 'cache'),
    init: () => restic(['init']),
    push: () => restic(['backup', '--host', 'bench', ctx.src], { rssFile: join(dir, 'rss') }),
    // check downloads the metadata into a fresh cache of its own each time (restic's default).
    check: () => restic(['check']),
    verify: () => restic(['check', '--read-data']),
  };
}

function borgMethod(ctx: Ctx): Method {
  const dir = join(ctx.work, 'borg');
  mkdirSync(dir);
  const remoteDir = ctx.sshd.remoteDir('borg');
  const repo = `ssh://root@127.0.0.1:${ctx.relay.port}${remoteDir}`;
  const env = {
    ...process.env,
    BORG_PASSPHRASE: 'bench passphrase, not secret',
    BORG_BASE_DIR: join(dir, 'base'),
    BORG_RSH: ctx.ssh.filter((a, i, all) => a !== '-p' && all[i - 1] !== '-p').join(' '),
  };
  const borg = (args: string[], o: RunOptions = {}) => run('borg', args, { env, timeoutMs: 3_600_000, ...o });
  return {
    note: `borg ${version('borg', ['--version'])}, over ssh (borg serve), repokey-blake2, lz4`,
    remoteDir,
    localState: join(dir, 'base'),
    init: () => borg(['init', '--encryption=repokey-blake2', repo]),
    push: (n) => borg(['create', `${repo}::s${n}`, '.'], { cwd: ctx.src, rssFile: join(dir, 'rss') }),
    // The repository part of a check runs inside borg serve on the host; only the archives' metadata comes down.
    check: () => borg(['check', repo]),
    verify: () => borg(['check', '--verify-data', repo]),
  };
}

function rsyncMethod(ctx: Ctx): Method {
  const dir = join(ctx.work, 'rsync');
  mkdirSync(dir);
  const remoteDir = ctx.sshd.remoteDir('rsync');
  return {
    note: 'plaintext rsync -aHAX --link-dest over ssh: the floor',
    remoteDir,
    init: () => run('true', []),
    push: (n) =>
      run(
        'rsync',
        [
          '-aHAX', '--numeric-ids', '--delete', ...(n > 1 ? [`--link-dest=${remoteDir}/s${n - 1}`] : []),
          '-e', ctx.ssh.join(' '), `${ctx.src}/`, `root@127.0.0.1:${remoteDir}/s${n}/`,
        ],
        { rssFile: join(dir, 'rss'), timeoutMs: 3_600_000 },
      ),
  };
}

function version(tool: string, args: string[]): string {
  return /\d+\.\d+(\.\d+)?/.exec(sh(tool, args, { allowFail: true }).stdout)?.[0] ?? '?';
}

/** restic and borg come from the distribution (Debian 12: restic 0.14, borg 1.2) when the machine lacks them. */
function ensureTools(names: MethodName[]): void {
  const missing = [
    ...(names.includes('restic') && !which('restic') ? ['restic'] : []),
    ...(names.includes('borg') && !which('borg') ? ['borgbackup'] : []),
  ];
  if (!missing.length) return;
  log(`installing ${missing.join(' ')}`);
  sh('apt-get', ['install', '-y', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

function makeMethod(name: MethodName, ctx: Ctx, tree: Tree): Method {
  switch (name) {
    case 'ext4':
    case 'ext2':
    case 'btrfs':
      return sshvaultMethod(ctx, name, tree);
    case 'restic':
      return resticMethod(ctx);
    case 'borg':
      return borgMethod(ctx);
    case 'rsync':
      return rsyncMethod(ctx);
  }
}

/** The tool's own one-line complaint: its first line on stderr that is not a pointer to --help. */
function firstLine(e: unknown): string {
  if (!(e instanceof RunError)) return e instanceof Error ? e.message.split('\n')[0]! : String(e);
  const lines = e.ran.stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/--help/.test(l));
  return (lines.join(' ') || `${e.command.split(' ')[0]} exited ${e.ran.status}`).slice(0, 200);
}

async function main(): Promise<void> {
  if (argv.render) {
    console.log(render(JSON.parse(readFileSync(argv.render, 'utf8')) as Parameters<typeof render>[0]));
    return;
  }
  const names = argv.methods.split(',').map((s) => s.trim()).filter(Boolean) as MethodName[];
  for (const n of names) if (!METHODS.includes(n)) throw new Error(`unknown method ${n}; known: ${METHODS.join(', ')}`);
  ensureTools(names);
  const work = mkdtempSync(join(tmpdir(), 'sshvault-scale-'));
  const t0 = Date.now();
  let sshd: SshdFixture | undefined;
  let relay: Relay | undefined;
  const methods = new Map<MethodName, Method>();
  const cleanup = async () => {
    for (const m of methods.values()) await m.cleanup?.();
    await relay?.close();
    await sshd?.stop();
    if (argv.keep) log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(s, () => {
      log(`${s}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    const src = join(work, 'src');
    mkdirSync(src);
    log(`generating ${argv.files} files`);
    const tree = generateTree(src, treeOptions);
    log(`tree: ${tree.files} files, ${tree.dirs} dirs, ${mb(tree.bytes)}`);
    sshd = await startSshd();
    relay = await startRelay({ host: sshd.host, port: sshd.port });
    const r = relay;
    const ssh = ['ssh', '-F', '/dev/null', '-p', String(r.port), '-i', sshd.userKeyPath, '-o', 'UserKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes'];
    const ctx: Ctx = { work, src, sshd, relay: r, ssh };
    const rows = new Map<MethodName, Row>();
    for (const n of names) {
      const m = makeMethod(n, ctx, tree);
      methods.set(n, m);
      rows.set(n, { method: n, note: m.note, steps: {} });
    }
    const step = async (n: MethodName, key: keyof Row['steps'], fn: (() => Promise<Ran>) | undefined) => {
      const row = rows.get(n)!;
      if (!fn || row.unavailable || row.failed) return;
      const up0 = r.upBytes();
      const down0 = r.downBytes();
      try {
        const ran = await fn();
        row.steps[key] = { up: r.upBytes() - up0, down: r.downBytes() - down0, ms: ran.ms, peakRss: ran.peakRss };
        log(`${n}: ${key}: up ${mb(row.steps[key]!.up)} down ${mb(row.steps[key]!.down)} (${(ran.ms / 1000).toFixed(1)} s)`);
      } catch (e) {
        // A method that cannot even start (an --fs this build lacks) is a row "not available", not a failed bench.
        if (key === 'init') row.unavailable = firstLine(e);
        else row.failed = `${key}: ${firstLine(e)}`;
        log(`${n}: ${key} failed: ${firstLine(e)}`);
      }
    };
    for (const n of names) {
      await step(n, 'init', methods.get(n)!.init);
      await step(n, 'first', () => methods.get(n)!.push(1));
    }
    log('churn');
    // Uniform, as a day of small edits: a change small next to the tree, so what grows with the tree shows.
    const c = churn(src, treeOptions, 1, tree, CHURN, true);
    for (const n of names) await step(n, 'incremental', () => methods.get(n)!.push(2));
    for (const n of names) await step(n, 'unchanged', () => methods.get(n)!.push(3));
    for (const n of names) {
      const m = methods.get(n)!;
      await step(n, 'check', m.check && (() => m.check!()));
      await step(n, 'verify', m.verify && (() => m.verify!()));
      const row = rows.get(n)!;
      if (!row.unavailable) {
        row.remoteBytes = diskUsage(m.remoteDir);
        if (m.localState) row.localStateBytes = diskUsage(m.localState);
      }
    }
    const result = {
      started: new Date(t0).toISOString(),
      seconds: Math.round((Date.now() - t0) / 1000),
      options: { ...treeOptions, imageSize: imageSize(tree) },
      tree: { files: tree.files, dirs: tree.dirs, entries: tree.entries, bytes: tree.bytes },
      churn: c,
      rows: [...rows.values()],
    };
    if (argv.json) console.log(JSON.stringify(result, null, 2));
    else console.log(render(result));
  } finally {
    await cleanup();
  }
}

const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function render(result: { tree: { files: number; dirs: number; bytes: number }; churn: Churn; rows: Row[]; seconds: number; options: { imageSize: string } }): string {
  const t = result.tree;
  const c = result.churn;
  const L = [
    `Tree: ${t.files} files, ${t.dirs} dirs, ${mb(t.bytes)}; churn: ${c.modified} rewritten, ${c.added} added, ${c.deleted} deleted (${mb(c.changedBytes)} changed); sshvault image ${result.options.imageSize}`,
    '',
  ];
  const cell = (s: Step | undefined, f: (s: Step) => string) => (s ? f(s) : '-');
  const rows = result.rows.map((r) => {
    if (r.unavailable) return [r.method, 'not available'];
    const s = r.steps;
    return [
      r.method,
      cell(s.init, (x) => mb(x.up)),
      cell(s.first, (x) => mb(x.up)),
      cell(s.first, (x) => secs(x.ms)),
      cell(s.incremental, (x) => mb(x.up)),
      cell(s.incremental, (x) => mb(x.down)),
      cell(s.unchanged, (x) => mb(x.up)),
      cell(s.check, (x) => mb(x.down)),
      cell(s.verify, (x) => mb(x.down)),
      cell(s.verify, (x) => secs(x.ms)),
      r.remoteBytes !== undefined ? mb(r.remoteBytes) : '-',
      mb(r.localStateBytes ?? 0),
      cell(s.first, (x) => (x.peakRss ? mb(x.peakRss) : '-')),
    ];
  });
  const headers = ['method', 'init up', 'first push up', 'first push', 'incr up', 'incr down', 'unchanged up', 'check down', 'verify down', 'verify', 'remote', 'local state', 'push peak RSS'];
  L.push(renderTable(headers, rows, { markdown: true, align: headers.map((_, i) => (i === 0 ? 'left' : 'right')) }));
  L.push('');
  for (const r of result.rows) {
    const status = r.unavailable ? `; not available: ${r.unavailable}` : r.failed ? `; FAILED at ${r.failed}` : '';
    L.push(`- ${r.method}: ${r.note}${status}`);
  }
  L.push('', `Seconds are wall time on a shared 2-core machine (noisy). Bench took ${Math.round(result.seconds / 60)} min.`);
  return L.join('\n');
}

main().catch((e: unknown) => {
  console.error(`bench/scale: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
