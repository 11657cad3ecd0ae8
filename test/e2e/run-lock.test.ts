import { execa, type ResultPromise } from 'execa';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const RUN_LOCK = resolve(import.meta.dirname, '../../dist/stack/run-lock.js');

/**
 * A taker: says "ready", waits for "go", tries the lock and says "won" or
 * "lost"; a winner holds the lock until its stdin closes, then releases it.
 */
const TAKER = `
import { createInterface } from 'node:readline';
const { RunLock } = await import(process.argv[1]);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
console.log('ready');
await lines.next();
let lock;
try {
  lock = await RunLock.take({ runLock: process.argv[2] }, 'v');
} catch (e) {
  console.log('lost ' + e.exitCode);
  process.exit(0);
}
console.log('won');
while (!(await lines.next()).done);
await lock.release();
`;

interface Taker {
  proc: ResultPromise<{ stdin: 'pipe'; stdout: 'pipe' }>;
  next(): Promise<string>;
}

function startTaker(lockFile: string): Taker {
  const proc = execa('node', ['--input-type=module', '-e', TAKER, RUN_LOCK, lockFile], { stdin: 'pipe', stdout: 'pipe', reject: false }) as Taker['proc'];
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  return { proc, next: async () => String((await lines.next()).value) };
}

/** A pid that names no process: one that ran and was reaped. */
async function deadPid(): Promise<number> {
  const p = execa('true');
  await p;
  return p.pid!;
}

describe('the local run lock', () => {
  let dir: string;
  const running: Taker[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sshvault-runlock-'));
  });

  afterAll(async () => {
    for (const t of running) t.proc.kill('SIGKILL');
    await Promise.allSettled(running.map((t) => t.proc));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Eight runs start together on the lock as `before` left it: exactly one holds it, the others exit 5 while it does. */
  async function race(lockFile: string): Promise<void> {
    const takers = Array.from({ length: 8 }, () => startTaker(lockFile));
    running.push(...takers);
    for (const t of takers) expect(await t.next()).toBe('ready');
    for (const t of takers) t.proc.stdin!.write('go\n');
    const said = await Promise.all(takers.map((t) => t.next()));
    expect(said.filter((s) => s === 'won'), said.join(', ')).toHaveLength(1);
    expect(said.filter((s) => s === 'lost 5')).toHaveLength(7);
    const winner = takers[said.indexOf('won')];
    // Every loser is gone and the winner still holds the lock, untouched.
    expect(JSON.parse(await readFile(lockFile, 'utf8')).pid).toBe(winner.proc.pid);
    winner.proc.stdin!.end();
    await Promise.all(takers.map((t) => t.proc));
    expect((await readdir(dir)).filter((n) => n.startsWith('run.lock'))).toEqual([]);
  }

  it('runs racing for a free lock: exactly one wins, nobody breaks it', async () => {
    for (let round = 0; round < 3; round++) await race(join(dir, 'run.lock'));
  });

  it('runs racing to replace a dead run\'s lock: exactly one wins, nobody breaks it', async () => {
    for (let round = 0; round < 3; round++) {
      await writeFile(join(dir, 'run.lock'), `${JSON.stringify({ pid: await deadPid(), start: 1 })}\n`);
      await race(join(dir, 'run.lock'));
    }
  });

  it("runs racing to replace an older version's lock files (bare pid, empty): exactly one wins", async () => {
    await writeFile(join(dir, 'run.lock'), `${await deadPid()}\n`);
    await race(join(dir, 'run.lock'));
    await writeFile(join(dir, 'run.lock'), '');
    await race(join(dir, 'run.lock'));
  });

  it("a live run's lock is kept, even one of an older version without a start time", async () => {
    await writeFile(join(dir, 'run.lock'), `${process.pid}\n`);
    const t = startTaker(join(dir, 'run.lock'));
    running.push(t);
    expect(await t.next()).toBe('ready');
    t.proc.stdin!.end('go\n');
    expect(await t.next()).toBe('lost 5');
    expect(await readFile(join(dir, 'run.lock'), 'utf8')).toBe(`${process.pid}\n`);
    await rm(join(dir, 'run.lock'));
  });
});
