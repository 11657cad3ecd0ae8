import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The checkout's root: the nearest directory at or above `from` that holds
 * package.json. The bench runs these helpers compiled into dist-bench/, one
 * level deeper than their sources, so a fixed '../..' would miss it there.
 */
export function repoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json at or above ${from}`);
  }
}
