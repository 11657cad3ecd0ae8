import { readFile, rename, writeFile } from 'node:fs/promises';

/**
 * The run ids under which this state directory takes remote locks, recorded
 * before a lock is taken and forgotten once it is released. The host cannot
 * write here, so a remote lock carrying one of these ids is provably this
 * machine's; and since only one run of a vault runs here at a time (the
 * local run lock), it is a leftover of a run that is over, even one from
 * before a reboot, when its process can no longer be looked up.
 */
async function load(file: string): Promise<string[]> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

async function save(file: string, ids: string[]): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, JSON.stringify(ids) + '\n', { mode: 0o600 });
  await rename(tmp, file);
}

export async function ownLockRuns(file: string): Promise<Set<string>> {
  return new Set(await load(file));
}

export async function recordLockRun(file: string, runId: string): Promise<void> {
  const ids = await load(file);
  if (!ids.includes(runId)) await save(file, [...ids, runId]);
}

export async function forgetLockRun(file: string, runId: string): Promise<void> {
  const ids = await load(file);
  if (ids.includes(runId)) await save(file, ids.filter((x) => x !== runId));
}
