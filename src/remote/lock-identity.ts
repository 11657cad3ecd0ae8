import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { localProcesses, type ProcessFacts } from '../proc.js';

/**
 * Who holds a lock, precisely enough to prove that a lock is a crash's
 * leftover. A host name proves nothing (two machines called `debian` are
 * common), so a lock records this machine and this boot as keyed hashes
 * (the host sees neither /etc/machine-id nor the boot id, and cannot link
 * one machine's locks across vaults) and the process with its start time.
 */
export interface LockIdentity {
  host: string;
  /** HMAC-SHA256(key = /etc/machine-id, "sshvault lock " + vault id); absent where the machine has no id. */
  machine?: string;
  /** The same keyed with this boot's id. */
  boot?: string;
  pid: number;
  /** Clock ticks from boot to the process's start. */
  pidStart?: number;
}

/**
 * Test-only: the end-to-end tests run two "machines" on one host by giving
 * the second another machine-id file. Not for users: two clients sharing a
 * machine id would break each other's live locks.
 */
function machineIdFile(): string {
  return process.env.SSHVAULT_TEST_MACHINE_ID_FILE || '/etc/machine-id';
}

function keyedHash(keyFile: string, vaultId: string): string | undefined {
  let key: string;
  try {
    key = readFileSync(keyFile, 'utf8').trim();
  } catch {
    return undefined;
  }
  if (!key) return undefined;
  return createHmac('sha256', key).update(`sshvault lock ${vaultId}`).digest('hex');
}

export function thisProcess(vaultId: string, proc: ProcessFacts = localProcesses): LockIdentity {
  return {
    host: hostname(),
    machine: keyedHash(machineIdFile(), vaultId),
    boot: keyedHash('/proc/sys/kernel/random/boot_id', vaultId),
    pid: process.pid,
    pidStart: proc.start(process.pid),
  };
}

/**
 * A lock is a leftover only when it provably belongs to this machine and
 * this boot and its process is provably over: its pid is dead or now names a
 * process started at another time. Machine ids get cloned with disk images,
 * so another boot proves nothing; a lock from before a reboot is known as
 * ours by the run id this state directory recorded (own-locks.ts). Anything
 * else, a lock of an older sshvault without identity included, is held.
 */
export function isStale(owner: Partial<LockIdentity>, here: LockIdentity, proc: ProcessFacts): boolean {
  if (!here.machine || owner.machine !== here.machine) return false;
  if (!here.boot || owner.boot !== here.boot) return false;
  if (typeof owner.pid !== 'number') return false;
  if (!proc.alive(owner.pid)) return true;
  const start = proc.start(owner.pid);
  return typeof owner.pidStart === 'number' && start !== undefined && start !== owner.pidStart;
}
