import { vaultPaths } from '../config/paths.js';
import { describePassphraseSource } from '../config/passphrase.js';
import { DEFAULT_CACHE_BYTES, DEFAULT_MAX_AGE } from '../config/vault-config.js';
import { requestTimeoutSeconds } from '../remote/stall-watch.js';
import { info } from '../ui/console.js';
import { formatBytes } from '../ui/format.js';
import { openContext } from './common.js';
import { action } from './action.js';
import { type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) =>
  y
    .positional('action', { choices: ['show'] as const, demandOption: true })
    .positional('vault', { type: 'string', describe: 'vault name (optional when only one is configured)' })
    .example('$0 config show laptop', 'the config with its defaults filled in');

type ConfigArgs = ArgsOf<typeof builder>;

export const configCommand: CommandOf<typeof builder> = {
  command: 'config <action> [vault]',
  describe: "the vault's effective configuration, and where its passphrase comes from (never the passphrase)",
  builder,
  handler: action('config', cmdConfig),
};

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
