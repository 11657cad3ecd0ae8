import yargs, { type Argv, type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ExitCode } from '../errors.js';
import { acceptCommand } from './cmd_accept.js';
import { doctorCommand } from './cmd_doctor.js';
import { checkCommand } from './cmd_check.js';
import { initCommand } from './cmd_init.js';
import { keyCommand } from './cmd_key.js';
import { listCommand } from './cmd_list.js';
import { mountCommand, umountCommand } from './cmd_mount.js';
import { pruneCommand } from './cmd_prune.js';
import { pushCommand } from './cmd_push.js';
import { recoverCommand } from './cmd_recover.js';
import { restoreCommand } from './cmd_restore.js';
import { statsCommand } from './cmd_stats.js';
import { unlockCommand } from './cmd_unlock.js';
import { statusCommand } from './cmd_status.js';
import { scheduleCommand } from './cmd_schedule.js';
import { configCommand } from './cmd_config.js';
import { action, lastExitCode, report, setExitCode } from './action.js';
import { globalOptions, type GlobalOptions } from './options.js';
import { printManPage } from './man.js';

/** The man page is made from the whole CLI, so its command lives here rather than in a module of its own. */
const manCommand: CommandModule<GlobalOptions, GlobalOptions> = {
  command: 'man',
  describe: false,
  handler: action('man', () => printManPage(buildCli), { staleWarning: false }),
};

/** Every command and flag, declared once: the parser, `--help`, completion and the man page all come from here. */
export function buildCli(args: string[]): Argv {
  return globalOptions(yargs(args).scriptName('sshvault').usage('$0 <command> [options]\n\nEncrypted, incremental backups to a host you do not trust.'))
    .command(initCommand)
    .command(pushCommand)
    .command(listCommand)
    .command(statsCommand)
    .command(statusCommand)
    .command(scheduleCommand)
    .command(restoreCommand)
    .command(mountCommand)
    .command(umountCommand)
    .command(checkCommand)
    .command(pruneCommand)
    .command(keyCommand)
    .command(configCommand)
    .command(acceptCommand)
    .command(recoverCommand)
    .command(unlockCommand)
    .command(doctorCommand)
    .completion('completion', 'print a bash/zsh completion script: sshvault completion >> ~/.bashrc')
    .command(manCommand)
    .demandCommand(1, 'name a command')
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`sshvault: ${msg}\nRun 'sshvault --help' for usage.\n`);
      setExitCode(ExitCode.usage);
      throw new UsageExit();
    })
    .exitProcess(false);
}

export async function main(argv: string[]): Promise<number> {
  const cli = buildCli(hideBin(argv));
  try {
    await cli.parseAsync();
  } catch (e) {
    if (!(e instanceof UsageExit)) setExitCode(report(e));
  }
  return lastExitCode();
}

class UsageExit extends Error {}
