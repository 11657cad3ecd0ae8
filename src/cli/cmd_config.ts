import { vaultPaths } from '../config/paths.js';
import { describePassphraseSource } from '../config/passphrase.js';
import { DEFAULT_CACHE_BYTES, DEFAULT_MAX_AGE } from '../config/vault-config.js';
import { requestTimeoutSeconds } from '../remote/stall-watch.js';
import { info } from '../ui/console.js';
import { formatBytes } from '../ui/format.js';
import { openContext, type GlobalArgs } from './common.js';

export interface ConfigArgs extends GlobalArgs {
  action: 'show';
  vault?: string;
}

/**
 * `sshvault config show`: the configuration a run would use, defaults filled
 * in, and where the passphrase would come from; never the passphrase.
 */
export async function cmdConfig(a: ConfigArgs): Promise<number> {
  const ctx = await openContext(a.vault);
  const c = ctx.config;
  const effective = {
    ...c,
    cacheBytes: c.cacheBytes ?? DEFAULT_CACHE_BYTES,
    maxAge: c.maxAge ?? DEFAULT_MAX_AGE,
    requestTimeoutSeconds: requestTimeoutSeconds(c.requestTimeoutSeconds),
    passphraseSource: describePassphraseSource({ file: a.passphraseFile, command: a.passphraseCommand }, { file: c.passphraseFile, command: c.passphraseCommand }),
    files: { config: ctx.paths.config, state: ctx.paths.state, headerBackup: ctx.paths.headerBackup, blockCache: vaultPaths(ctx.name).blockCache },
  };
  if (a.json) {
    info(JSON.stringify(effective, null, 2));
    return 0;
  }
  const rows: [string, string][] = [
    ['vault', `${c.name} (id ${c.vaultId})`],
    ['remote', `${c.remote} (image ${c.image}, ${formatBytes(c.size)})`],
    ['filesystem', c.fs],
    ['engine', c.engine],
    ['sources', c.sources.join(', ') || '(none: give paths to push)'],
    ['excludes', c.excludes.join(', ') || '(none)'],
    ['identity', c.identity ?? '(the agent or ssh config)'],
    ['known hosts', c.knownHosts ?? '(ssh config)'],
    ['passphrase', effective.passphraseSource],
    ['retention', c.retention ? Object.entries(c.retention).map(([k, v]) => `${k} ${v}`).join(', ') : '(none: prune needs --keep-* flags)'],
    ['block cache', `${formatBytes(effective.cacheBytes)}${effective.cacheBytes === 0 ? ' (off)' : ''}`],
    ['max age', effective.maxAge],
    ['timeout', `${effective.requestTimeoutSeconds} s without an answer from the remote ends the run`],
    ['upload', c.limitUpload ? `at most ${c.limitUpload}` : 'not limited'],
    ['on success', c.onSuccess ?? '(nothing)'],
    ['on failure', c.onFailure ?? '(nothing)'],
    ['config file', ctx.paths.config],
    ['state', ctx.paths.state],
  ];
  info(rows.map(([k, v]) => `${k.padEnd(12)} ${v}`).join('\n'));
  return 0;
}
