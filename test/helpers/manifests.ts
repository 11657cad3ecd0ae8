import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

/**
 * Renames a snapshot's manifest inside a mounted plaintext, as a test that
 * renames the snapshot needs: the full or the delta one, whichever it has,
 * and the `# base` line of every delta that builds on it. Written without
 * sshvault's code, from the format in docs/design.md, "Manifest chains".
 */
export async function renameManifest(root: string, from: string, to: string): Promise<void> {
  const dir = join(root, '.sshvault', 'manifests');
  const files = await readdir(dir);
  for (const suffix of ['.sha256.gz', '.delta.gz']) {
    if (files.includes(`${from}${suffix}`)) await rename(join(dir, `${from}${suffix}`), join(dir, `${to}${suffix}`));
  }
  for (const f of await readdir(dir)) {
    if (!f.endsWith('.delta.gz')) continue;
    const text = gunzipSync(await readFile(join(dir, f))).toString('latin1');
    if (text.startsWith(`# base ${from}\n`)) await writeFile(join(dir, f), gzipSync(Buffer.from(`# base ${to}\n${text.slice(`# base ${from}\n`.length)}`, 'latin1')));
  }
}

/** The `# base` line of a delta manifest's text, or undefined for a full one. */
export function deltaBaseOf(gzipped: Buffer): string | undefined {
  return /^# base (\S+)\n/.exec(gunzipSync(gzipped).toString('latin1'))?.[1];
}
