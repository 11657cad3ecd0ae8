import { open, readdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../../exec.js';
import type { ImageLayout } from '../../../snapshot/layout.js';
import type { VerifyProblem, VerifyProgress, VerifyResult } from '../../../snapshot/manifest.js';

const READ_CHUNK = 1 << 20;

/** What `btrfs scrub` found, from its "Error summary:" line: undefined when it found none. */
export function scrubErrors(output: string): string | undefined {
  const summary = /^Error summary:\s*(.*)$/m.exec(output)?.[1]?.trim();
  if (summary === undefined) throw new Error(`btrfs scrub printed no error summary: ${output.trim().split('\n').pop() ?? ''}`);
  return /no errors found/.test(summary) ? undefined : summary;
}

/** Reads a file to its end: false if the filesystem refused a block of it (its checksum did not match). */
async function readsBack(path: string): Promise<boolean> {
  const f = await open(path, 'r');
  const buf = Buffer.alloc(READ_CHUNK);
  try {
    for (;;) {
      const { bytesRead } = await f.read(buf, 0, READ_CHUNK, null);
      if (!bytesRead) return true;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EIO') return false;
    throw e;
  } finally {
    await f.close();
  }
}

/** The files under `dir` that cannot be read back, as paths from `dir`. */
async function unreadableFiles(dir: string, rel = ''): Promise<{ bad: string[]; files: number }> {
  const out = { bad: [] as string[], files: 0 };
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const path = `${rel}/${e.name}`;
    if (e.isDirectory()) {
      const sub = await unreadableFiles(dir, path);
      out.bad.push(...sub.bad);
      out.files += sub.files;
    } else if (e.isFile()) {
      out.files++;
      if (!(await readsBack(join(dir, path)))) out.bad.push(path);
    }
  }
  return out;
}

/**
 * `check --verify-data` on btrfs: a read-only scrub verifies every data and
 * metadata checksum of the whole filesystem. When it finds damage, every
 * file of the named snapshots is read back, and those the kernel refuses
 * (EIO: a checksum mismatch) are named; a damaged extent shared by several
 * snapshots names the file in each (docs/design.md, "Filesystems").
 */
export async function scrubAndName(layout: ImageLayout, names: string[], progress: VerifyProgress): Promise<VerifyResult> {
  const fs = await statfs(layout.root);
  const used = (fs.blocks - fs.bfree) * fs.bsize;
  progress.total(used);
  // 3: uncorrectable errors were found, which is what this looks for.
  const r = await run('btrfs', ['scrub', 'start', '-B', '-r', layout.root], { okExitCodes: [3] });
  progress.read(used);
  const errors = scrubErrors(r.stdout);
  const result: VerifyResult = { snapshots: names.map((name) => ({ name, files: 0, manifest: false })), filesRead: 0, bytesRead: used, problems: [], scrub: { errors } };
  if (!errors) return result;
  const problems: VerifyProblem[] = [];
  for (const s of result.snapshots) {
    const found = await unreadableFiles(join(layout.snapshots, s.name));
    s.files = found.files;
    result.filesRead += found.files;
    for (const path of found.bad) problems.push({ snapshot: s.name, path, problem: 'checksum error' });
  }
  // Damage outside these snapshots' files (metadata, or another snapshot) still fails the check.
  if (!problems.length) problems.push({ snapshot: '', path: `(the scrub found ${errors}, in no file of the snapshots checked)`, problem: 'checksum error' });
  result.problems = problems;
  return result;
}
