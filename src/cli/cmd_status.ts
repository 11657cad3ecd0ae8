import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { vaultPaths } from '../config/paths.js';
import { DEFAULT_MAX_AGE, listVaults, loadConfig, resolveVaultName } from '../config/vault-config.js';
import { ExitCode } from '../errors.js';
import { installedSchedules, isSystem } from '../schedule/systemd.js';
import type { VaultHealth } from '../snapshot/health.js';
import type { RunRecord } from '../snapshot/runs.js';
import { paint } from '../ui/color.js';
import { info } from '../ui/console.js';
import { formatBytes } from '../ui/format.js';
import { formatAge, formatTime } from '../ui/time.js';
import { healthOf, staleLine } from './staleness.js';
import { action } from './action.js';
import { vaultArg, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) => vaultArg(y).example('$0 status || echo "backups are stale"', 'for a monitoring check');

type StatusArgs = ArgsOf<typeof builder>;

export const statusCommand: CommandOf<typeof builder> = {
  command: 'status [vault]',
  describe: 'is each vault keeping up: last success and failure, schedule, free space; exit 9 when stale',
  builder,
  handler: action('status', cmdStatus, { staleWarning: false }),
};

/** Disk space the block cache really takes: its data file is sparse. */
async function cacheBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st?.isFile()) total += st.blocks * 512;
  }
  return total;
}

interface VaultStatus {
  vault: string;
  stale: boolean;
  maxAge: string;
  lastSuccess?: { finished: string; snapshot?: string; ageSeconds: number };
  lastFailure?: { finished: string; exitCode: number; message?: string };
  schedule?: { every: string; last?: string; next?: string };
  remoteFree?: { bytes: number; at: string };
  cacheBytes: number;
}

function statusOf(vault: string, maxAge: string, h: VaultHealth, schedule: VaultStatus['schedule'], cache: number): VaultStatus {
  const s: RunRecord | undefined = h.lastSuccess;
  const f: RunRecord | undefined = h.lastFailure;
  return {
    vault,
    stale: h.stale,
    maxAge,
    ...(s ? { lastSuccess: { finished: s.finished, snapshot: s.snapshot, ageSeconds: Math.round(h.ageMs! / 1000) } } : {}),
    ...(f ? { lastFailure: { finished: f.finished, exitCode: f.exitCode, message: f.error } } : {}),
    ...(schedule ? { schedule } : {}),
    ...(h.remoteFree ? { remoteFree: h.remoteFree } : {}),
    cacheBytes: cache,
  };
}

function render(s: VaultStatus, h: VaultHealth): string {
  const state = s.stale ? paint.red('STALE') : paint.green('ok');
  const lines = [`vault ${s.vault}: ${state}${s.stale ? ` (${staleLine(s.vault, h, s.maxAge)})` : ''}`];
  const row = (k: string, v: string) => lines.push(`  ${k.padEnd(13)} ${v}`);
  row('last success', s.lastSuccess ? `${formatTime(s.lastSuccess.finished)}, ${formatAge(s.lastSuccess.ageSeconds * 1000)} ago (snapshot ${s.lastSuccess.snapshot ?? '-'})` : 'never');
  if (s.lastFailure) row('last failure', `${formatTime(s.lastFailure.finished)}, exit ${s.lastFailure.exitCode}: ${s.lastFailure.message ?? '-'}`);
  row('max age', s.maxAge);
  row('schedule', s.schedule ? `${s.schedule.every}${s.schedule.last ? `, last ${formatTime(s.schedule.last)}` : ''}${s.schedule.next ? `, next ${formatTime(s.schedule.next)}` : ''}` : "none ('sshvault schedule' makes one)");
  row('remote free', s.remoteFree ? `${formatBytes(s.remoteFree.bytes)} as of ${formatTime(s.remoteFree.at)}` : 'not known (the server does not report it, or no run asked yet)');
  row('block cache', formatBytes(s.cacheBytes));
  return lines.join('\n');
}

/** `sshvault status [<vault>]`: is each vault keeping up? Exit 9 when one is stale, for monitoring. */
export async function cmdStatus(a: StatusArgs): Promise<number> {
  const names = a.vault ? [await resolveVaultName(a.vault)] : await listVaults();
  const schedules = await installedSchedules(isSystem());
  const out: { status: VaultStatus; health: VaultHealth }[] = [];
  for (const name of names) {
    const config = await loadConfig(name);
    const paths = vaultPaths(name);
    const health = await healthOf(config, paths.runsFile);
    const sch = schedules.find((x) => x.vault === name);
    const maxAge = config.maxAge ?? DEFAULT_MAX_AGE;
    out.push({ status: statusOf(name, maxAge, health, sch && { every: sch.every, last: sch.last, next: sch.next }, await cacheBytes(paths.blockCache)), health });
  }
  if (a.json) info(JSON.stringify(a.vault ? out[0]?.status : out.map((o) => o.status), null, 2));
  else info(out.length ? out.map((o) => render(o.status, o.health)).join('\n\n') : "No vault is configured; create one with 'sshvault init'.");
  return out.some((o) => o.status.stale) ? ExitCode.stale : 0;
}
