import { readFileSync } from 'node:fs';

/**
 * Facts about processes of this machine's current boot, read from /proc.
 * A pid alone names a process only while it lives: with its start time it
 * names one process for the whole boot, so a reused pid is told apart.
 */

/** The fields after `pid (comm)`: comm may contain spaces and parentheses, so split after the last `)`. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** A zombie counts as dead: a SIGKILLed run stays one until its parent (or init) reaps it. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const fields = statFields(pid);
  return fields !== undefined && fields[0] !== 'Z';
}

/** Field 22 of /proc/<pid>/stat: clock ticks from boot to the process's start; undefined once it is gone. */
export function pidStart(pid: number): number | undefined {
  const fields = statFields(pid);
  // statFields starts at field 3 (state).
  const start = fields ? Number(fields[22 - 3]) : NaN;
  return Number.isFinite(start) ? start : undefined;
}

/** How lock code sees processes; tests substitute their own. */
export interface ProcessFacts {
  alive(pid: number): boolean;
  start(pid: number): number | undefined;
}

export const localProcesses: ProcessFacts = { alive: pidAlive, start: pidStart };
