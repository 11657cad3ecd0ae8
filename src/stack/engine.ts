import { existsSync } from 'node:fs';
import type { EngineChoice } from '../config/vault-config.js';
import { UsageError } from '../errors.js';
import { succeeds } from '../exec.js';

export type Engine = 'kernel' | 'userspace';

export interface EngineDecision {
  engine: Engine;
  reason: string;
}

/** Whether dm-crypt can run here: the device-mapper control node and the dm_crypt module. */
export async function deviceMapperStatus(): Promise<{ ok: boolean; reason: string }> {
  if (!existsSync('/dev/mapper/control')) return { ok: false, reason: 'no device-mapper (/dev/mapper/control is missing)' };
  if (existsSync('/sys/module/dm_crypt') || (await succeeds('modprobe', ['dm_crypt']))) {
    return { ok: true, reason: 'device-mapper and dm-crypt are available' };
  }
  return { ok: false, reason: 'device-mapper is present but the dm_crypt module cannot be loaded' };
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
