import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LockHeldError } from '../../src/errors.js';
import { isStale, thisProcess, type LockIdentity } from '../../src/remote/lock-identity.js';
import { acquireLock, acquireSharedLock, assertNoReaders, breakLock, type LockContext } from '../../src/remote/lock.js';
import type { ProcessFacts } from '../../src/proc.js';
import { MemoryDir } from '../helpers/memory-dir.js';

const DIR = '/srv/v';

/** The processes alive on one simulated machine: pid -> start time. */
function processes(live: Record<number, number>): ProcessFacts {
  return { alive: (pid) => pid in live, start: (pid) => live[pid] };
}

/** Two machines both called `debian`, each with its own processes. */
const machineA = { host: 'debian', machine: 'a'.repeat(64), boot: '1'.repeat(64) };
const machineB = { host: 'debian', machine: 'b'.repeat(64), boot: '2'.repeat(64) };

/** As thisProcess: the machine and boot hashes are keyed per vault id. */
function client(m: typeof machineA, pid: number, live: Record<number, number>): LockContext {
  return {
    identify: (vaultId) => ({ host: m.host, machine: `${m.machine}:${vaultId}`, boot: `${m.boot}:${vaultId}`, pid, pidStart: live[pid] }),
    proc: processes(live),
  };
}

function taker(runId: string) {
  return { vaultId: 'vault-1', runId, command: 'push' };
}

function ownerJson(files: MemoryDir): { runId: string } {
  return JSON.parse(files.files.get(`${DIR}/vault.lock/owner.json`)!.toString());
}

describe('lock staleness', () => {
  const here: LockIdentity = { ...machineA, pid: 10, pidStart: 500 };
  const proc = processes({ 10: 500, 20: 700 });
  const owner = (o: Partial<LockIdentity>) => ({ ...machineA, pid: 30, pidStart: 600, ...o });

  it('this machine, this boot, dead pid: stale', () => {
    expect(isStale(owner({}), here, proc)).toBe(true);
  });
  it('this machine, this boot, pid alive but started at another time (reused): stale', () => {
    expect(isStale(owner({ pid: 20, pidStart: 600 }), here, proc)).toBe(true);
  });
  it('this machine, this boot, the same live process: held', () => {
    expect(isStale(owner({ pid: 20, pidStart: 700 }), here, proc)).toBe(false);
  });
  it('this machine, an earlier boot: held (a cloned machine id looks the same), unless this state directory recorded the run', () => {
    expect(isStale(owner({ pid: 20, pidStart: 700, boot: '9'.repeat(64) }), here, proc)).toBe(false);
  });
  it('the same host name without this machine\'s identity: held, dead pid or not', () => {
    expect(isStale(owner({ machine: undefined, boot: undefined }), here, proc)).toBe(false);
    expect(isStale(owner({ machine: machineB.machine }), here, proc)).toBe(false);
    expect(isStale(owner({ ...machineB }), here, proc)).toBe(false);
  });
  it('a machine without an id proves nothing', () => {
    expect(isStale(owner({ machine: undefined }), { ...here, machine: undefined }, proc)).toBe(false);
  });
  it('this machine with the pid alive but no start time recorded: held', () => {
    expect(isStale(owner({ pid: 20, pidStart: undefined }), here, proc)).toBe(false);
  });
  it('the identity is keyed by the vault: the raw machine id never appears', () => {
    const one = thisProcess('vault-1');
    const two = thisProcess('vault-2');
    expect(one.machine).toMatch(/^[0-9a-f]{64}$/);
    expect(one.machine).not.toBe(two.machine);
    expect(one.boot).not.toBe(two.boot);
    expect(JSON.stringify(one)).not.toContain(readFileSync('/etc/machine-id', 'utf8').trim());
    expect(one.pidStart).toBeGreaterThan(0);
  });
});

describe('remote lock races', () => {
  it('two takers at once: exactly one holds the lock, the other is told who', async () => {
    const files = new MemoryDir(DIR);
    const results = await Promise.allSettled([
      acquireLock(files, DIR, taker('run-a'), () => {}, client(machineA, 10, { 10: 1 })),
      acquireLock(files, DIR, taker('run-b'), () => {}, client(machineB, 10, { 10: 2 })),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0].reason).toBeInstanceOf(LockHeldError);
    expect(lost[0].reason.message).toMatch(/locked by push by pid 10 on debian, started .*a machine of the same name/);
    expect([...files.dirs].filter((d) => d.startsWith(`${DIR}/vault.lock.`))).toEqual([]);
  });

  it("a dead run's lock is broken by its own machine only", async () => {
    const files = new MemoryDir(DIR);
    await acquireLock(files, DIR, taker('dead'), () => {}, client(machineA, 10, { 10: 1 }));
    // Machine B has no pid 10 either: the lock looks dead from there, but is not B's.
    await expect(acquireLock(files, DIR, taker('b'), () => {}, client(machineB, 11, { 11: 1 }))).rejects.toThrow(/locked by push by pid 10 on debian/);
    expect(ownerJson(files).runId).toBe('dead');
    const notices: string[] = [];
    await acquireLock(files, DIR, taker('a2'), (m) => notices.push(m), client(machineA, 12, { 12: 5 }));
    expect(notices).toEqual([expect.stringMatching(/^Breaking a stale lock left by pid 10 on this machine/)]);
    expect(ownerJson(files).runId).toBe('a2');
  });

  it('a lock from before a reboot is broken when this state directory recorded its run id, and only then', async () => {
    const files = new MemoryDir(DIR);
    await acquireLock(files, DIR, taker('before-reboot'), () => {}, client(machineA, 10, { 10: 1 }));
    const rebooted = { ...machineA, boot: '3'.repeat(64) };
    await expect(acquireLock(files, DIR, taker('after'), () => {}, client(rebooted, 10, { 10: 1 }))).rejects.toThrow(LockHeldError);
    await expect(acquireLock(files, DIR, taker('clone'), () => {}, { ...client(machineB, 10, {}), ownRuns: new Set(['other-run']) })).rejects.toThrow(LockHeldError);
    await acquireLock(files, DIR, taker('after'), () => {}, { ...client(rebooted, 10, { 10: 1 }), ownRuns: new Set(['before-reboot']) });
    expect(ownerJson(files).runId).toBe('after');
  });

  it('a live run of this machine keeps its lock', async () => {
    const files = new MemoryDir(DIR);
    await acquireLock(files, DIR, taker('live'), () => {}, client(machineA, 10, { 10: 1, 12: 5 }));
    await expect(acquireLock(files, DIR, taker('next'), () => {}, client(machineA, 12, { 10: 1, 12: 5 }))).rejects.toThrow(LockHeldError);
    expect(ownerJson(files).runId).toBe('live');
  });

  it('a link cut between mkdir and owner.json leaves only a staging directory, which the next holder sweeps', async () => {
    const files = new MemoryDir(DIR);
    files.before = (op) => {
      if (op === 'write') throw new Error('link cut');
    };
    await expect(acquireLock(files, DIR, taker('cut'), () => {}, client(machineA, 10, { 10: 1 }))).rejects.toThrow(/link cut/);
    files.before = () => {};
    // The cut run could not even remove its staging directory: its link is gone.
    files.dirs.add(`${DIR}/vault.lock.cut`);
    await acquireLock(files, DIR, taker('next'), () => {}, client(machineA, 11, { 11: 1 }));
    expect(ownerJson(files).runId).toBe('next');
    expect([...files.dirs].filter((d) => d.startsWith(`${DIR}/vault.lock.`))).toEqual([]);
  });

  it('a rename onto a lock another client took meanwhile fails: its lock stays, ours is told who holds it and leaves no staging directory', async () => {
    const files = new MemoryDir(DIR);
    let other: Promise<unknown> | undefined;
    files.before = async (op, path) => {
      if (op === 'rename' && path === `${DIR}/vault.lock.late` && !other) {
        other = acquireLock(files, DIR, taker('early'), () => {}, client(machineB, 20, { 20: 1 }));
        await other;
      }
    };
    await expect(acquireLock(files, DIR, taker('late'), () => {}, client(machineA, 10, { 10: 1 }))).rejects.toThrow(/locked by push by pid 20 on debian/);
    expect(ownerJson(files).runId).toBe('early');
    expect([...files.dirs].filter((d) => d.startsWith(`${DIR}/vault.lock.`))).toEqual([]);
  });

  it('a stale lock broken while another client takes the lock: the other keeps it', async () => {
    const files = new MemoryDir(DIR);
    await acquireLock(files, DIR, taker('dead'), () => {}, client(machineA, 10, { 10: 1 }));
    let other: Promise<unknown> | undefined;
    files.before = async (op, path) => {
      // Right after the stale lock is gone, before this run stages again.
      if (op === 'mkdir' && path === `${DIR}/vault.lock.next` && !files.dirs.has(`${DIR}/vault.lock`) && !other) {
        other = acquireLock(files, DIR, taker('other'), () => {}, client(machineB, 20, { 20: 1 }));
        await other;
      }
    };
    const notices: string[] = [];
    await expect(acquireLock(files, DIR, taker('next'), (m) => notices.push(m), client(machineA, 11, { 11: 1 }))).rejects.toThrow(/locked by push by pid 20 on debian/);
    expect(notices).toEqual([expect.stringMatching(/^Breaking a stale lock left by pid 10/)]);
    expect(ownerJson(files).runId).toBe('other');
  });

  it('a link cut at the rename leaves a staging directory with its owner, which the next holder sweeps', async () => {
    const files = new MemoryDir(DIR);
    files.before = (op) => {
      if (op === 'rename') throw new Error('link cut');
    };
    await expect(acquireLock(files, DIR, taker('cut'), () => {}, client(machineA, 10, { 10: 1 }))).rejects.toThrow(/link cut/);
    files.before = () => {};
    files.dirs.add(`${DIR}/vault.lock.cut`);
    files.files.set(`${DIR}/vault.lock.cut/owner.json`, Buffer.from('{"runId":"cut"}\n'));
    await acquireLock(files, DIR, taker('next'), () => {}, client(machineA, 11, { 11: 1 }));
    expect(ownerJson(files).runId).toBe('next');
    expect([...files.dirs].filter((d) => d.startsWith(`${DIR}/vault.lock.`))).toEqual([]);
    expect([...files.files.keys()].filter((f) => f.startsWith(`${DIR}/vault.lock.`))).toEqual([]);
  });

  it('unlock tells no lock from a lock without an owner', async () => {
    const files = new MemoryDir(DIR);
    expect(await breakLock(files, DIR)).toBeUndefined();
    files.dirs.add(`${DIR}/vault.lock`);
    expect(await breakLock(files, DIR)).toBeNull();
    expect(files.dirs.has(`${DIR}/vault.lock`)).toBe(false);
  });

  it('a lock that is no longer ours is left alone at release', async () => {
    const files = new MemoryDir(DIR);
    const notices: string[] = [];
    const mine = await acquireLock(files, DIR, taker('mine'), (m) => notices.push(m), client(machineA, 10, { 10: 1 }));
    await breakLock(files, DIR);
    await acquireLock(files, DIR, taker('theirs'), () => {}, client(machineB, 20, { 20: 1 }));
    await mine.release();
    expect(ownerJson(files).runId).toBe('theirs');
    expect(notices).toEqual([expect.stringMatching(/lock of the vault was broken while it ran \(it is now held by push by pid 20 on debian/)]);
  });

  it('our own lock is removed at release', async () => {
    const files = new MemoryDir(DIR);
    const mine = await acquireLock(files, DIR, taker('mine'), () => {}, client(machineA, 10, { 10: 1 }));
    await mine.release();
    expect(files.dirs.has(`${DIR}/vault.lock`)).toBe(false);
  });
});

describe('read locks', () => {
  it("a reader of another machine of the same name stops a writer even with its pid dead here; this machine's dead reader is removed", async () => {
    const files = new MemoryDir(DIR);
    const reader = await acquireSharedLock(files, DIR, { ...taker('reader'), command: 'mount' }, () => {}, client(machineB, 10, { 10: 1 }));
    expect(files.dirs.has(`${DIR}/vault.lock`)).toBe(false);
    const writer = client(machineA, 11, { 11: 1 });
    const lock = await acquireLock(files, DIR, taker('w'), () => {}, writer);
    await expect(assertNoReaders(files, DIR, () => {}, writer)).rejects.toThrow(/being read \(mount by pid 10 on debian.*a machine of the same name/);
    await lock.release();
    // Machine B itself, after the reader died, removes it.
    const notices: string[] = [];
    const b = client(machineB, 12, { 12: 1 });
    const lockB = await acquireLock(files, DIR, taker('w2'), () => {}, b);
    await assertNoReaders(files, DIR, (m) => notices.push(m), b);
    expect(notices).toEqual([expect.stringMatching(/^Removing a stale read lock left by pid 10 on this machine/)]);
    expect(files.files.has(reader.file)).toBe(false);
    await lockB.release();
  });

  it('a dead reader of this machine that knew no vault id (a restore configured by flags) is recognised by the vault\'s writer', async () => {
    const files = new MemoryDir(DIR);
    const reader = await acquireSharedLock(files, DIR, { vaultId: 'unknown (restore from flags)', runId: 'r', command: 'restore' }, () => {}, client(machineA, 10, { 10: 1 }));
    const writer = client(machineA, 11, { 11: 1 });
    const lock = await acquireLock(files, DIR, taker('w'), () => {}, writer);
    await assertNoReaders(files, DIR, () => {}, writer);
    expect(files.files.has(reader.file)).toBe(false);
    await lock.release();
  });

  it('a read lock that is no longer ours is left alone at release', async () => {
    const files = new MemoryDir(DIR);
    const notices: string[] = [];
    const reader = await acquireSharedLock(files, DIR, taker('reader'), (m) => notices.push(m), client(machineA, 10, { 10: 1 }));
    files.files.set(reader.file, Buffer.from(JSON.stringify({ runId: 'someone-else' })));
    await reader.release();
    expect(files.files.has(reader.file)).toBe(true);
    expect(notices).toEqual([expect.stringMatching(/read lock of the vault was removed while it ran/)]);
  });
});
