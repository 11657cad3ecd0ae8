import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { succeeds } from '../exec.js';
import { chooseEngine, ENGINES } from '../stack/engines/index.js';
import { info } from '../ui/console.js';
import { renderTable } from '../ui/table.js';
import { isRoot } from './root.js';
import { action } from './action.js';
import { type CommandArgv, type CommandOf, type GlobalArgs } from './options.js';

const TOOLS: [string, string, string][] = [
  ['ssh', 'openssh-client', 'ssh -G reads your OpenSSH config'],
  ['ssh-keygen', 'openssh-client', 'known_hosts lookups'],
  ['sshfs', 'sshfs', 'the remote directory'],
  ['fusermount3', 'fuse3', 'unmounting FUSE'],
  ['losetup', 'mount', 'loop devices'],
  ['cryptsetup', 'cryptsetup-bin', 'LUKS format, keys, kernel engine'],
  ['qemu-nbd', 'qemu-utils', 'userspace engine'],
  ['nbdfuse', 'libnbd-bin', 'both engines'],
  ['mkfs.ext4', 'e2fsprogs', 'filesystem'],
  ['e2fsck', 'e2fsprogs', 'filesystem checks'],
  ['btrfs', 'btrfs-progs', 'btrfs vaults'],
  ['rsync', 'rsync', 'snapshots'],
];

const builder = (y: CommandArgv) => y.example('$0 doctor', 'what this machine lacks');

export const doctorCommand: CommandOf<typeof builder> = {
  command: 'doctor',
  describe: 'check this machine: root, engine, tools, FUSE',
  builder,
  handler: action('doctor', cmdDoctor, { staleWarning: false }),
};

/** `sshvault doctor`: which engine this machine uses and why, and what is missing. */
export async function cmdDoctor(a: GlobalArgs): Promise<number> {
  const engines = await Promise.all(ENGINES.map(async (e) => ({ name: e.name, ...(await e.probe()) })));
  // The JSON report named device-mapper before it listed every engine; scripts may still read those fields.
  const dm = engines.find((e) => e.name === 'kernel')!;
  const auto = await chooseEngine('auto');
  const tools = await Promise.all(
    TOOLS.map(async ([tool, pkg, why]) => ({ tool, pkg, why, found: await succeeds('sh', ['-c', `command -v ${tool}`]) })),
  );
  const require = createRequire(import.meta.url);
  let nativeCrypto = false;
  try {
    require('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
    nativeCrypto = true;
  } catch {
    nativeCrypto = false;
  }
  const root = isRoot();
  const report = {
    root,
    engine: auto.engine.name,
    reason: auto.reason,
    engines,
    deviceMapper: dm.ok,
    deviceMapperReason: dm.reason,
    fuse: existsSync('/dev/fuse'),
    loopControl: existsSync('/dev/loop-control'),
    ssh2NativeCrypto: nativeCrypto,
    node: process.version,
    tools,
  };
  const missing = tools.filter((t) => !t.found);
  if (a.json) {
    info(JSON.stringify(report, null, 2));
  } else {
    info(root ? 'root: yes' : 'root: NO: push, restore, mount, check and the other commands that attach loop devices and mount filesystems need root');
    info(`engine: ${auto.engine.name} (${auto.reason})`);
    for (const e of engines) info(`${e.name} engine: ${e.ok ? 'can run' : 'cannot run'}: ${e.reason}`);
    info(`/dev/fuse: ${report.fuse ? 'yes' : 'MISSING'}; /dev/loop-control: ${report.loopControl ? 'yes' : 'MISSING'}`);
    info(`ssh2 native crypto: ${nativeCrypto ? 'yes' : 'no (chacha20 runs at half speed; reinstall with install scripts allowed)'}`);
    info(renderTable(['tool', 'package', 'used for', 'found'], tools.map((t) => [t.tool, t.pkg, t.why, t.found ? 'yes' : 'MISSING'])));
    if (missing.length) info(`install: apt-get install ${[...new Set(missing.map((t) => t.pkg))].join(' ')}`);
  }
  return missing.length || !report.fuse || !root ? 2 : 0;
}
