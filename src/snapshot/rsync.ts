import { ExitCode, SshvaultError } from '../errors.js';
import { lastLine, run, spawn } from '../exec.js';
import { rsyncWarnings } from './rsync-warnings.js';
import { parseProgress2, parseRsyncStats, type RsyncStats } from './rsync-stats.js';

export interface SyncProgress {
  bytes: number;
  percent: number;
  rate: string;
  files?: number;
}

export interface SyncOptions {
  sources: string[];
  dest: string;
  /** The filesystem's way of making a snapshot from the previous one: `--link-dest`s on ext. */
  snapshotArgs: string[];
  excludes: string[];
  /** Paths never to back up, however the sources are chosen: sshvault's own mounts live there. */
  alwaysExclude: string[];
  signal: AbortSignal;
  onProgress?: (p: SyncProgress) => void;
}

export interface SyncResult {
  stats: RsyncStats;
  /** Files rsync could not read or that vanished: the snapshot is complete without them. */
  warnings: string[];
}

/** rsync stopped: why, in a form the caller can turn into the right exit code. */
export class RsyncFailure extends SshvaultError {
  constructor(
    message: string,
    readonly rsyncExitCode: number | undefined,
    readonly noSpace: boolean,
  ) {
    super(message, ExitCode.unexpected);
  }
}

/** rsync's "some files vanished" and "some files could not be transferred": the rest is a good snapshot. */
const PARTIAL_CODES = new Set([23, 24]);

function rsyncArgs(o: Omit<SyncOptions, 'signal' | 'onProgress'>): string[] {
  return [
    // -aHAX --numeric-ids: everything a restore needs, owners as numbers (the restoring machine may map names differently).
    '-aHAX',
    '--numeric-ids',
    // Whole files: the delta algorithm would read the old copy back over the wire to save upload it cannot save here.
    '--whole-file',
    // Absolute source paths are kept under the snapshot, so several sources never collide.
    '--relative',
    '--stats',
    '--info=progress2',
    ...o.snapshotArgs,
    ...o.alwaysExclude.map((p) => `--exclude=${p}`),
    ...o.excludes.map((p) => `--exclude=${p}`),
    ...o.sources,
    `${o.dest}/`,
  ];
}

/** How one rsync ended: its output is what the caller reads the stats and the warnings from. */
export interface RsyncRun {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

/**
 * The one place rsync runs: progress lines go to `onProgress` as they come,
 * and an abort stops rsync and surfaces as the abort's reason.
 */
export async function runRsync(args: string[], signal: AbortSignal, onProgress?: (p: SyncProgress) => void): Promise<RsyncRun> {
  const child = spawn('rsync', args, { stdout: 'pipe' });
  const onAbort = () => child.process.kill('SIGTERM');
  signal.addEventListener('abort', onAbort, { once: true });
  let out = '';
  let pending = '';
  child.process.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    out += text;
    pending += text;
    const parts = pending.split(/[\r\n]/);
    pending = parts.pop() ?? '';
    for (const line of parts) {
      const p = parseProgress2(line);
      if (p) onProgress?.({ bytes: p.bytes, percent: p.percent, rate: p.rate, files: p.xfr });
    }
  });
  const { exitCode, signal: killedBy } = await child.exited;
  signal.removeEventListener('abort', onAbort);
  if (signal.aborted) throw signal.reason;
  return { exitCode, signal: killedBy, stdout: out, stderr: child.stderr() };
}

export async function syncSnapshot(o: SyncOptions): Promise<SyncResult> {
  const { exitCode, signal, stdout, stderr } = await runRsync(rsyncArgs(o), o.signal, o.onProgress);
  const noSpace = /No space left on device/.test(stderr);
  if (exitCode === 0 || (exitCode !== undefined && PARTIAL_CODES.has(exitCode) && !noSpace)) {
    return { stats: parseRsyncStats(stdout), warnings: rsyncWarnings(stderr) };
  }
  const why = signal ? `killed by ${signal}` : `exit ${exitCode}`;
  throw new RsyncFailure(`rsync failed (${why}): ${lastLine(stderr)}`, exitCode, noSpace);
}

/** rsync -aHAX --numeric-ids out of a read-only snapshot: everything push kept, owners as the numbers they were. */
export function restoreArgs(from: string, to: string): string[] {
  return ['-aHAX', '--numeric-ids', '--stats', '--info=progress2', from, to];
}

/** What rsync would still copy (a dry run): how a full vault says how much it lacks. */
export async function remainingBytes(o: SyncOptions): Promise<number> {
  const { stdout } = await run('rsync', ['--dry-run', ...rsyncArgs(o).filter((a) => a !== '--info=progress2')], { okExitCodes: [23, 24] });
  return parseRsyncStats(stdout).transferredFileSize;
}
