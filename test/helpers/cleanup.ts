import { existsSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { cmdline, processTable, sleep, terminate } from './proc.js';

/**
 * What a sshvault run may leave behind, found without sshvault's code, and a
 * teardown that works even when the run's SSH link is dead: tests assert
 * `leftovers()` is empty after each scenario and call `forceCleanup()` in
 * afterAll, so a failing test never leaves a mount for the next one.
 *
 * With a prefix (a directory, such as a test's workspace), only things at or
 * below it count: mounts by their mountpoint, loop devices by backing file or
 * mountpoint, dm-crypt mappings by the loop device below them, processes by
 * their command line containing the prefix, key files by their path. Without
 * one, everything on the machine counts, other users' sshfs included.
 */

const FUSECTL = '/sys/fs/fuse/connections';
const DAEMONS = ['sshfs', 'qemu-nbd', 'nbdfuse', 'rsync'];

interface Mount {
  target: string;
  type: string;
  source: string;
  /** The FUSE connection's id under FUSECTL. */
  connection: number;
}

interface Loop {
  name: string;
  backFile: string;
}

interface Mapping {
  name: string;
  /** The devices below it, as /dev/<name>. */
  deps: string[];
}

interface Daemon {
  pid: number;
  comm: string;
  argv: string[];
}

interface Scene {
  /** Filesystems on loop devices or on dm-crypt mappings. */
  loopMounts: Mount[];
  mappings: Mapping[];
  loops: Loop[];
  fuseMounts: Mount[];
  daemons: Daemon[];
  keyFiles: string[];
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** /proc/self/mountinfo, not a stat of each mountpoint: a stat on a dead FUSE mount hangs. */
async function mounts(): Promise<Mount[]> {
  const out: Mount[] = [];
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    if (!line) continue;
    const [left, right = ''] = line.split(' - ');
    const l = left.split(' ');
    const r = right.split(' ');
    const [major, minor] = l[2].split(':').map(Number);
    // fusectl names a connection by the superblock's kernel dev_t: major << 20 | minor.
    out.push({ target: unescapeMountinfo(l[4]), type: r[0], source: unescapeMountinfo(r[1] ?? ''), connection: major * 2 ** 20 + minor });
  }
  return out;
}

async function loops(): Promise<Loop[]> {
  const r = await execa('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE']);
  if (!r.stdout.trim()) return [];
  const devices = (JSON.parse(r.stdout) as { loopdevices: { name: string; 'back-file': string | null }[] }).loopdevices;
  // A backing file removed while attached shows as "<path> (deleted)".
  return devices.map((d) => ({ name: d.name, backFile: (d['back-file'] ?? '').replace(/ \(deleted\)$/, '') }));
}

/** sshvault's dm-crypt mappings (named sshvault-<vault>); none where device-mapper does not answer. */
async function mappings(): Promise<Mapping[]> {
  const r = await execa('dmsetup', ['ls', '--target', 'crypt'], { reject: false });
  if (r.exitCode !== 0) return [];
  const names = r.stdout.split('\n').map((l) => l.split(/\s+/)[0]).filter((n) => n.startsWith('sshvault-'));
  const out: Mapping[] = [];
  for (const name of names) {
    const deps = await execa('dmsetup', ['deps', '-o', 'devname', name], { reject: false });
    out.push({ name, deps: [...deps.stdout.matchAll(/\(([^)]+)\)/g)].map((m) => `/dev/${m[1]}`) });
  }
  return out;
}

/**
 * Transient key files (`<state>/run/key-*`) below the prefix. Mountpoints are
 * not entered: a stat or readdir on a dead FUSE mount hangs.
 */
async function keyFiles(prefix: string | undefined, mounted: Set<string>): Promise<string[]> {
  if (prefix === undefined) return [];
  const out: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const path = join(dir, e.name);
      if (mounted.has(path)) continue;
      if (e.isDirectory() && depth < 8) await walk(path, depth + 1);
      else if (e.isFile() && /^key-/.test(e.name) && dir.endsWith('/run')) out.push(path);
    }
  };
  if (!mounted.has(prefix)) await walk(prefix.replace(/\/+$/, ''), 0);
  return out;
}

function daemons(): Daemon[] {
  return processTable()
    // A zombie holds nothing, and this machine's init may take its time to reap orphans.
    .filter((p) => DAEMONS.includes(p.comm) && p.state !== 'Z')
    .map((p) => ({ pid: p.pid, comm: p.comm, argv: cmdline(p.pid) }));
}

function within(prefix: string | undefined, path: string): boolean {
  if (prefix === undefined) return true;
  const dir = prefix.replace(/\/+$/, '');
  return path === dir || path.startsWith(`${dir}/`);
}

async function look(prefix?: string): Promise<Scene> {
  const all = await mounts();
  const allLoops = await loops();
  const backing = (device: string) => allLoops.find((l) => l.name === device)?.backFile ?? '';
  const ours = (await mappings()).filter((m) => prefix === undefined || m.deps.some((d) => within(prefix, backing(d))));
  const loopMounts = all.filter((m) => {
    if (ours.some((x) => m.source === `/dev/mapper/${x.name}`)) return true;
    if (!m.source.startsWith('/dev/loop')) return false;
    return within(prefix, m.target) || within(prefix, backing(m.source));
  });
  return {
    loopMounts,
    mappings: ours,
    loops: allLoops.filter(
      (l) => within(prefix, l.backFile) || loopMounts.some((m) => m.source === l.name) || ours.some((x) => x.deps.includes(l.name)),
    ),
    // fusectl's own type starts with "fuse" too; it is the abort switch, not a leftover.
    fuseMounts: all.filter((m) => /^fuse(\.|blk$|$)/.test(m.type) && within(prefix, m.target)),
    daemons: daemons().filter((d) => prefix === undefined || d.argv.join(' ').includes(prefix)),
    keyFiles: await keyFiles(prefix, new Set(all.map((m) => m.target))),
  };
}

function describe(s: Scene): string[] {
  return [
    ...s.loopMounts.map((m) => `loop mount: ${m.source} on ${m.target} (${m.type})`),
    ...s.mappings.map((m) => `dm-crypt mapping: /dev/mapper/${m.name} on ${m.deps.join(', ') || '(nothing)'}`),
    ...s.loops.map((l) => `loop device: ${l.name} backed by ${l.backFile || '(nothing)'}`),
    ...s.fuseMounts.map((m) => `fuse mount: ${m.target} (${m.type}, from ${m.source})`),
    ...s.daemons.map((d) => `process: ${d.comm} (pid ${d.pid}): ${d.argv.join(' ')}`),
    ...s.keyFiles.map((f) => `key file: ${f}`),
  ];
}

export async function leftovers(prefix?: string): Promise<string[]> {
  return describe(await look(prefix));
}

const STEP_MS = 5000;

/** A timer that does not keep the process alive once the race it is in is decided. */
function deadline(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/**
 * Runs the teardown steps. A step can block in state D (a lazy umount syncing
 * through a dead sshfs, or losetup waiting on it) and no signal frees it until
 * a FUSE connection below is aborted, so no step is waited for longer than
 * STEP_MS: the later steps abort what it waits on, and finish() collects it.
 * Failures are expected (a mount already gone); the final look reports what
 * is left.
 */
class Teardown {
  private readonly pending: Promise<unknown>[] = [];

  async run(file: string, args: string[]): Promise<void> {
    const p = execa(file, args, { reject: false, stdin: 'ignore' });
    if (!(await Promise.race([p.then(() => true), deadline(STEP_MS).then(() => false)]))) this.pending.push(p);
  }

  /**
   * Detaches a FUSE mount; if its connection outlives the detach (the file
   * still open through it, or a daemon that no longer answers), aborts it, so
   * that requests in flight fail and processes blocked on it can die.
   */
  async dropFuse(m: Mount): Promise<void> {
    await this.run('fusermount3', ['-u', '-z', m.target]);
    if ((await mounts()).some((x) => x.target === m.target && x.connection === m.connection)) await this.run('umount', ['-l', m.target]);
    const until = Date.now() + 2000;
    while (existsSync(`${FUSECTL}/${m.connection}`) && Date.now() < until) await sleep(50);
    await abort(m.connection);
  }

  /** Everything below is aborted by now, so what blocked can finish. */
  async finish(stuck: number[]): Promise<void> {
    await Promise.race([Promise.all(this.pending), deadline(30_000)]);
    await terminate(stuck, 1000);
  }
}

async function abort(connection: number): Promise<void> {
  if (existsSync(`${FUSECTL}/${connection}`)) await writeFile(`${FUSECTL}/${connection}/abort`, '1').catch(() => undefined);
}

/** Mounts fusectl if it is not there; true if it mounted it, so that the caller takes it down again. */
async function ensureFusectl(): Promise<boolean> {
  if ((await mounts()).some((m) => m.target === FUSECTL)) return false;
  return (await execa('mount', ['-t', 'fusectl', 'fusectl', FUSECTL], { reject: false })).exitCode === 0;
}

/**
 * Tears down, top of the stack first: rsync, filesystems on loop devices and
 * dm-crypt mappings, the mappings, loop devices, nbdfuse's plaintext mount,
 * qemu-nbd, the sshfs mount, the FUSE daemons, and key files. Returns what is
 * still there afterwards (ideally nothing).
 */
export async function forceCleanup(prefix?: string): Promise<string[]> {
  const scene = await look(prefix);
  const mountedFusectl = scene.fuseMounts.length ? await ensureFusectl() : false;
  const deepestFirst = (x: Mount, y: Mount) => y.target.length - x.target.length;
  const sshfs = (m: Mount) => m.type === 'fuse.sshfs';
  const t = new Teardown();

  // rsync holds files open on the filesystem about to be unmounted.
  const stuck = await terminate(scene.daemons.filter((d) => d.comm === 'rsync').map((d) => d.pid), 3000);
  for (const m of [...scene.loopMounts].sort(deepestFirst)) await t.run('umount', ['-l', m.target]);
  for (const m of scene.mappings) await t.run('dmsetup', ['remove', '--force', '--retry', m.name]);
  for (const l of scene.loops) await t.run('losetup', ['-d', l.name]);
  for (const m of scene.fuseMounts.filter((x) => !sshfs(x)).sort(deepestFirst)) await t.dropFuse(m);
  // A qemu-nbd blocked reading through a dead sshfs survives SIGKILL until the sshfs connection is aborted below.
  stuck.push(...(await terminate(scene.daemons.filter((d) => d.comm === 'qemu-nbd').map((d) => d.pid), 3000)));
  for (const m of scene.fuseMounts.filter(sshfs).sort(deepestFirst)) await t.dropFuse(m);
  stuck.push(...(await terminate(scene.daemons.filter((d) => d.comm !== 'qemu-nbd' && d.comm !== 'rsync').map((d) => d.pid), 3000)));
  await t.finish(stuck);
  for (const f of scene.keyFiles) await rm(f, { force: true });
  if (mountedFusectl) await execa('umount', [FUSECTL], { reject: false });
  return leftovers(prefix);
}
