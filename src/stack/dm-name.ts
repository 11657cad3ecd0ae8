import { createHash } from 'node:crypto';
import type { StackRecord } from './stack.js';

const MAPPER = '/dev/mapper/';

/**
 * The dm-crypt mapping of a vault opened from one state directory. Two
 * users, or two XDG_STATE_HOMEs, may each have a vault of the same name: the
 * state directory's hash keeps their mappings apart, so one's recovery never
 * closes the other's live mapping.
 */
export function mappingName(vault: string, stateDir: string): string {
  return `sshvault-${vault}-${createHash('sha256').update(stateDir).digest('hex').slice(0, 8)}`;
}

/**
 * Of the mappings that exist, those a dead run of this vault and state
 * directory may have left: its own name, and any name its stack.json
 * recorded as opened (a mapping made before names carried the hash).
 */
export function leftoverMappings(existing: readonly string[], vault: string, stateDir: string, previous?: StackRecord): string[] {
  const ours = new Set([mappingName(vault, stateDir)]);
  for (const o of previous?.opened ?? []) {
    if (o.layer === 'luks-kernel' && o.gave.startsWith(MAPPER)) ours.add(o.gave.slice(MAPPER.length));
  }
  return existing.filter((n) => ours.has(n));
}
