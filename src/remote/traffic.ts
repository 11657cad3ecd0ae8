/**
 * Wire bytes of the run's one SSH connection, split into phases
 * (docs/design.md, "Transport and metering"). The counter reads the
 * connection's own socket (or the pipe to a ProxyCommand), so figures
 * include SSH framing, encryption and keepalives.
 */
export interface ByteCounter {
  up(): number;
  down(): number;
}

export interface PhaseRecord {
  name: string;
  upBytes: number;
  downBytes: number;
  ms: number;
}

export class TrafficMeter {
  readonly phases: PhaseRecord[] = [];
  private counter: ByteCounter | undefined;
  private current: { name: string; up: number; down: number; t0: number } | undefined;

  /** The connection exists only part-way through the first phase; until then it has moved 0 bytes. */
  attach(counter: ByteCounter): void {
    this.counter = counter;
  }

  private sample(): { up: number; down: number } {
    return { up: this.counter?.up() ?? 0, down: this.counter?.down() ?? 0 };
  }

  begin(name: string): void {
    this.end();
    const { up, down } = this.sample();
    this.current = { name, up, down, t0: performance.now() };
  }

  end(): void {
    const c = this.current;
    if (!c) return;
    const { up, down } = this.sample();
    this.phases.push({ name: c.name, upBytes: up - c.up, downBytes: down - c.down, ms: Math.round(performance.now() - c.t0) });
    this.current = undefined;
  }

  /** The phase under way and what it has moved so far, for progress display. */
  live(): PhaseRecord | undefined {
    const c = this.current;
    if (!c) return undefined;
    const { up, down } = this.sample();
    return { name: c.name, upBytes: up - c.up, downBytes: down - c.down, ms: Math.round(performance.now() - c.t0) };
  }

  currentPhase(): string | undefined {
    return this.current?.name;
  }

  totals(): { upBytes: number; downBytes: number; ms: number } {
    return this.phases.reduce(
      (t, p) => ({ upBytes: t.upBytes + p.upBytes, downBytes: t.downBytes + p.downBytes, ms: t.ms + p.ms }),
      { upBytes: 0, downBytes: 0, ms: 0 },
    );
  }
}
