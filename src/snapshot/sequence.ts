import { open, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CheckFailedError } from '../errors.js';
import type { ImageLayout } from './layout.js';
import { parseSnapshotDir } from './naming.js';
import type { SeenState } from './rollback.js';

/** What every writing run leaves in `/.sshvault/sequence`: the counter one higher than it found. */
export interface SequenceMark {
  counter: number;
  runId: string;
  at: string;
}

/** This machine's last view of the vault, in `<state>/sequence.json`. */
export interface LocalSequence extends SeenState {
  at: string;
}

export function sequenceFile(layout: ImageLayout): string {
  return join(layout.meta, 'sequence');
}

/** Undefined when the image has none (made before counters); a file that is there but unreadable is not taken as 0. */
export async function readImageSequence(layout: ImageLayout): Promise<SequenceMark | undefined> {
  let text: string;
  try {
    text = await readFile(sequenceFile(layout), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let mark: SequenceMark | undefined;
  try {
    mark = JSON.parse(text) as SequenceMark;
  } catch {
    mark = undefined;
  }
  if (!mark || !Number.isSafeInteger(mark.counter) || mark.counter < 0) {
    // Inside the encryption only a key holder writes it: unreadable means damaged, not a host's edit.
    throw new CheckFailedError("the vault's write counter (/.sshvault/sequence) is unreadable: the image is damaged; run 'sshvault check'");
  }
  return mark;
}

/** Room for the JSON of a mark, padded: every update rewrites the same bytes of the same block. */
const MARK_BYTES = 256;

/**
 * Overwrites the counter in place and fsyncs it. A rename would allocate a new
 * inode and rewrite the directory, and ext without a journal orders none of
 * that: a cut could land the directory entry without its inode, and the
 * repair would then drop the counter, which reads as a rollback
 * (docs/design.md, "Trusting the host"). In place, a cut leaves the old
 * record or the new one.
 */
export async function writeImageSequence(layout: ImageLayout, mark: SequenceMark): Promise<void> {
  const text = JSON.stringify(mark);
  if (text.length >= MARK_BYTES) throw new Error(`write counter record too long (${text.length} bytes)`);
  const record = Buffer.alloc(MARK_BYTES, ' ');
  record.write(text);
  record[MARK_BYTES - 1] = 0x0a;
  const file = sequenceFile(layout);
  const handle = await open(file, 'r+').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!handle) return createDurably(file, record);
  try {
    await handle.write(record, 0, MARK_BYTES, 0);
    await handle.truncate(MARK_BYTES);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The first counter of an image: written whole and synced, then named, then the name synced. */
async function createDurably(file: string, record: Buffer): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.write(record);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  const dir = await open(dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export async function readLocalSequence(file: string): Promise<LocalSequence | undefined> {
  try {
    const s = JSON.parse(await readFile(file, 'utf8')) as LocalSequence;
    return Number.isSafeInteger(s.counter) && Array.isArray(s.snapshots) ? s : undefined;
  } catch {
    return undefined;
  }
}

export async function writeLocalSequence(file: string, seen: SeenState): Promise<void> {
  const s: LocalSequence = { counter: seen.counter, snapshots: [...seen.snapshots].sort(), at: new Date().toISOString() };
  await replaceFile(file, JSON.stringify(s, null, 2) + '\n');
}

/** The complete snapshots among directory names: `.partial` and anything else (a prune's leftovers) are not. */
export function completeSnapshots(dirNames: string[]): string[] {
  return dirNames.filter((d) => {
    const ref = parseSnapshotDir(d);
    return ref !== null && !ref.partial;
  });
}

/** Written beside and renamed over: a crash leaves the old file or the new one. */
async function replaceFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}
