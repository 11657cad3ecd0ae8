/**
 * Numbers for people: sizes in IEC units (what disks and `ls -h` use), link
 * rates in SI bits per second (what ISPs and `tc` use).
 */

const IEC_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** Three significant digits, without trailing zeros. */
function significant3(x: number): string {
  const digits = x >= 100 ? 0 : x >= 10 ? 1 : 2;
  return String(Number(x.toFixed(digits)));
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  if (n < 0) return `-${formatBytes(-n)}`;
  let unit = 0;
  let value = n;
  // Compare the rounded value: 1023.9 KiB would print as "1024 KiB" rather than "1 MiB".
  while (unit < IEC_UNITS.length - 1 && Number(significant3(value)) >= 1024) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? String(Math.round(value)) : significant3(value)} ${IEC_UNITS[unit]}`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (Math.round(ms) < 1000) return `${Math.round(ms)} ms`;
  const tenths = Math.round(ms / 100);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, '0')}s`;
  const minutes = Math.round(ms / 60_000);
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

const BINARY_POWER: Record<string, number> = { '': 0, k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };

/** `20G`, `512M`, `1.5T`, `100k`, `20GiB`, `4096`: binary multiples, so 1G is 1024^3 bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*(?:([kmgtpe])(i?b)?|b)?$/i.exec(s.trim());
  if (!m) throw new Error(`'${s}' is not a size: write a number with an optional K, M, G, T, P or E suffix, e.g. 20G`);
  const [, number, prefix = '', byteSuffix] = m;
  if (byteSuffix?.toLowerCase() === 'b') {
    // "GB" means 10^9 to some tools and 2^30 to others; make the user pick.
    throw new Error(`'${s}' is ambiguous: write ${number}${prefix.toUpperCase()} or ${number}${prefix.toUpperCase()}iB (both binary, 1${prefix.toUpperCase()} = 1024^${BINARY_POWER[prefix.toLowerCase()]} bytes)`);
  }
  const bytes = Math.round(Number(number) * 1024 ** BINARY_POWER[prefix.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) throw new Error(`'${s}' is too large`);
  return bytes;
}

const SI_POWER: Record<string, number> = { '': 0, k: 1, m: 2, g: 3, t: 4 };

/** Bits per second: `10mbit`, `50Mbit`, `1gbit`, `100kbit`, `2.5mbit`, and `10M` for 10 Mbit/s. */
export function parseLinkRate(s: string): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([kmgt])?(bits?(?:\/s)?|bps|b\/s|b)?$/i.exec(s.trim());
  // A bare number could mean bits or bytes, a capital B means bytes: both are slips worth a question.
  if (!m || !(m[2] || m[3]) || /^B(\/s|ps)?$/.test(m[3] ?? '')) {
    throw new Error(`'${s}' is not a link rate: write bits per second such as 10mbit, 100kbit, 1gbit or 10M`);
  }
  const bps = Number(m[1]) * 1000 ** SI_POWER[(m[2] ?? '').toLowerCase()]!;
  if (!(bps > 0)) throw new Error(`a link rate must be above 0, not '${s}'`);
  return bps;
}

/**
 * A link as ISPs write it, down/up: `50/10mbit`, `50mbit/10mbit`, `1gbit/100M`;
 * one rate means the same both ways. A side without a unit borrows the other's.
 */
export function parseLink(s: string): { downBps: number; upBps: number } {
  const parts = s.split('/').map((p) => p.trim());
  // "b/s" and "bit/s" contain a slash of their own; rejoin them with their number.
  const sides = parts.reduce<string[]>((acc, p) => {
    if (/^s$/i.test(p) && acc.length) acc[acc.length - 1] += `/${p}`;
    else acc.push(p);
    return acc;
  }, []);
  if (sides.length === 1) {
    const bps = parseLinkRate(sides[0]!);
    return { downBps: bps, upBps: bps };
  }
  if (sides.length !== 2) throw new Error(`'${s}' is not a link: write one rate (10mbit) or down/up (50/10mbit)`);
  const unit = (side: string) => side.replace(/^[\d.\s]+/, '');
  const [down, up] = sides as [string, string];
  return {
    downBps: parseLinkRate(unit(down) ? down : down + unit(up)),
    upBps: parseLinkRate(unit(up) ? up : up + unit(down)),
  };
}

/** Up and down share no capacity, so they proceed in parallel and the slower direction sets the time. */
export function linkSeconds(upBytes: number, downBytes: number, upBps: number, downBps: number): number {
  return Math.max((upBytes * 8) / upBps, (downBytes * 8) / downBps);
}

/** Bytes on the wire per changed byte: `2.6x`, `0.05x`. */
export function formatRatio(x: number): string {
  if (!Number.isFinite(x)) return '-';
  // Scientific notation would read as noise; below this the ratio is nil for all practical purposes.
  if (x > 0 && x < 0.001) return '<0.001x';
  return `${Math.abs(x) >= 100 ? Math.round(x) : Number(x.toPrecision(2))}x`;
}

/** "1 run", "2 runs": a count with its noun (regular plurals only). */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** `90m`, `36h`, `3d`, `1w`, or a number of seconds: the config's `maxAge`. Returns milliseconds. */
export function parseDuration(s: string | number): number {
  if (typeof s === 'number') {
    if (!Number.isFinite(s) || s <= 0) throw new Error(`${s} is not a positive number of seconds`);
    return s * 1000;
  }
  const m = /^(\d+(?:\.\d+)?)\s*([smhdw])$/i.exec(s.trim());
  if (!m) throw new Error(`'${s}' is not a duration: write a number with s, m, h, d or w, e.g. 3d`);
  return Number(m[1]) * DURATION_UNITS[m[2].toLowerCase()]! * 1000;
}
