import type { Argv } from 'yargs';
import { info } from '../ui/console.js';

/**
 * `sshvault man`: the manual page, made from the same yargs definitions as
 * `--help`, so the two never disagree. Each command's help is set as a
 * preformatted block: yargs already aligns it for a terminal.
 */
const EXIT_CODES: [number | string, string][] = [
  [0, 'success'],
  [1, 'unexpected error (run again with --debug and report it)'],
  [2, 'usage or configuration error'],
  [3, 'authentication failed or the remote is not to be trusted (wrong passphrase, unknown or changed host key, changed LUKS header)'],
  [4, 'remote unreachable, or the connection was lost or stalled during the run'],
  [5, 'the vault is locked by another run'],
  [6, 'the vault, or the remote disk under it, is full'],
  [7, 'check found errors, or the filesystem needs an attended repair'],
  [8, 'push made a snapshot complete with warnings: some files were unreadable or vanished'],
  [9, 'status: a vault is stale'],
  ['129, 130, 143', 'stopped by SIGHUP, SIGINT, SIGTERM after tearing the stack down'],
];

function roff(text: string): string {
  return text
    .split('\n')
    .map((l) => l.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1'))
    .join('\n');
}

async function helpOf(build: (args: string[]) => Argv, args: string[]): Promise<string> {
  let out = '';
  await build(args).parseAsync(args, {}, (_err, _argv, output) => {
    out = output;
  });
  return out.replace(/^Run 'sshvault --help' for usage\.\n?/m, '').trim();
}

function commandNames(overview: string): string[] {
  const section = overview.split(/^Commands:$/m)[1]?.split(/^Options:$/m)[0] ?? '';
  return [...section.matchAll(/^\s+sshvault ([a-z]+)/gm)].map((m) => m[1]!).filter((c, i, all) => all.indexOf(c) === i);
}

export async function renderManPage(build: (args: string[]) => Argv): Promise<string> {
  const overview = await helpOf(build, ['--help']);
  const out = [
    '.TH SSHVAULT 1 "" "sshvault" "User Commands"',
    '.SH NAME',
    'sshvault \\- encrypted, incremental backups to a host you do not trust',
    '.SH SYNOPSIS',
    '.B sshvault',
    '.I command',
    '[options]',
    '.SH DESCRIPTION',
    'The remote holds one LUKS-encrypted disk image. A run connects over SSH, decrypts the image on this machine and makes a new snapshot in it with rsync; every run reports the bytes it moved.',
    '.SH OVERVIEW',
    '.nf',
    roff(overview),
    '.fi',
    '.SH COMMANDS',
  ];
  for (const name of commandNames(overview)) {
    out.push(`.SS ${name}`, '.nf', roff(await helpOf(build, [name, '--help'])), '.fi');
  }
  out.push('.SH EXIT STATUS', ...EXIT_CODES.flatMap(([code, what]) => ['.TP', `.B ${code}`, roff(what)]));
  out.push('.SH FILES', '.TP', '.I ~/.config/sshvault/<vault>.json', 'the vault\'s configuration', '.TP', '.I ~/.local/state/sshvault/<vault>/', 'runs, catalog, LUKS header backup', '.TP', '.I ~/.cache/sshvault/<vault>/blocks/', 'the block cache');
  return out.join('\n') + '\n';
}

export async function printManPage(build: (args: string[]) => Argv): Promise<number> {
  info(await renderManPage(build));
  return 0;
}
