import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';

/** The options a builder ends with: a command's flags, the global ones included. */
export type OptionsOf<B extends (y: never) => Argv<unknown>> = ReturnType<B> extends Argv<infer T> ? T : never;

/** What a handler gets from a builder: its options, also under their camelCase names. */
export type ArgsOf<B extends (y: never) => Argv<unknown>> = ArgumentsCamelCase<OptionsOf<B>>;

/** Flags every command takes (docs/design.md, "CLI contract"). */
export function globalOptions(y: Argv) {
  return y
    .option('debug', { type: 'boolean', describe: 'log every command run and show stack traces' })
    .option('json', { type: 'boolean', describe: 'machine-readable output' })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'only warnings, errors and the data asked for' })
    .option('verbose', { alias: 'v', type: 'boolean', describe: 'more detail on stderr' })
    .option('color', { type: 'boolean', default: true, describe: 'colours on a terminal (--no-color or NO_COLOR turns them off)' })
    .option('local-time', { type: 'boolean', describe: "print times in this machine's time zone instead of UTC" })
    .option('limit-upload', { type: 'string', describe: "cap this run's upload, e.g. 2mbit (overrides the config's limitUpload)" })
    .option('passphrase-file', { type: 'string', describe: 'read the passphrase from this file (one trailing newline is dropped)' })
    .option('passphrase-command', { type: 'string', describe: 'run this shell command and use its output as the passphrase' })
    .option('trust-remote-header', { type: 'boolean', describe: 'with no local LUKS header backup: let a writing run use the remote header, and save it as the backup' });
}

export type GlobalOptions = OptionsOf<typeof globalOptions>;
export type GlobalArgs = ArgumentsCamelCase<GlobalOptions>;

/** Where a command starts: the global flags are already declared. */
export type CommandArgv = Argv<GlobalOptions>;

/** A command made by `builder`: its module declares its flags, help example and handler together. */
export type CommandOf<B extends (y: CommandArgv) => Argv<unknown>> = CommandModule<GlobalOptions, OptionsOf<B>>;

/** The vault a command works on, as `[vault]` in its usage. */
export function vaultArg<T>(y: Argv<T>) {
  return y.positional('vault', { type: 'string', describe: 'vault name (optional when only one is configured)' });
}

/** The SSH flags of a command that reaches the remote without a configured vault; `prefix` says when they apply. */
export function sshOptions<T>(y: Argv<T>, prefix = '') {
  return y
    .option('identity', { type: 'string', describe: `${prefix}SSH private key file` })
    .option('known-hosts', { type: 'string', describe: `${prefix}known_hosts file to check the host key against` })
    .option('accept-new-host-key', { type: 'boolean', describe: `${prefix}trust and record an unknown host key` });
}
