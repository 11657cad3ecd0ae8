import type { VaultConfig } from '../config/vault-config.js';
import { DEFAULT_MAX_AGE } from '../config/vault-config.js';
import { vaultHealth, type VaultHealth } from '../snapshot/health.js';
import { readRuns } from '../snapshot/runs.js';
import { parseDuration } from '../ui/format.js';
import { formatAge } from '../ui/time.js';
import { warn } from '../ui/console.js';

/** Commands run by a person say in one line when the vault's backups have stopped keeping up; scripts (--json, --quiet) are spared. */
let wanted = false;

export function wantStaleWarning(on: boolean): void {
  wanted = on;
}

export async function healthOf(config: Pick<VaultConfig, 'maxAge'>, runsFile: string, now = new Date()): Promise<VaultHealth> {
  return vaultHealth(await readRuns(runsFile), now, parseDuration(config.maxAge ?? DEFAULT_MAX_AGE));
}

export function staleLine(vault: string, h: VaultHealth, maxAge: string): string {
  const limit = maxAge;
  if (h.ageMs === undefined) return `vault '${vault}' has no successful push yet (maxAge ${limit})`;
  return `vault '${vault}' is stale: its last successful push was ${formatAge(h.ageMs)} ago (maxAge ${limit})`;
}

export async function warnIfStale(vault: string, config: Pick<VaultConfig, 'maxAge'>, runsFile: string): Promise<void> {
  if (!wanted) return;
  const h = await healthOf(config, runsFile);
  if (h.stale) warn(staleLine(vault, h, config.maxAge ?? DEFAULT_MAX_AGE));
}
