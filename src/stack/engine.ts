import type { EngineChoice } from '../config/vault-config.js';
import { CommandError, UsageError } from '../errors.js';
import { run } from '../exec.js';

export type Engine = 'kernel' | 'userspace';

export interface EngineDecision {
  engine: Engine;
  reason: string;
}

export interface DeviceMapperStatus {
  ok: boolean;
  reason: string;
}

/** What a probe command said: its first line of complaint, which names the cause ("open failed: No such device"). */
async function attempt(file: string, args: string[]): Promise<{ ok: boolean; stdout: string; words: string }> {
  try {
    return { ok: true, stdout: (await run(file, args)).stdout, words: '' };
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    const first = e.stderr.split('\n').map((l) => l.trim()).find(Boolean);
    return { ok: false, stdout: '', words: first ?? e.message };
  }
}

function listsCrypt(targets: string): boolean {
  return targets.split('\n').some((l) => l.trim().split(/\s+/)[0] === 'crypt');
}

/**
 * Whether dm-crypt can run here, found by asking the kernel, not by looking
 * for /dev/mapper/control: that node exists on machines whose kernel has no
 * device-mapper driver behind it.
 */
export async function deviceMapperStatus(): Promise<DeviceMapperStatus> {
  const version = await attempt('dmsetup', ['version']);
  if (!version.ok) {
    if (/could not start/.test(version.words)) {
      return { ok: false, reason: 'device-mapper cannot be probed: dmsetup is not installed (apt-get install dmsetup)' };
    }
    return { ok: false, reason: `the kernel has no device-mapper driver (dmsetup version: ${version.words})` };
  }
  if (listsCrypt((await attempt('dmsetup', ['targets'])).stdout)) return { ok: true, reason: 'device-mapper and dm-crypt are available' };
  const load = await attempt('modprobe', ['dm_crypt']);
  if (load.ok && listsCrypt((await attempt('dmsetup', ['targets'])).stdout)) {
    return { ok: true, reason: 'device-mapper and dm-crypt are available' };
  }
  return { ok: false, reason: `device-mapper works but the dm-crypt target is missing (modprobe dm_crypt: ${load.words || 'loaded, but no crypt target'})` };
}

export async function chooseEngine(choice: EngineChoice): Promise<EngineDecision> {
  if (choice === 'userspace') return { engine: 'userspace', reason: 'chosen with --engine userspace' };
  const dm = await deviceMapperStatus();
  if (choice === 'kernel') {
    if (!dm.ok) throw new UsageError(`the kernel engine cannot run here: ${dm.reason}; use --engine userspace`);
    return { engine: 'kernel', reason: 'chosen with --engine kernel' };
  }
  return dm.ok ? { engine: 'kernel', reason: dm.reason } : { engine: 'userspace', reason: `${dm.reason}, so qemu-nbd's LUKS driver does the decryption` };
}
