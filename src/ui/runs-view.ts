import { paint } from './color.js';
import type { Catalog } from '../snapshot/catalog.js';
import type { RunRecord } from '../snapshot/runs.js';
import { formatBytes, formatDuration, formatRatio, linkSeconds, parseLink, plural } from './format.js';
import { formatTime } from './time.js';
import { renderTable } from './table.js';

export const DEFAULT_LINK = '10mbit';

function onLink(up: number, down: number, link: string): string {
  const l = parseLink(link);
  return formatDuration(linkSeconds(up, down, l.upBps, l.downBps) * 1000);
}

/**
 * Upload beyond the changed file data: filesystem metadata (directories and
 * inode tables that --link-dest rewrites), LUKS and SSH framing. It grows with
 * the number of tree entries, so it is also shown per entry.
 */
function overhead(r: RunRecord): [string, string] {
  if (r.command !== 'push' || !r.ok) return ['-', '-'];
  const extra = Math.max(0, r.upBytes - r.changedBytes);
  const entries = r.rsync ? r.rsync.files : 0;
  return [formatBytes(extra), entries ? `${Math.round(extra / entries)} B` : '-'];
}

function ratio(bytes: number, changed: number): string {
  return changed > 0 ? formatRatio(bytes / changed) : '-';
}

/** The seed's traffic table (docs/design.md, "Goals and threat model"), made for every run: bytes per phase and what they cost against the change. */
export function renderRunsTable(runs: RunRecord[], link: string): string {
  const headers = ['started', 'command', 'snapshot', 'phase', 'up', 'down', 'time', 'changed', 'overhead', 'per entry', 'up/chg', 'down/chg', `on ${link}`];
  const rows: (string | number)[][] = [];
  for (const r of runs) {
    const status = r.ok ? r.command : paint.red(`${r.command} (failed)`);
    rows.push([
      formatTime(r.started),
      status,
      r.snapshot ?? '-',
      'all',
      formatBytes(r.upBytes),
      formatBytes(r.downBytes),
      formatDuration(r.phases.reduce((t, p) => t + p.ms, 0)),
      r.command === 'push' ? formatBytes(r.changedBytes) : '-',
      ...overhead(r),
      ratio(r.upBytes, r.changedBytes),
      ratio(r.downBytes, r.changedBytes),
      onLink(r.upBytes, r.downBytes, link),
    ]);
    for (const p of r.phases) {
      rows.push(['', '', '', `  ${p.name}`, formatBytes(p.upBytes), formatBytes(p.downBytes), formatDuration(p.ms), '', '', '', '', '', '']);
    }
  }
  const up = runs.reduce((t, r) => t + r.upBytes, 0);
  const down = runs.reduce((t, r) => t + r.downBytes, 0);
  const changed = runs.reduce((t, r) => t + r.changedBytes, 0);
  const ms = runs.reduce((t, r) => t + r.phases.reduce((a, p) => a + p.ms, 0), 0);
  const footer = [plural(runs.length, 'run'), '', '', 'total', formatBytes(up), formatBytes(down), formatDuration(ms), formatBytes(changed), '', '', ratio(up, changed), ratio(down, changed), onLink(up, down, link)];
  return renderTable(headers, rows, {
    align: ['left', 'left', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
    footer,
  });
}

/** The one-screen summary at the end of a push; of a failed one too, for the on-failure hook. */
export function renderRunSummary(r: RunRecord, catalog?: Catalog, link = DEFAULT_LINK): string {
  const snap = catalog?.snapshots.find((s) => s.name === r.snapshot);
  const lines = [
    r.ok
      ? paint.green(`Snapshot ${r.snapshot} complete`) + (snap ? `: ${snap.files} files, ${formatBytes(snap.bytes)}` : '')
      : paint.red(`Push of vault ${r.vault} failed (exit ${r.exitCode}): ${r.error ?? 'unknown error'}`) + (r.snapshot ? `\nsnapshot ${r.snapshot} stays partial; the next push resumes it` : ''),
    '',
    renderTable(
      ['phase', 'up', 'down', 'time'],
      r.phases.map((p) => [p.name, formatBytes(p.upBytes), formatBytes(p.downBytes), formatDuration(p.ms)]),
      {
        align: ['left', 'right', 'right', 'right'],
        footer: ['total', formatBytes(r.upBytes), formatBytes(r.downBytes), formatDuration(r.phases.reduce((t, p) => t + p.ms, 0))],
      },
    ),
    '',
    `changed ${formatBytes(r.changedBytes)}; sent ${ratio(r.upBytes, r.changedBytes)} and received ${ratio(r.downBytes, r.changedBytes)} of that on the wire; on a ${link} link this run takes ${onLink(r.upBytes, r.downBytes, link)}`,
    ...(r.cache?.hitBytes ? [`the local block cache answered ${formatBytes(r.cache.hitBytes)} of reads, ${formatBytes(r.cache.missBytes)} came from the remote`] : []),
  ];
  return lines.join('\n');
}
