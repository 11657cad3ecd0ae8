import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec.js';

/**
 * When a scheduled run should rather not start: on battery, on a metered
 * connection (a phone's hotspot), or while another run of the vault is
 * active. Each check says why, so the journal explains a skipped run.
 */
export interface PowerSupply {
  type: string;
  online?: boolean;
}

/** systemd's rule (ConditionACPower): mains online, or no battery at all (a desktop or a server). */
export function onMains(supplies: PowerSupply[]): boolean {
  if (supplies.some((s) => s.type === 'Mains' && s.online)) return true;
  return !supplies.some((s) => s.type === 'Battery');
}

export async function powerSupplies(root = '/sys/class/power_supply'): Promise<PowerSupply[]> {
  const names = await readdir(root).catch(() => [] as string[]);
  const read = (dir: string, f: string) => readFile(join(root, dir, f), 'utf8').then((t) => t.trim(), () => undefined);
  return Promise.all(
    names.map(async (n) => {
      const online = await read(n, 'online');
      return { type: (await read(n, 'type')) ?? 'Unknown', ...(online !== undefined ? { online: online === '1' } : {}) };
    }),
  );
}

/**
 * NetworkManager's global Metered property, as `busctl` prints it ("u 1"):
 * 1 yes and 3 guessed yes count as metered; 0 unknown, 2 no, 4 guessed no do not.
 */
export function parseMetered(busctlOutput: string): boolean {
  const m = /^u\s+(\d+)/.exec(busctlOutput.trim());
  return !!m && (m[1] === '1' || m[1] === '3');
}

/** Without NetworkManager (or D-Bus) nothing says the link is metered. */
export async function metered(): Promise<boolean> {
  try {
    const r = await run('busctl', ['get-property', 'org.freedesktop.NetworkManager', '/org/freedesktop/NetworkManager', 'org.freedesktop.NetworkManager', 'Metered'], { timeoutMs: 10_000 });
    return parseMetered(r.stdout);
  } catch {
    return false;
  }
}
