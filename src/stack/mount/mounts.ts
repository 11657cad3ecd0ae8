import { readFile, readdir, writeFile } from 'node:fs/promises';
import { run } from '../../exec.js';

/**
 * What the kernel says is mounted. Read from /proc/self/mountinfo rather than
 * by stat-ing mountpoints: a stat on a dead FUSE mount can hang.
 */
export interface MountEntry {
  device: string;
  target: string;
  type: string;
  source: string;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const l = left.split(' ');
    const r = (right ?? '').split(' ');
    out.push({ device: l[2], target: unescape(l[4]), type: r[0], source: unescape(r[1] ?? '') });
  }
  return out;
}

export async function mounts(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

async function mountAt(target: string): Promise<MountEntry | undefined> {
  return (await mounts()).filter((m) => m.target === target).pop();
}

export async function isMounted(target: string): Promise<boolean> {
  return (await mountAt(target)) !== undefined;
}

const FUSECTL = '/sys/fs/fuse/connections';

/**
 * Last resort for a hung FUSE mount (docs/design.md, "Failure model"): writers blocked on a
 * dead sshfs cannot be killed until the FUSE connection is aborted.
 */
export async function abortFuse(target: string): Promise<boolean> {
  const m = await mountAt(target);
  if (!m || !m.type.startsWith('fuse')) return false;
  const minor = m.device.split(':')[1];
  // fusectl is not mounted everywhere; without it there is no abort file to write. What we mount we take down again.
  const mountedHere = !(await isMounted(FUSECTL));
  try {
    if (mountedHere) await run('mount', ['-t', 'fusectl', 'fusectl', FUSECTL]);
    await writeFile(`${FUSECTL}/${minor}/abort`, '1');
    return true;
  } catch {
    return false;
  } finally {
    if (mountedHere && (await isMounted(FUSECTL))) await run('umount', [FUSECTL]).catch(() => {});
  }
}

export interface ProcessInfo {
  pid: number;
  argv: string[];
}

/** Processes whose argv matches, found from /proc so leftovers of a killed run can be recognised. */
export async function findProcesses(match: (argv: string[]) => boolean): Promise<ProcessInfo[]> {
  const out: ProcessInfo[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      if (argv.length && match(argv)) out.push({ pid: Number(name), argv });
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export async function waitUntil(cond: () => Promise<boolean> | boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Ends a process: SIGTERM, then SIGKILL if it does not go within the grace period. */
export async function stopProcess(pid: number, graceMs = 10_000): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitUntil(() => !alive(), graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitUntil(() => !alive(), 5000);
}
