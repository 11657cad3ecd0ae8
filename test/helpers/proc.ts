import { readdirSync, readFileSync } from 'node:fs';

/**
 * Process-table helpers for the fixtures, read straight from /proc so they
 * work the same whatever the processes are (sshd children that called
 * setsid(), leftovers of a killed run).
 */

export interface ProcEntry {
  pid: number;
  ppid: number;
  /** The kernel's process name (what pgrep -x matches), at most 15 bytes. */
  comm: string;
  /** R, S, D (uninterruptible: maybe blocked on a dead FUSE mount), Z (zombie), ... */
  state: string;
}

/**
 * Synchronous so that a process 'exit' hook can use it too. Reads only
 * /proc/<pid>/stat: cmdline needs the target's memory map, and reading it can
 * hang on a process stuck in a page fault on a dead FUSE mount.
 */
export function processTable(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      // comm (field 2) may hold spaces and parentheses; the fields after its last ')' are fixed.
      const close = stat.lastIndexOf(')');
      const [state, ppid] = stat.slice(close + 2).split(' ');
      out.push({ pid: Number(name), ppid: Number(ppid), comm: stat.slice(stat.indexOf('(') + 1, close), state });
    } catch {
      // It ended between readdir and read.
    }
  }
  return out;
}

export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** pid and everything below it, parents before children. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of processTable()) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const out: number[] = [];
  const visit = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) visit(c);
  };
  visit(pid);
  return out;
}

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // A zombie still answers signal 0, but it has nothing left to tear down.
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone.
    }
  }
}

/**
 * SIGTERM, then SIGKILL whatever is still there after graceMs. Returns the
 * pids that outlived the SIGKILL too: a process stuck in state D on a dead
 * FUSE mount does not die until that mount's connection is aborted.
 */
export async function terminate(pids: number[], graceMs = 5000): Promise<number[]> {
  signal(pids, 'SIGTERM');
  await waitGone(pids, graceMs);
  signal(pids.filter(isAlive), 'SIGKILL');
  await waitGone(pids, 2000);
  return pids.filter(isAlive);
}

async function waitGone(pids: number[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(50);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until an rsync of the given state directory runs: the push is in its sync phase. */
export async function waitForSync(stateDir: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (const p of processTable()) {
      const argv = cmdline(p.pid);
      if (argv[0] === 'rsync' && argv.join('\0').includes(stateDir)) return;
    }
    await sleep(20);
  }
  throw new Error('the push never reached its sync phase');
}
