import type { RunRecord } from '../snapshot/runs.js';
import { formatBytes } from './format.js';
import { formatTime } from './time.js';

/**
 * `stats --plot`: bytes up and down of every run over time, the upload split
 * into changed data and overhead, with what the run costs on a 10 Mbit link
 * on the right-hand axis. Self-contained SVG: no scripts, no web fonts, so it
 * opens anywhere and can be mailed.
 */
const W = 960;
const H = 480;
const M = { left: 80, right: 80, top: 48, bottom: 64 };
const LINK_BPS = 10e6;
const COLORS = { changed: '#2b7bb9', overhead: '#f0a030', down: '#8c8c8c', axis: '#333333', grid: '#e4e4e4' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round step for about `count` ticks up to `max`: 1, 2 or 5 times a power of ten. */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
}

function secondsLabel(s: number): string {
  if (s < 60) return `${Number(s.toFixed(1))} s`;
  if (s < 3600) return `${Number((s / 60).toFixed(1))} min`;
  return `${Number((s / 3600).toFixed(1))} h`;
}

export function plotRuns(runs: RunRecord[], vault: string): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const t = runs.map((r) => new Date(r.started).getTime());
  const t0 = Math.min(...t);
  const t1 = Math.max(...t);
  const span = t1 - t0 || 1;
  const barW = Math.max(2, Math.min(18, (pw / Math.max(runs.length, 1)) * 0.35));
  const x = (ms: number) => M.left + barW + ((ms - t0) / span) * (pw - 2 * barW - barW);
  // Up above the middle line, down below it, on one byte scale.
  const maxBytes = Math.max(1, ...runs.map((r) => Math.max(r.upBytes, r.downBytes)));
  // Round steps in the unit the labels use (KiB, MiB, ...), so ticks read 10 MiB, not 9.54 MiB.
  const unit = 1024 ** Math.max(0, Math.floor(Math.log(maxBytes) / Math.log(1024)));
  const step = niceStep(maxBytes / unit, 4) * unit;
  const top = Math.ceil(maxBytes / step) * step;
  const mid = M.top + ph / 2;
  const y = (bytes: number) => (bytes / top) * (ph / 2);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>sshvault ${esc(vault)}: bytes per run</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${M.left}" y="24" font-size="16" fill="${COLORS.axis}">sshvault ${esc(vault)}: bytes up (changed data + overhead) and down per run</text>`);
  for (let v = -top; v <= top; v += step) {
    const yy = mid - (v / top) * (ph / 2);
    const bytes = Math.abs(v);
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}" stroke="${v === 0 ? COLORS.axis : COLORS.grid}"/>`);
    out.push(`<text class="bytes-tick" x="${M.left - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end" fill="${COLORS.axis}">${v < 0 ? '-' : ''}${esc(formatBytes(bytes))}</text>`);
    out.push(`<text class="link-tick" x="${W - M.right + 6}" y="${(yy + 4).toFixed(1)}" fill="${COLORS.axis}">${esc(secondsLabel((bytes * 8) / LINK_BPS))}</text>`);
  }
  out.push(`<text x="16" y="${M.top + ph / 4}" transform="rotate(-90 16 ${M.top + ph / 4})" text-anchor="middle" fill="${COLORS.axis}">up</text>`);
  out.push(`<text x="16" y="${M.top + (3 * ph) / 4}" transform="rotate(-90 16 ${M.top + (3 * ph) / 4})" text-anchor="middle" fill="${COLORS.axis}">down</text>`);
  out.push(`<text x="${W - 14}" y="${mid}" transform="rotate(90 ${W - 14} ${mid})" text-anchor="middle" fill="${COLORS.axis}">time on a 10 Mbit/s link</text>`);
  for (const [i, r] of runs.entries()) {
    const cx = x(t[i]!);
    const changed = Math.min(r.changedBytes, r.upBytes);
    const overhead = r.upBytes - changed;
    const label = `${r.command} ${formatTime(r.started)}${r.ok ? '' : ' (failed)'}: up ${formatBytes(r.upBytes)} (changed ${formatBytes(changed)}), down ${formatBytes(r.downBytes)}`;
    out.push(`<g class="run"><title>${esc(label)}</title>`);
    out.push(`<rect class="changed" x="${(cx - barW / 2).toFixed(1)}" y="${(mid - y(changed)).toFixed(1)}" width="${barW.toFixed(1)}" height="${y(changed).toFixed(1)}" fill="${COLORS.changed}"/>`);
    out.push(`<rect class="overhead" x="${(cx - barW / 2).toFixed(1)}" y="${(mid - y(changed) - y(overhead)).toFixed(1)}" width="${barW.toFixed(1)}" height="${y(overhead).toFixed(1)}" fill="${COLORS.overhead}"/>`);
    out.push(`<rect class="down" x="${(cx - barW / 2).toFixed(1)}" y="${mid.toFixed(1)}" width="${barW.toFixed(1)}" height="${y(r.downBytes).toFixed(1)}" fill="${COLORS.down}"${r.ok ? '' : ' stroke="#c00000"'}/>`);
    out.push('</g>');
  }
  const ticks = Math.min(runs.length, 6);
  for (let k = 0; k < ticks; k++) {
    const ms = ticks === 1 ? t0 : t0 + (span * k) / (ticks - 1);
    out.push(`<text x="${x(ms).toFixed(1)}" y="${H - M.bottom + 18}" text-anchor="middle" fill="${COLORS.axis}">${esc(formatTime(new Date(ms)).slice(0, 16).replace('T', ' '))}</text>`);
  }
  const legend: [string, string][] = [
    [COLORS.changed, 'changed data (up)'],
    [COLORS.overhead, 'overhead (up)'],
    [COLORS.down, 'down'],
  ];
  legend.forEach(([color, text], i) => {
    const lx = M.left + i * 180;
    out.push(`<rect x="${lx}" y="${H - 24}" width="12" height="12" fill="${color}"/><text x="${lx + 18}" y="${H - 14}" fill="${COLORS.axis}">${esc(text)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
