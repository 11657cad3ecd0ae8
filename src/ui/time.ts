/**
 * Times for people and scripts alike: ISO 8601, in UTC by default (what the
 * snapshot names use), or in this machine's zone with `--local-time`. Never a
 * locale's own format: `list` output must read the same on every machine.
 */
let local = false;

export function useLocalTime(on: boolean): void {
  local = on;
}

function pad(n: number, width = 2): string {
  return String(Math.abs(n)).padStart(width, '0');
}

export function formatTime(when: Date | string, opts: { local?: boolean } = {}): string {
  const d = typeof when === 'string' ? new Date(when) : when;
  if (Number.isNaN(d.getTime())) return '-';
  if (!(opts.local ?? local)) return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const offset = -d.getTimezoneOffset();
  const zone = `${offset >= 0 ? '+' : '-'}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone}`;
}

/** "3d 4h", "5h 12m", "40m", "12s": how long ago something was, at the precision a person wants. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 0) return `in ${formatAge(-ms)}`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
