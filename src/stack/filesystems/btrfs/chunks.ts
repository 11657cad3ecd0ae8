import { run } from '../../../exec.js';
import type { ByteRange } from '../filesystem.js';

interface Chunk {
  length: number;
  type: string;
  stripes: number[];
}

/**
 * The device ranges of btrfs data chunks, from `btrfs inspect-internal
 * dump-tree -t chunk`. Only chunks of one profile whose every stripe is a
 * whole copy (single, DUP) are given: for any other the stripes' lengths are
 * not the chunk's, and a range left out only costs the cache some room.
 * Mixed data-and-metadata chunks hold metadata and are left out too.
 */
export function dataChunkRanges(dump: string): ByteRange[] {
  const chunks: Chunk[] = [];
  let current: Chunk | undefined;
  for (const line of dump.split('\n')) {
    if (/ key \(FIRST_CHUNK_TREE CHUNK_ITEM \d+\)/.test(line)) {
      current = { length: 0, type: '', stripes: [] };
      chunks.push(current);
      continue;
    }
    if (/^\s*item \d+ key/.test(line)) current = undefined;
    if (!current) continue;
    const head = /^\s*length (\d+) owner \d+ stripe_len \d+ type (\S+)/.exec(line);
    if (head) {
      current.length = Number(head[1]);
      current.type = head[2]!;
    }
    const stripe = /^\s*stripe \d+ devid \d+ offset (\d+)/.exec(line);
    if (stripe) current.stripes.push(Number(stripe[1]));
  }
  const out: ByteRange[] = [];
  for (const c of chunks) {
    const [kind = '', profile = 'single'] = c.type.split('|');
    if (kind !== 'DATA' || !['single', 'DUP'].includes(profile) || !c.length) continue;
    for (const at of c.stripes) out.push({ from: at, to: at + c.length });
  }
  return out.sort((a, b) => a.from - b.from);
}

/** Reads the chunk tree from the device (mounted or not): where file data lives now. */
export async function readDataChunkRanges(device: string): Promise<ByteRange[]> {
  const r = await run('btrfs', ['inspect-internal', 'dump-tree', '-t', 'chunk', device], { timeoutMs: 60_000 });
  return dataChunkRanges(r.stdout);
}
