import { vaultPaths, type VaultPaths } from '../config/paths.js';
import { checkVaultDirs } from '../config/private-dirs.js';
import { readPassphrase } from '../config/passphrase.js';
import { loadConfig, resolveVaultName, type VaultConfig } from '../config/vault-config.js';
import { configureLog } from '../log.js';
import { freeBytes } from '../remote/sftp.js';
import { TrafficMeter } from '../remote/traffic.js';
import { recoverLeftovers } from '../stack/recovery.js';
import { RunLock } from '../stack/run-lock.js';
import { VaultSession } from '../stack/session.js';
import { trapSignals } from '../stack/signals.js';
import { appendRun, type RunRecord } from '../snapshot/runs.js';
import { writeLocalSequence } from '../snapshot/sequence.js';
import { notice } from '../ui/console.js';
import { PhaseTicker } from '../ui/progress.js';
import { ExitCode, SshvaultError } from '../errors.js';
import { mountHoldsVault, releaseStaleMount } from './mount-record.js';
import type { GlobalArgs } from './options.js';
import { warnIfStale } from './staleness.js';

export interface VaultContext {
  name: string;
  config: VaultConfig;
  paths: VaultPaths;
}

export async function openContext(given: string | undefined): Promise<VaultContext> {
  const name = await resolveVaultName(given);
  const config = await loadConfig(name);
  const paths = vaultPaths(name);
  await checkVaultDirs(paths);
  configureLog({ file: paths.logFile });
  await warnIfStale(name, config, paths.runsFile);
  return { name, config, paths };
}

export async function passphraseFor(args: Pick<GlobalArgs, 'passphraseFile' | 'passphraseCommand'>, config: Partial<VaultConfig>, confirm = false): Promise<string> {
  return readPassphrase(
    { file: args.passphraseFile, command: args.passphraseCommand },
    { file: config.passphraseFile, command: config.passphraseCommand },
    { confirm },
  );
}

/**
 * Runs `fn` as the only sshvault run of this vault on this host, after
 * tearing down whatever a dead run left behind (and saying so in one line).
 */
export async function exclusive<T>(ctx: Pick<VaultContext, 'name' | 'paths'>, fn: () => Promise<T>): Promise<T> {
  const lock = await RunLock.take(ctx.paths, ctx.name).catch(async (e) => {
    throw (await mountHoldsVault(ctx.paths, ctx.name)) ?? e;
  });
  try {
    const stale = await releaseStaleMount(ctx.paths);
    const r = await recoverLeftovers(ctx.paths, ctx.name);
    const tornDown = [...stale, ...r.tornDown];
    if (tornDown.length) {
      const who = r.previous ? ` (${r.previous.command}, pid ${r.previous.pid}, started ${r.previous.started})` : '';
      notice(`Cleaned up after an interrupted run${who}: ${tornDown.join(', ')}.`);
    }
    return await fn();
  } finally {
    await lock.release();
  }
}

/** What the command learned that goes into its run record, filled in as it goes so a failed run keeps it too. */
export interface RunFacts {
  snapshot?: string;
  changedBytes?: number;
  rsync?: RunRecord['rsync'];
  remoteFreeBytes?: number;
  /** A run that succeeded with something to report (a snapshot complete with warnings). */
  exitCode?: number;
}

export interface MeteredRun<T> {
  value?: T;
  error?: Error;
  record: RunRecord;
}

/** Errors a full remote disk can hide behind; a refusal for another reason (usage, auth, lock, signal) stays what it is. */
function mayBeFull(e: Error): boolean {
  return !(e instanceof SshvaultError) || e.exitCode === ExitCode.link || e.exitCode === ExitCode.unexpected;
}

/**
 * One command against the remote vault, phase by phase: connect, open (when
 * the filesystem is needed), the command's own phases, close. The stack is
 * closed on success, on error and on SIGINT/SIGTERM/SIGHUP, and every run is
 * recorded with the bytes it moved, failed or not.
 */
export async function meteredSession<T>(
  ctx: VaultContext,
  opts: {
    command: string;
    readOnly: boolean;
    passphrase: string;
    mountFs: boolean;
    create?: { size: number; preallocate: boolean };
    acceptNewHostKey?: boolean;
    skipHeaderCheck?: boolean;
    trustRemoteHeader?: boolean;
    /** Read everything from the remote and let the block cache start over from what comes back (`check`). */
    freshCache?: boolean;
    /** The body runs until a signal (`mount`): then the signal is its normal end, not an interruption. */
    untilSignal?: boolean;
    acceptRemote?: boolean;
    noLocalState?: boolean;
  },
  body: (s: VaultSession, meter: TrafficMeter, signal: AbortSignal, facts: RunFacts) => Promise<T>,
): Promise<MeteredRun<T>> {
  const meter = new TrafficMeter();
  const ticker = new PhaseTicker(meter);
  const controller = new AbortController();
  const untrap = trapSignals(controller, notice);
  const session = new VaultSession({
    config: ctx.config,
    paths: ctx.paths,
    command: opts.command,
    readOnly: opts.readOnly,
    passphrase: opts.passphrase,
    meter,
    notice,
    acceptNewHostKey: opts.acceptNewHostKey,
    skipHeaderCheck: opts.skipHeaderCheck,
    trustRemoteHeader: opts.trustRemoteHeader,
    freshCache: opts.freshCache,
    acceptRemote: opts.acceptRemote,
    noLocalState: opts.noLocalState,
  });
  const started = new Date();
  let value: T | undefined;
  const facts: RunFacts = {};
  let error: Error | undefined;
  const checkpoint = () => {
    if (controller.signal.aborted) throw controller.signal.reason;
    session.conn?.assertAlive();
  };
  try {
    meter.begin('connect');
    await session.connect(opts.create);
    facts.remoteFreeBytes = await freeBytes(await session.conn!.sftp(), session.remote.dir);
    checkpoint();
    if (opts.mountFs) {
      meter.begin('open');
      await session.open();
      checkpoint();
    }
    value = await body(session, meter, controller.signal, facts);
    if (opts.untilSignal) session.conn?.assertAlive();
    else checkpoint();
  } catch (e) {
    error = (session.conn?.lost && !(e instanceof SshvaultError && e.exitCode > 128) ? session.conn.lost : e) as Error;
    if (mayBeFull(error)) error = (await session.fullError(error)) ?? error;
  } finally {
    meter.begin('close');
    const closeError = await session.close(!!error);
    meter.end();
    ticker.stop();
    untrap();
    if (!error && closeError) error = closeError;
  }
  // The image's writes may fail only at the flush when the stack closes.
  if (error && mayBeFull(error)) error = session.imageCache?.remoteFull ?? error;
  if (!error && controller.signal.aborted && !opts.untilSignal) error = controller.signal.reason as Error;
  // Only a run that ended well knows its counter reached the remote; a failed one leaves the local state behind it, which the next run adopts.
  if (!error && session.seen) await writeLocalSequence(ctx.paths.sequenceFile, session.seen);
  const totals = meter.totals();
  const record: RunRecord = {
    id: session.runId,
    command: opts.command,
    vault: ctx.name,
    snapshot: facts.snapshot,
    started: started.toISOString(),
    finished: new Date().toISOString(),
    ok: !error,
    exitCode: error ? (error instanceof SshvaultError ? error.exitCode : 1) : (facts.exitCode ?? 0),
    ...(error ? { error: error.message } : {}),
    engine: session.engine,
    fs: ctx.config.fs,
    changedBytes: facts.changedBytes ?? 0,
    upBytes: totals.upBytes,
    downBytes: totals.downBytes,
    phases: meter.phases,
    ...(facts.rsync ? { rsync: facts.rsync } : {}),
    ...(facts.remoteFreeBytes !== undefined ? { remoteFreeBytes: facts.remoteFreeBytes } : {}),
    ...(session.imageCache?.counters ? { cache: { ...session.imageCache.counters } } : {}),
  };
  await appendRun(ctx.paths.runsFile, record);
  return { value, error, record };
}
