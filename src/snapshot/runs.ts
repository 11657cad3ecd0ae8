import { appendFile, readFile } from 'node:fs/promises';
import type { PhaseRecord } from '../remote/traffic.js';
import type { RsyncStats } from './rsync-stats.js';

/** One line per run in runs.jsonl, locally and in the image (docs/design.md, "On-image layout"). */
export interface RunRecord {
  id: string;
  command: string;
  vault: string;
  snapshot?: string;
  started: string;
  finished: string;
  ok: boolean;
  exitCode: number;
  error?: string;
  engine?: string;
  fs?: string;
  /** rsync's "Total transferred file size": what really changed. */
  changedBytes: number;
  upBytes: number;
  downBytes: number;
  phases: PhaseRecord[];
  rsync?: RsyncStats;
  /** Userspace engine: bytes of the image the block cache answered, and bytes fetched from the remote. */
  cache?: { hitBytes: number; missBytes: number };
  /** Free space on the remote's filesystem when the run connected, where the server says (statvfs@openssh.com). */
  remoteFreeBytes?: number;
}

export async function appendRun(file: string, record: RunRecord): Promise<void> {
  await appendFile(file, JSON.stringify(record) + '\n', { mode: 0o600 });
}

export function parseRuns(text: string): RunRecord[] {
  const out: RunRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as RunRecord);
    } catch {
      // A line cut short by a crash must not hide the history before it.
    }
  }
  return out;
}

export async function readRuns(file: string): Promise<RunRecord[]> {
  return parseRuns(await readFile(file, 'utf8').catch(() => ''));
}
