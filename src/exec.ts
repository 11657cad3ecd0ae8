import { closeSync, openSync } from 'node:fs';
import { execa, execaSync, type ResultPromise, type Options } from 'execa';
import { CommandError } from './errors.js';
import { debug } from './log.js';

/**
 * The one way sshvault runs other programs: it logs argv (never a secret:
 * secrets go by stdin, file descriptor or 0600 file), captures stderr and
 * turns failures into CommandError with the program's own last words.
 */

export interface RunOptions {
  /** Bytes for the child's stdin (how passphrases reach cryptsetup). */
  input?: string | Buffer;
  timeoutMs?: number;
  cancelSignal?: AbortSignal;
  /** Exit codes that count as success besides 0 (e2fsck -p returns 1 after fixing). */
  okExitCodes?: number[];
  cwd?: string;
  /** Variables added to the child's environment (never a secret: they show in /proc). */
  env?: Record<string, string>;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** A child's environment: ours without the passphrase, in the C locale so its output parses. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', ...extra };
  delete env.SSHVAULT_PASSPHRASE;
  return env;
}

function describe(file: string, args: readonly string[]): string {
  return [file, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

export function lastLine(text: string): string {
  const lines = text.trim().split('\n').map((l) => l.trim()).filter(Boolean);
  return lines[lines.length - 1] ?? '';
}

export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  debug(`$ ${describe(file, args)}`);
  const result = await execa(file, args, {
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
    timeout: opts.timeoutMs,
    cancelSignal: opts.cancelSignal,
    cwd: opts.cwd,
    env: childEnv(opts.env),
    extendEnv: false,
    reject: false,
    stripFinalNewline: true,
  } as Options);
  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  const exitCode = result.exitCode ?? -1;
  if (stderr) debug(`  stderr: ${stderr.trim().split('\n').join('\n  stderr: ')}`);
  const ok = exitCode === 0 || (opts.okExitCodes ?? []).includes(exitCode);
  if (!result.failed || (ok && !result.isCanceled && !result.timedOut)) {
    return { stdout, stderr, exitCode };
  }
  const why = result.timedOut
    ? `timed out after ${opts.timeoutMs} ms`
    : result.isCanceled
      ? 'was cancelled'
      : result.signal
        ? `was killed by ${result.signal}`
        : result.exitCode === undefined
          ? `could not start (${(result as { cause?: Error }).cause?.message ?? 'unknown reason'}); is it installed?`
          : `exited with ${exitCode}`;
  const detail = lastLine(stderr) || lastLine(stdout);
  throw new CommandError(file, result.exitCode, stderr, `${file} ${why}${detail ? `: ${detail}` : ''}`);
}

/** Like run, but says whether the command succeeded instead of throwing. */
export async function succeeds(file: string, args: string[], opts: RunOptions = {}): Promise<boolean> {
  try {
    await run(file, args, opts);
    return true;
  } catch (e) {
    if (e instanceof CommandError) return false;
    throw e;
  }
}

export interface SpawnOptions {
  stdin?: 'pipe' | 'ignore';
  stdout?: 'pipe' | 'ignore';
  cwd?: string;
}

export interface Child {
  readonly process: ResultPromise;
  readonly pid: number | undefined;
  /** What the child printed on stderr so far (the last 64 KiB). */
  stderr(): string;
  /** Settles when the child is gone; never rejects. */
  readonly exited: Promise<{ exitCode: number | undefined; signal: string | undefined }>;
  running(): boolean;
}

/**
 * Long-lived children (sshfs, qemu-nbd, nbdfuse, rsync): the caller owns the
 * process and its pipes (raw bytes, not buffered); stderr is collected so a
 * failure can be explained while the child still runs.
 */
export function spawn(file: string, args: string[], opts: SpawnOptions = {}): Child {
  debug(`$ ${describe(file, args)} &`);
  const proc = execa(file, args, {
    stdin: opts.stdin ?? 'ignore',
    stdout: opts.stdout ?? 'ignore',
    stderr: 'pipe',
    buffer: false,
    encoding: 'buffer',
    // Own process group: a Ctrl-C at the terminal must reach sshvault only, which then closes the
    // stack in order; sshfs or qemu-nbd dying first would leave the image unclean.
    detached: true,
    cwd: opts.cwd,
    env: childEnv(),
    extendEnv: false,
    reject: false,
  } as Options) as ResultPromise;
  let err = '';
  let alive = true;
  proc.stderr?.on('data', (chunk: Buffer) => {
    err = (err + chunk.toString('utf8')).slice(-65536);
    debug(`  ${file}: ${chunk.toString('utf8').trimEnd()}`);
  });
  const exited = proc.then(
    (r) => ({ exitCode: r.exitCode, signal: r.signal }),
    (e: { exitCode?: number; signal?: string }) => ({ exitCode: e.exitCode, signal: e.signal }),
  ).finally(() => {
    alive = false;
  });
  return { process: proc, pid: proc.pid, stderr: () => err, exited, running: () => alive };
}

export interface Daemon {
  readonly pid: number | undefined;
  /** Settles when the process is gone; never rejects. */
  readonly exited: Promise<{ exitCode: number | undefined }>;
  running(): boolean;
  /** Lets this process exit while the daemon runs on. */
  detach(): void;
}

/**
 * A process meant to outlive us (the one `mount` leaves running): in its own
 * session so the terminal's signals do not reach it, `input` on its stdin
 * (how a secret gets there), stdout and stderr appended to `logFile`.
 */
export function spawnDaemon(file: string, args: string[], opts: { input: string; logFile: string }): Daemon {
  debug(`$ ${describe(file, args)} (background, log ${opts.logFile})`);
  const log = openSync(opts.logFile, 'a', 0o600);
  const proc = execa(file, args, {
    input: opts.input,
    stdout: log,
    stderr: log,
    detached: true,
    env: childEnv(),
    extendEnv: false,
    reject: false,
  } as Options) as ResultPromise;
  closeSync(log);
  let alive = true;
  const exited = proc.then(
    (r) => ({ exitCode: r.exitCode }),
    (e: { exitCode?: number }) => ({ exitCode: e.exitCode }),
  ).finally(() => {
    alive = false;
  });
  return { pid: proc.pid, exited, running: () => alive, detach: () => proc.unref() };
}

/**
 * Terminal echo on or off for a passphrase prompt. Synchronous on purpose:
 * the prompt reads the terminal synchronously, and nothing is mounted yet.
 */
export function setTtyEcho(on: boolean): void {
  const args = ['-F', '/dev/tty', on ? 'echo' : '-echo'];
  debug(`$ stty ${args.join(' ')}`);
  execaSync('stty', args, { stdin: 'ignore', stdout: 'ignore', stderr: 'ignore', reject: false });
}
