import { describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/snapshot/runs.js';
import { renderRunsTable, renderRunSummary } from '../../src/ui/runs-view.js';

const MiB = 2 ** 20;

function run(over: Partial<RunRecord>): RunRecord {
  return {
    id: 'r1',
    command: 'push',
    vault: 'v',
    snapshot: '2026-11-22T030000Z',
    started: '2026-11-22T03:00:00.123Z',
    finished: '2026-11-22T03:01:00.000Z',
    ok: true,
    exitCode: 0,
    changedBytes: 120 * MiB,
    upBytes: 580 * MiB,
    downBytes: 580 * MiB,
    phases: [
      { name: 'connect', upBytes: 4096, downBytes: 8192, ms: 200 },
      { name: 'open', upBytes: 0, downBytes: 2 * MiB, ms: 800 },
      { name: 'sync', upBytes: 580 * MiB - 4096, downBytes: 578 * MiB - 8192, ms: 50_000 },
      { name: 'close', upBytes: 0, downBytes: 0, ms: 100 },
    ],
    rsync: {
      files: 10_000, regularFiles: 9000, dirs: 900, symlinks: 100, createdFiles: 10, deletedFiles: 5, transferredFiles: 20,
      totalFileSize: 40 * 2 ** 30, transferredFileSize: 120 * MiB, literalData: 120 * MiB, matchedData: 0, fileListSize: 1, bytesSent: 1, bytesReceived: 1,
    },
    ...over,
  };
}

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('stats rendering', () => {
  it("reproduces the seed's ext2 row: 120 MB changed, 580 MB each way is 4.83x, and minutes on 10 Mbit", () => {
    const table = plain(renderRunsTable([run({})], '10mbit'));
    const row = table.split('\n').find((l) => l.includes('2026-11-22T030000Z'))!;
    expect(row).toContain('580 MiB');
    expect(row).toContain('120 MiB');
    expect(row).toContain('4.8x');
    // 580 MiB at 10 Mbit/s in each direction at once: 486.5 s.
    expect(row).toMatch(/8m 0[67]s/);
    // The overhead beyond the data, per tree entry: (580-120) MiB over 10,000 entries.
    expect(row).toContain('460 MiB');
    expect(row).toContain(`${Math.round((460 * MiB) / 10_000)} B`);
  });

  it('shows every phase under its run, and totals', () => {
    const lines = plain(renderRunsTable([run({}), run({ id: 'r2', command: 'init', snapshot: undefined, changedBytes: 0, rsync: undefined })], '50/10mbit')).split('\n');
    for (const p of ['connect', 'open', 'sync', 'close']) expect(lines.some((l) => l.trim().startsWith(p))).toBe(true);
    expect(lines[0]).toContain('on 50/10mbit');
    const total = lines[lines.length - 1];
    expect(total).toContain('2 runs');
    expect(total).toContain('1.13 GiB');
  });

  it('marks failed runs and does not invent ratios for them', () => {
    const table = plain(renderRunsTable([run({ ok: false, exitCode: 4, changedBytes: 0 })], '10mbit'));
    expect(table).toContain('push (failed)');
    const row = table.split('\n').find((l) => l.includes('push (failed)'))!;
    expect(row).not.toContain('x ');
  });

  it('the push summary names the snapshot, its size and the ratios', () => {
    const text = plain(
      renderRunSummary(run({}), { version: 1, vaultId: 'v', snapshots: [{ name: '2026-11-22T030000Z', time: '', complete: true, files: 9000, bytes: 40 * 2 ** 30 }] }),
    );
    expect(text).toContain('Snapshot 2026-11-22T030000Z complete: 9000 files, 40 GiB');
    expect(text).toMatch(/sent 4\.8x and received 4\.8x/);
    expect(text).not.toContain('block cache');
  });

  it('the push summary says what the block cache saved', () => {
    const text = plain(renderRunSummary(run({ cache: { hitBytes: 3 * MiB, missBytes: 12 * 1024 } }), { version: 1, vaultId: 'v', snapshots: [] }));
    expect(text).toContain('the local block cache answered 3 MiB of reads, 12 KiB came from the remote');
  });
});
