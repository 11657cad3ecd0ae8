import { ExitCode, SshvaultError } from '../errors.js';
import { freeBytes } from '../remote/sftp.js';
import { TrafficMeter, type PhaseRecord } from '../remote/traffic.js';
import type { ImageLayout } from '../snapshot/layout.js';
import type { SeenState, Verdict } from '../snapshot/rollback.js';
import { appendRun, type RunRecord } from '../snapshot/runs.js';
import { writeLocalSequence } from '../snapshot/sequence.js';
import { VaultSession, type SessionOptions } from '../stack/session.js';
import { trapSignals } from '../stack/signals.js';
import { notice } from '../ui/console.js';
import { PhaseTicker } from '../ui/progress.js';
import type { VaultConfig } from '../config/vault-config.js';
import type { VaultPaths } from '../config/paths.js';
import { assembleRun, type RunFacts, type RunIdentity } from './run-record.js';

/** The vault a command works on (docs/design.md, "A run"). */
export interface VaultContext {
  name: string;
  config: VaultConfig;
  paths: VaultPaths;
}

/** How every command opens the vault. */
export interface OpenOptions {
  command: string;
  passphrase: string;
  acceptNewHostKey?: boolean;
  /** With no local header backup, let a writing run use the remote header as it is (and save a backup of it). */
  trustRemoteHeader?: boolean;
}

export interface ReadOptions extends OpenOptions {
  /** A vault given by flags (restore on another machine): no header backup to compare with, no local state to keep. */
  fromFlags?: boolean;
  /** Take the image's write counter and snapshots as they are, even behind what this machine saw (`accept-remote`). */
  acceptRemote?: boolean;
  /** The body runs until a signal (`mount`): then the signal is its normal end, not an interruption. */
  untilSignal?: boolean;
}

/** A command's run: what its body returned, why it failed, and the record kept of it. */
export interface SessionRun<T> {
  value?: T;
  error?: Error;
  record: RunRecord;
}

/** What every opened vault offers its command: phases, the run's facts, the abort signal. */
export interface OpenedVault {
  readonly runId: string;
  readonly signal: AbortSignal;
  /** Filled in by the command as it goes, so that a failed run's record keeps them too. */
  readonly facts: RunFacts;
  /** Starts the command's next metered phase. */
  phase(name: string): void;
  /** The phases metered so far, not counting the one under way. */
  finishedPhases(): PhaseRecord[];
}

/** The vault's filesystem mounted read-only: the command may look, never change the image. */
export interface VaultReader extends OpenedVault {
  readonly layout: ImageLayout;
  /** The write counter and complete snapshots as found (none for a vault given by flags). */
  readonly seen: SeenState | undefined;
  readonly verdict: Verdict | undefined;
  assertAlive(): Promise<void>;
  /** Binds `dir` of the filesystem read-only at `mountpoint`, until the run ends. */
  bind(dir: string, mountpoint: string): Promise<{ alive(): Promise<boolean> }>;
  onLinkLost(listener: () => void): void;
}

/** The vault's filesystem mounted for writing, behind the advanced write counter. */
export interface VaultWriter extends VaultReader {
  /** The filesystem was not cleanly unmounted by the run before: what it wrote last may not have reached the remote. */
  readonly foundUnclean: boolean;
  /** Why the SSH connection is gone, if it is. */
  readonly linkLost: Error | undefined;
  /** Until the remote has answered every write and synced the image file. */
  flush(): Promise<void>;
  /** The command changed the snapshots: the local state learns them when the run ends well. */
  noteSnapshots(): Promise<void>;
  /** Keeps a copy of this run's record inside the image, with the phases finished so far. */
  recordRun(): Promise<void>;
}

/** The decrypted image with no filesystem mounted (check); writable only when opened for repair. */
export interface DecryptedVault extends OpenedVault {
  readonly device: string;
  /** The filesystem, read-only even after a repair: verifying must not change what it verifies. */
  mountReadOnly(): Promise<ImageLayout>;
}

/** The LUKS image file itself inside the sshfs mount, not decrypted (key slots). */
export interface ImageFile extends OpenedVault {
  readonly file: string;
}

/** A new vault's filesystem, made and mounted: the command writes its first layout. */
export interface NewVault extends OpenedVault {
  readonly layout: ImageLayout;
}

interface Plan {
  readOnly: boolean;
  create?: { size: number; preallocate: boolean };
  bypassCache?: boolean;
  skipHeaderCheck?: boolean;
  noLocalState?: boolean;
  acceptRemote?: boolean;
  untilSignal?: boolean;
}

interface Live {
  meter: TrafficMeter;
  signal: AbortSignal;
  facts: RunFacts;
}

/** Errors a full remote disk can hide behind; a refusal for another reason (usage, auth, lock, signal) stays what it is. */
function mayBeFull(e: Error): boolean {
  return !(e instanceof SshvaultError) || e.exitCode === ExitCode.link || e.exitCode === ExitCode.unexpected;
}

function identity(ctx: VaultContext, session: VaultSession, command: string): RunIdentity {
  return { id: session.runId, command, vault: ctx.name, fs: ctx.config.fs, started: session.started };
}

/**
 * One command against the remote vault, phase by phase: connect, open (what
 * the opener builds), the command's own phases, close. The stack is closed on
 * success, on error and on SIGINT/SIGTERM/SIGHUP, and every run is recorded
 * with the bytes it moved, failed or not.
 */
async function metered<T>(
  ctx: VaultContext,
  o: OpenOptions,
  plan: Plan,
  open: ((s: VaultSession, meter: TrafficMeter) => Promise<void>) | undefined,
  body: (s: VaultSession, live: Live) => Promise<T>,
): Promise<SessionRun<T>> {
  const meter = new TrafficMeter();
  const ticker = new PhaseTicker(meter);
  const controller = new AbortController();
  const untrap = trapSignals(controller, notice);
  const options: SessionOptions = {
    config: ctx.config,
    paths: ctx.paths,
    command: o.command,
    readOnly: plan.readOnly,
    passphrase: o.passphrase,
    meter,
    notice,
    acceptNewHostKey: o.acceptNewHostKey,
    skipHeaderCheck: plan.skipHeaderCheck,
    trustRemoteHeader: o.trustRemoteHeader,
    bypassCache: plan.bypassCache,
    acceptRemote: plan.acceptRemote,
    noLocalState: plan.noLocalState,
  };
  const session = new VaultSession(options);
  let value: T | undefined;
  const facts: RunFacts = {};
  let error: Error | undefined;
  const checkpoint = () => {
    if (controller.signal.aborted) throw controller.signal.reason;
    session.conn?.assertAlive();
  };
  try {
    meter.begin('connect');
    await session.connect(plan.create);
    facts.remoteFreeBytes = await freeBytes(await session.conn!.sftp(), session.remote.dir);
    checkpoint();
    if (open) {
      await open(session, meter);
      checkpoint();
    }
    value = await body(session, { meter, signal: controller.signal, facts });
    if (plan.untilSignal) session.conn?.assertAlive();
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
  if (!error && controller.signal.aborted && !plan.untilSignal) error = controller.signal.reason as Error;
  // Only a run that ended well knows its counter reached the remote; a failed one leaves the local state behind it, which the next run adopts.
  if (!error && session.seen) await writeLocalSequence(ctx.paths.sequenceFile, session.seen);
  const record = assembleRun(identity(ctx, session, o.command), facts, {
    phases: meter.phases,
    engine: session.engine,
    error,
    cache: session.imageCache?.counters,
    where: 'local',
  });
  await appendRun(ctx.paths.runsFile, record);
  return { value, error, record };
}

async function openFs(s: VaultSession, meter: TrafficMeter): Promise<void> {
  meter.begin('open');
  await s.open();
}

class Opened implements OpenedVault {
  readonly runId: string;
  readonly signal: AbortSignal;
  readonly facts: RunFacts;

  constructor(
    protected readonly s: VaultSession,
    protected readonly live: Live,
  ) {
    this.runId = s.runId;
    this.signal = live.signal;
    this.facts = live.facts;
  }

  phase(name: string): void {
    this.live.meter.begin(name);
  }

  finishedPhases(): PhaseRecord[] {
    return [...this.live.meter.phases];
  }
}

class Reader extends Opened implements VaultReader {
  get layout(): ImageLayout {
    return this.s.layout;
  }

  get seen(): SeenState | undefined {
    return this.s.seen;
  }

  get verdict(): Verdict | undefined {
    return this.s.verdict;
  }

  assertAlive(): Promise<void> {
    return this.s.assertAlive();
  }

  bind(dir: string, mountpoint: string): Promise<{ alive(): Promise<boolean> }> {
    return this.s.bind(dir, mountpoint);
  }

  onLinkLost(listener: () => void): void {
    this.s.conn!.onLost(listener);
  }
}

class Writer extends Reader implements VaultWriter {
  constructor(
    s: VaultSession,
    live: Live,
    private readonly who: RunIdentity,
  ) {
    super(s, live);
  }

  get foundUnclean(): boolean {
    return this.s.fsLayer()!.foundUnclean;
  }

  get linkLost(): Error | undefined {
    return this.s.conn?.lost;
  }

  flush(): Promise<void> {
    return this.s.fsLayer()!.flush();
  }

  noteSnapshots(): Promise<void> {
    return this.s.noteSnapshots();
  }

  recordRun(): Promise<void> {
    return appendRun(this.s.layout.runs, assembleRun(this.who, this.facts, { phases: this.finishedPhases(), engine: this.s.engine, where: 'image' }));
  }
}

/** The filesystem read-only, behind the rollback guard; the remote lock is a shared one. */
export function withReader<T>(ctx: VaultContext, o: ReadOptions, fn: (v: VaultReader) => Promise<T>): Promise<SessionRun<T>> {
  const plan = { readOnly: true, skipHeaderCheck: o.fromFlags, noLocalState: o.fromFlags, acceptRemote: o.acceptRemote, untilSignal: o.untilSignal };
  return metered(ctx, o, plan, openFs, (s, live) => fn(new Reader(s, live)));
}

/** The filesystem for writing, with the vault to itself and the write counter advanced before the command writes. */
export function withWriter<T>(ctx: VaultContext, o: OpenOptions, fn: (v: VaultWriter) => Promise<T>): Promise<SessionRun<T>> {
  return metered(ctx, o, { readOnly: false }, openFs, (s, live) => fn(new Writer(s, live, identity(ctx, s, o.command))));
}

/**
 * The decrypted image without its filesystem, everything read from the
 * remote, the block cache left out and left as it is: `repair`
 * opens it for writing.
 */
export function withDecrypted<T>(ctx: VaultContext, o: OpenOptions, access: 'read' | 'repair', fn: (d: DecryptedVault) => Promise<T>): Promise<SessionRun<T>> {
  let device = '';
  const open = async (s: VaultSession, meter: TrafficMeter) => {
    meter.begin('open');
    device = await s.openImage();
  };
  return metered(ctx, o, { readOnly: access === 'read', bypassCache: true }, open, (s, live) => fn(Object.assign(new Opened(s, live), { device, mountReadOnly: () => s.mountReadOnly() })));
}

/**
 * The LUKS image file inside the sshfs mount, to read or edit its key slots.
 * `headerUnchecked` lets a changed remote header through: that is how it is accepted.
 */
export function withImageFile<T>(
  ctx: VaultContext,
  o: OpenOptions & { write: boolean; headerUnchecked?: boolean },
  fn: (f: ImageFile) => Promise<T>,
): Promise<SessionRun<T>> {
  return metered(ctx, o, { readOnly: !o.write, skipHeaderCheck: o.headerUnchecked }, undefined, (s, live) => fn(Object.assign(new Opened(s, live), { file: s.imageFile })));
}

/**
 * init: makes the remote directory and image, formats LUKS, makes and mounts
 * the filesystem; `fn` writes the first layout, and the write counter starts.
 * A failed init takes away what it made.
 */
export function createVault<T>(
  ctx: VaultContext,
  o: OpenOptions & { size: number; preallocate: boolean },
  fn: (v: NewVault) => Promise<T>,
): Promise<SessionRun<T>> {
  return metered(ctx, o, { readOnly: false, create: { size: o.size, preallocate: o.preallocate } }, undefined, async (s, live) => {
    live.meter.begin('format');
    try {
      const layout = await s.create(o.size);
      const value = await fn(Object.assign(new Opened(s, live), { layout }));
      await s.startSequence();
      await s.fsLayer()!.flush();
      return value;
    } catch (e) {
      // Asked now: closing the session removes the half-made image, which frees the space.
      throw (await s.fullError(e)) ?? e;
    }
  });
}
