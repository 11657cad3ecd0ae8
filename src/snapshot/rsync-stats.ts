/**
 * Reads what rsync prints with `--stats` and `--info=progress2` (rsync 3.1 and
 * later; checked against 3.2.7 and 3.5.0). Numbers are the plain form rsync uses
 * without `--human-readable`, with whatever thousands separator the locale gives.
 */

export interface RsyncStats {
  files: number;
  regularFiles: number;
  dirs: number;
  symlinks: number;
  createdFiles: number;
  deletedFiles: number;
  transferredFiles: number;
  totalFileSize: number;
  transferredFileSize: number;
  literalData: number;
  matchedData: number;
  fileListSize: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface Progress2 {
  bytes: number;
  percent: number;
  /** As rsync prints it, e.g. `12.34MB/s`: only ever shown, never computed with. */
  rate: string;
  /** Files transferred so far. */
  xfr?: number;
  toCheck?: number;
  total?: number;
  /** False while rsync still builds the file list (`ir-chk`): `total` will grow. */
  listComplete?: boolean;
}

const NUMBER = /^(?:\d{1,3}(?:[,.']\d{3})+|\d+)$/;
const NUMBER_IN_TEXT = /\d{1,3}(?:[,.']\d{3})+|\d+/;

function parseNumber(text: string, label: string): number {
  if (!NUMBER.test(text)) {
    throw new Error(`rsync's --stats line '${label}' has '${text}', not a plain number (was rsync run with --human-readable?)`);
  }
  return Number(text.replace(/[,.']/g, ''));
}

interface Count {
  total: number;
  kinds: Map<string, number>;
}

/** `1,505 (reg: 1,501, dir: 3, link: 1)` or `1,234 bytes` or `0`. */
function parseCount(value: string, label: string): Count {
  const m = /^(\S+)(?: bytes)?(?: \((.*)\))?$/.exec(value);
  if (!m) throw new Error(`rsync's --stats line '${label}' has an unexpected value '${value}'`);
  const kinds = new Map<string, number>();
  const kind = new RegExp(`(\\w+): (${NUMBER_IN_TEXT.source})`, 'g');
  for (const [, name, n] of (m[2] ?? '').matchAll(kind)) kinds.set(name!, parseNumber(n!, label));
  return { total: parseNumber(m[1]!, label), kinds };
}

/** Later lines win: the block rsync prints at the end is the one that counts. */
function statsLines(output: string): Map<string, string> {
  const lines = new Map<string, string>();
  for (const line of output.split(/\r\n|\r|\n/)) {
    const m = /^([A-Z][A-Za-z ]+): (.+)$/.exec(line.trim());
    if (m) lines.set(m[1]!, m[2]!.trim());
  }
  return lines;
}

export function parseRsyncStats(output: string): RsyncStats {
  const lines = statsLines(output);
  if (!lines.has('Number of files') && !lines.has('Total bytes sent')) {
    throw new Error('rsync printed no --stats block: it was run without --stats or stopped before the end');
  }
  const count = (...labels: string[]): Count => {
    const label = labels.find((l) => lines.has(l));
    if (label === undefined) throw new Error(`rsync's --stats block lacks the line '${labels[0]}': the output is cut short or from an unknown rsync version`);
    return parseCount(lines.get(label)!, label);
  };
  const files = count('Number of files');
  return {
    files: files.total,
    regularFiles: files.kinds.get('reg') ?? 0,
    dirs: files.kinds.get('dir') ?? 0,
    symlinks: files.kinds.get('link') ?? 0,
    createdFiles: count('Number of created files').total,
    deletedFiles: count('Number of deleted files').total,
    // rsync before 3.1 counted every transferred entry, not only regular files.
    transferredFiles: count('Number of regular files transferred', 'Number of files transferred').total,
    totalFileSize: count('Total file size').total,
    transferredFileSize: count('Total transferred file size').total,
    literalData: count('Literal data').total,
    matchedData: count('Matched data').total,
    fileListSize: count('File list size').total,
    bytesSent: count('Total bytes sent').total,
    bytesReceived: count('Total bytes received').total,
  };
}

const PROGRESS2 = new RegExp(`^(${NUMBER_IN_TEXT.source})\\s+(\\d{1,3})%\\s+(\\S+/s)\\s+\\S+(?:\\s+\\((.*)\\))?$`);

/** One `--info=progress2` line: `  1,234,567  45%   12.34MB/s    0:00:01 (xfr#12, to-chk=34/100)`; anything else is null. */
export function parseProgress2(line: string): Progress2 | null {
  const m = PROGRESS2.exec(line.trim());
  if (!m) return null;
  const p: Progress2 = { bytes: Number(m[1]!.replace(/[,.']/g, '')), percent: Number(m[2]), rate: m[3]! };
  const detail = m[4] ?? '';
  const xfr = /xfr#(\d+)/.exec(detail);
  if (xfr) p.xfr = Number(xfr[1]);
  const chk = /(ir|to)-chk=(\d+)\/(\d+)/.exec(detail);
  if (chk) {
    p.toCheck = Number(chk[2]);
    p.total = Number(chk[3]);
    p.listComplete = chk[1] === 'to';
  }
  return p;
}
