/** Plain-text tables for the terminal: columns sized to their content, two spaces apart. */

export type Align = 'left' | 'right';

export interface TableOptions {
  /** Per column; a column left out is right-aligned when all its cells are numbers, else left-aligned. */
  align?: Align[];
  footer?: (string | number)[];
  /** A GitHub markdown table (pipes, alignment colons in the rule): how bench results go into the READMEs. */
  markdown?: boolean;
}

const GAP = '  ';
// CSI sequences: colours from chalk and any other terminal control that takes no room on screen.
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]/g;

/** Width on screen: escape codes take none, and an astral character (emoji) counts once, not as two UTF-16 units. */
export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

export function visibleWidth(s: string): number {
  return [...s.replace(ANSI, '')].length;
}

function pad(cell: string, width: number, align: Align): string {
  const fill = ' '.repeat(width - visibleWidth(cell));
  return align === 'right' ? fill + cell : cell + fill;
}

function defaultAlign(rows: (string | number)[][], column: number): Align {
  const cells = rows.map((r) => r[column]).filter((c) => c !== undefined && c !== '');
  return cells.length > 0 && cells.every((c) => typeof c === 'number') ? 'right' : 'left';
}

export function renderTable(headers: string[], rows: (string | number)[][], opts: TableOptions = {}): string {
  const all = [headers, ...rows, ...(opts.footer ? [opts.footer] : [])];
  for (const r of all) {
    if (r.length > headers.length) throw new Error(`table row has ${r.length} cells for ${headers.length} columns: ${r.join(' | ')}`);
  }
  const text = all.map((r) => headers.map((_, i) => String(r[i] ?? '')));
  const widths = headers.map((_, i) => Math.max(...text.map((r) => visibleWidth(r[i]!))));
  const aligns = headers.map((_, i) => opts.align?.[i] ?? defaultAlign(rows, i));
  const padded = (cells: string[]) => cells.map((c, i) => pad(c, widths[i]!, aligns[i]!));
  const line = opts.markdown ? (cells: string[]) => `| ${padded(cells).join(' | ')} |` : (cells: string[]) => padded(cells).join(GAP).trimEnd();
  const rule = opts.markdown
    ? `|${widths.map((w, i) => (aligns[i] === 'left' ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`
    : widths.map((w) => '-'.repeat(w)).join(GAP);
  const body = text.slice(1, rows.length + 1).map(line);
  const out = [line(text[0]!), rule, ...body];
  if (opts.footer) out.push(rule, line(text[text.length - 1]!));
  return out.join('\n');
}
