import { run } from '../exec.js';
import { SshvaultError } from '../errors.js';
import type { RunRecord } from '../snapshot/runs.js';
import { warn } from '../ui/console.js';
import { stripAnsi } from '../ui/table.js';
import { debug } from '../log.js';

/**
 * `--on-success` and `--on-failure`: a shell command run after a push, with
 * the run's one-screen summary on stdin and the facts in SSHVAULT_*
 * variables, so `mail`, `sendmail` or `notify-send` can tell a person. A
 * hook that fails is logged and never changes the push's exit code: the
 * backup's outcome is what cron and systemd must see.
 */
export interface Hooks {
  onSuccess?: string;
  onFailure?: string;
}

export interface Outcome {
  vault: string;
  exitCode: number;
  message: string;
  record?: RunRecord;
  summary: string;
}

const HOOK_TIMEOUT_MS = 5 * 60_000;

export function hookEnvironment(o: Outcome): Record<string, string> {
  return {
    SSHVAULT_VAULT: o.vault,
    SSHVAULT_EXIT_CODE: String(o.exitCode),
    SSHVAULT_MESSAGE: o.message,
    SSHVAULT_SNAPSHOT: o.record?.snapshot ?? '',
    SSHVAULT_UP_BYTES: String(o.record?.upBytes ?? 0),
    SSHVAULT_DOWN_BYTES: String(o.record?.downBytes ?? 0),
  };
}

export async function runHook(command: string | undefined, o: Outcome): Promise<void> {
  if (!command) return;
  const text = stripAnsi(o.summary).replace(/\n?$/, '\n');
  try {
    await run('sh', ['-c', command], { input: text, env: hookEnvironment(o), timeoutMs: HOOK_TIMEOUT_MS });
  } catch (e) {
    warn(`the ${o.exitCode === 0 ? 'on-success' : 'on-failure'} command failed (${(e as Error).message}); the push's own result stands`);
    debug(`hook: ${(e as Error).stack ?? e}`);
  }
}

/**
 * Runs a push and then the hook its outcome calls for. `body` reports the
 * run's record and summary as soon as it has them, so that a failure after
 * the run was recorded still tells the hook its bytes.
 */
export async function withHooks(vault: string, hooks: Hooks, body: (report: (record: RunRecord, summary: string) => void) => Promise<number>): Promise<number> {
  let record: RunRecord | undefined;
  let summary = '';
  const report = (r: RunRecord, s: string) => {
    record = r;
    summary = s;
  };
  let code: number;
  try {
    code = await body(report);
  } catch (e) {
    const exitCode = e instanceof SshvaultError ? e.exitCode : 1;
    const message = (e as Error)?.message ?? String(e);
    await runHook(hooks.onFailure, { vault, exitCode, message, record, summary: summary || `sshvault push of vault '${vault}' failed (exit ${exitCode}): ${message}` });
    throw e;
  }
  const message = code === 0 ? `snapshot ${record?.snapshot ?? ''} complete`.trim() : `push finished with exit ${code}`;
  await runHook(code === 0 ? hooks.onSuccess : hooks.onFailure, { vault, exitCode: code, message, record, summary: summary || message });
  return code;
}
