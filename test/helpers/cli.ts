import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './repo-root.js';

export const BIN = join(repoRoot(import.meta.dirname), 'bin/sshvault');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A private XDG config/state pair and a passphrase file: one "machine" running sshvault. */
export interface Workspace {
  dir: string;
  env: Record<string, string>;
  passphrase: string;
  passphraseFile: string;
  sv(args: string[], opts?: { env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult>;
  dispose(): Promise<void>;
}

export async function workspace(passphrase = `correct horse ${Math.random().toString(36).slice(2)} battery`): Promise<Workspace> {
  const dir = await mkdtemp(join(tmpdir(), 'sshvault-ws-'));
  const passphraseFile = join(dir, 'passphrase');
  // A trailing newline, as an editor leaves it: sshvault must drop it.
  await writeFile(passphraseFile, `${passphrase}\n`, { mode: 0o600 });
  const env = {
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_STATE_HOME: join(dir, 'state'),
    XDG_CACHE_HOME: join(dir, 'cache'),
    // Test-only: cryptsetup's benchmarked PBKDF2 count would make every open slow.
    SSHVAULT_TEST_PBKDF_ITERATIONS: '1000',
  };
  return {
    dir,
    env,
    passphrase,
    passphraseFile,
    async sv(args, opts = {}) {
      const r = await execa(BIN, args, {
        env: { ...env, ...opts.env },
        reject: false,
        timeout: opts.timeoutMs ?? 600_000,
        stdin: 'ignore',
      });
      return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
    },
    async dispose() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function expectOk(r: CliResult, what: string): void {
  if (r.exitCode !== 0) throw new Error(`${what} exited ${r.exitCode}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}
