import type { ByteRange } from '../filesystems/filesystem.js';
import { UNIT, type BlockCache } from './block-cache.js';
import type { RemoteImage } from './cached-image.js';

/** Further cached units, chosen at random, compared with the remote at every open. */
export const SAMPLE_UNITS = 4;

export interface CacheProof {
  /** The cache agrees with the remote on every unit compared. */
  ok: boolean;
  /** Units read back from the remote and compared. */
  compared: number;
  differing: number;
  /** The cache lacks the units every writer changes: nothing to prove it with. */
  unprovable: boolean;
}

/**
 * The generation file is the host's to keep or put back, so a cache saved
 * at the generation the run finds still has to show that the image behind it
 * is the one it was saved from: a few of its ciphertext units must equal what
 * the remote holds now. An older image put back under the current generation
 * differs at least in the superblock's units, which any write since changed.
 */
export async function proveCache(
  remote: RemoteImage,
  cache: BlockCache,
  payloadOffset: number,
  /** Plaintext bytes every writer rewrites: the filesystem's superblock. */
  rewritten: ByteRange,
  random: () => number = Math.random,
): Promise<CacheProof> {
  const fixed: number[] = [];
  for (let u = Math.floor((payloadOffset + rewritten.from) / UNIT); u * UNIT < payloadOffset + rewritten.to; u++) fixed.push(u);
  if (!fixed.every((u) => cache.has(u))) return { ok: false, compared: 0, differing: 0, unprovable: true };
  const minUnit = Math.ceil(payloadOffset / UNIT);
  const units = [...new Set([...fixed, ...cache.sampleUnits(SAMPLE_UNITS, minUnit, random)])].filter((u) => (u + 1) * UNIT <= remote.size);
  const verdicts = await Promise.all(units.map(async (u) => (await remote.read(u * UNIT, UNIT)).equals(cache.read(u * UNIT, UNIT))));
  const differing = verdicts.filter((same) => !same).length;
  return { ok: differing === 0, compared: units.length, differing, unprovable: false };
}
