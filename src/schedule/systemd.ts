import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { run, succeeds } from '../exec.js';
import { parseUnit, unitName } from './units.js';

/** sd_booted(3): systemd is the init system exactly when this directory exists. */
export function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}

/** Root gets system units (they run whether or not anyone is logged in); anyone else user units. */
export function isSystem(): boolean {
  return process.getuid?.() === 0;
}

export function unitDir(system: boolean): string {
  if (system) return '/etc/systemd/system';
  return join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'systemd', 'user');
}

function systemctl(system: boolean, args: string[]) {
  return run('systemctl', [...(system ? [] : ['--user']), ...args], { timeoutMs: 60_000 });
}

export async function installUnits(vault: string, system: boolean, service: string, timer: string): Promise<string[]> {
  const dir = unitDir(system);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const files = [join(dir, unitName(vault, 'service')), join(dir, unitName(vault, 'timer'))];
  await writeFile(files[0], service, { mode: 0o644 });
  await writeFile(files[1], timer, { mode: 0o644 });
  await systemctl(system, ['daemon-reload']);
  await systemctl(system, ['enable', '--now', unitName(vault, 'timer')]);
  return files;
}

/** Stops and removes both units; what systemd keeps about them (enablement links, failed state) goes too. */
export async function removeUnits(vault: string, system: boolean): Promise<string[]> {
  const dir = unitDir(system);
  const files = [join(dir, unitName(vault, 'timer')), join(dir, unitName(vault, 'service'))].filter((f) => existsSync(f));
  if (files.length) await systemctl(system, ['disable', '--now', unitName(vault, 'timer')]).catch(() => undefined);
  for (const f of files) await rm(f, { force: true });
  if (files.length) {
    await systemctl(system, ['daemon-reload']);
    await succeeds('systemctl', [...(system ? [] : ['--user']), 'reset-failed', unitName(vault, 'service'), unitName(vault, 'timer')]);
  }
  return files;
}

export interface InstalledSchedule {
  vault: string;
  every: string;
  timerFile: string;
  /** From systemd, when it runs here: ISO times or undefined. */
  last?: string;
  next?: string;
}

/** systemctl show prints times like "Mon 2026-11-30 05:00:12 UTC", or "n/a". */
export function parseShowTime(value: string | undefined): string | undefined {
  if (!value || value === 'n/a' || value === '0') return undefined;
  const m = /(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?: (\S+))?/.exec(value);
  if (!m) return undefined;
  const d = new Date(`${m[1]}T${m[2]}${m[3] === 'UTC' || !m[3] ? 'Z' : ''}`);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export async function installedSchedules(system: boolean): Promise<InstalledSchedule[]> {
  const dir = unitDir(system);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => /^sshvault-.+\.timer$/.test(n)).sort();
  const out: InstalledSchedule[] = [];
  for (const n of names) {
    const timerFile = join(dir, n);
    const unit = parseUnit(await readFile(timerFile, 'utf8'));
    const entry: InstalledSchedule = { vault: n.slice('sshvault-'.length, -'.timer'.length), every: unit.Timer?.OnCalendar?.[0] ?? '?', timerFile };
    if (systemdRunning()) {
      const shown = await systemctl(system, ['show', n, '--property=LastTriggerUSec,NextElapseUSecRealtime']).catch(() => undefined);
      const props = Object.fromEntries((shown?.stdout ?? '').split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      entry.last = parseShowTime(props.LastTriggerUSec);
      entry.next = parseShowTime(props.NextElapseUSecRealtime);
    }
    out.push(entry);
  }
  return out;
}
