// Running programs from the benches. Children run asynchronously: the counting
// relay lives in the bench's own process and must keep forwarding meanwhile.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { execa } from 'execa';

export function log(...a: string[]): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);
}

export interface Ran {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
  /** Peak resident set in bytes (GNU time's %M), when asked for with rssFile. */
  peakRss?: number;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Exit codes that count as success besides 0. */
  okCodes?: number[];
  allowFail?: boolean;
  /** Run under /usr/bin/time, which writes the peak RSS (of the largest process it waited for) here. */
  rssFile?: string;
  timeoutMs?: number;
}

export class RunError extends Error {
  constructor(
    readonly command: string,
    readonly ran: Ran,
  ) {
    super(`${command} exited ${ran.status}\n${ran.stdout}\n${ran.stderr}`);
  }
}

export async function run(cmd: string, args: string[], o: RunOptions = {}): Promise<Ran> {
  const [file, argv] = o.rssFile ? ['/usr/bin/time', ['-f', '%M', '-o', o.rssFile, cmd, ...args]] : [cmd, args];
  const t0 = Date.now();
  const r = await execa(file, argv as string[], { env: o.env, cwd: o.cwd, reject: false, stdin: 'ignore', timeout: o.timeoutMs, maxBuffer: 256 << 20 });
  const ms = Date.now() - t0;
  const status = r.exitCode ?? -1;
  const out: Ran = { status, stdout: String(r.stdout), stderr: String(r.stderr), ms };
  if (o.rssFile) {
    // GNU time writes "Command exited with non-zero status N" before the number when the command fails.
    const kb = Number(readFileSync(o.rssFile, 'utf8').trim().split('\n').pop());
    rmSync(o.rssFile, { force: true });
    if (Number.isFinite(kb)) out.peakRss = kb * 1024;
  }
  if (status !== 0 && !(o.okCodes ?? []).includes(status) && !o.allowFail) {
    throw new RunError(`${cmd} ${args.join(' ')}`, out);
  }
  return out;
}

/** Synchronous, for clean-up paths and quick local tools. */
export function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; allowFail?: boolean; timeout?: number; stdio?: 'ignore' } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, env: opts.env, timeout: opts.timeout, stdio: opts.stdio });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout ?? ''}\n${r.stderr ?? ''}`);
  }
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function which(tool: string): string | undefined {
  return sh('bash', ['-c', `command -v ${tool}`], { allowFail: true }).stdout.trim() || undefined;
}

/** Bytes a directory takes on disk (allocated, so a sparse image counts what it holds). */
export function diskUsage(path: string): number {
  const out = sh('du', ['-s', '-B1', path], { allowFail: true }).stdout;
  return Number(out.split(/\s+/)[0]) || 0;
}
