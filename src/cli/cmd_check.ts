import { CheckFailedError, UsageError } from '../errors.js';
import { readVaultMeta, snapshotDirs } from '../snapshot/layout.js';
import type { VerifyResult } from '../snapshot/manifest.js';
import { ByteProgressBar } from '../ui/progress.js';
import { parseSnapshotDir, type SnapshotRef } from '../snapshot/naming.js';
import type { RunRecord } from '../snapshot/runs.js';
import type { FsckResult } from '../stack/filesystems/filesystem.js';
import { filesystemFor } from '../stack/filesystems/index.js';
import { info, warn } from '../ui/console.js';
import { formatBytes } from '../ui/format.js';
import { DEFAULT_LINK, renderRunsTable } from '../ui/runs-view.js';
import { withDecrypted } from '../session/open.js';
import { resolveSnapshot } from '../snapshot/resolve.js';
import { exclusive, openContext, passphraseFor } from './common.js';
import { action } from './action.js';
import { vaultArg, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) =>
  vaultArg(y)
    .option('repair', { type: 'boolean', describe: 'ext: fix errors (e2fsck -fy), keeping a local undo file; takes the write lock' })
    .option('undo-repair', { type: 'boolean', conflicts: ['repair', 'verify-data'], describe: 'roll the last --repair back with its undo file, if nothing wrote to the vault since' })
    // A snapshot, or '' (the flag without a value) for every complete snapshot.
    .option('verify-data', { type: 'string', describe: 're-read the data and compare with its checksums (SHA-256 manifests on ext, a scrub on btrfs): one snapshot, or all when no value is given' })
    .example('$0 check --verify-data latest', 'every file of the newest snapshot against its checksum')
    .example('$0 check --repair', 'fix what check found; prints how to roll the repair back');

type CheckArgs = ArgsOf<typeof builder>;

export const checkCommand: CommandOf<typeof builder> = {
  command: 'check [vault]',
  describe: "forced check of the vault's filesystem (e2fsck, or btrfs check); exit 7 on errors",
  builder,
  handler: action('check', cmdCheck, { root: true }),
};

/** e2fsck's findings without its progress chatter: the lines a user needs to see what is wrong. */
function findings(output: string): string[] {
  return output.split('\n').filter((l) => l.trim() && !/^(Pass \d|e2fsck \d|sshvault: \d+\/\d+ files)/.test(l));
}

export async function cmdCheck(a: CheckArgs): Promise<number> {
  const ctx = await openContext(a.vault);
  const fs = filesystemFor(ctx.config.fs);
  if ((a.repair || a.undoRepair) && !fs.repairs) {
    throw new UsageError(
      `sshvault does not repair ${fs.type}: its own repair may lose data. Restore what you need ('sshvault restore', or README: Restore without sshvault) and make a new vault`,
    );
  }
  return exclusive(ctx, async () => {
    const passphrase = await passphraseFor(a, ctx.config);
    let fsck: FsckResult | undefined;
    let verify: VerifyResult | undefined;
    let undone = false;
    const writes = !!a.repair || !!a.undoRepair;
    const run = await withDecrypted(ctx, { command: 'check', passphrase, trustRemoteHeader: a.trustRemoteHeader }, writes ? 'repair' : 'read', async (vault) => {
      if (a.undoRepair) {
        vault.phase('undo');
        await fs.undoRepair(vault.device, ctx.paths.checkRepairUndo);
        undone = true;
        return;
      }
      vault.phase('fsck');
      fsck = await fs.check(vault.device, a.repair ? ctx.paths.checkRepairUndo : undefined);
      if (!fsck.clean) {
        throw new CheckFailedError(
          a.repair
            ? `${fs.checker} could not repair every error of the vault's filesystem (see above); restore what you need from it and make a new vault`
            : fs.type === 'btrfs'
              ? "the vault's filesystem has errors (see above); restore what you need from it and make a new vault"
              : "the vault's filesystem has errors (see above); run 'sshvault check --repair' to fix them",
        );
      }
      if (a.verifyData === undefined) return;
      vault.phase('verify');
      const layout = await vault.mountReadOnly();
      await readVaultMeta(layout);
      const names = a.verifyData
        ? [await resolveSnapshot(layout, a.verifyData)]
        : (await snapshotDirs(layout)).map(parseSnapshotDir).filter((r): r is SnapshotRef => r !== null && !r.partial).map((r) => r.name);
      if (names.length === 1) vault.facts.snapshot = names[0];
      const bar = new ByteProgressBar('verify', !a.json);
      try {
        verify = await fs.verifyData(layout, names, { total: (b) => bar.start(b), read: (b) => bar.add(b) });
      } finally {
        bar.stop();
      }
      if (verify.problems.length) {
        throw new CheckFailedError(
          verify.scrub
            ? `the filesystem's checksums show damage (listed above): the host's copy is damaged or was altered; do not restore those copies, keep your originals`
            : `${verify.problems.length} file(s) no longer match what push stored (listed above): the host's copy is damaged or was altered; do not restore those copies, keep your originals`,
        );
      }
    });
    if (undone && !a.json) info("Rolled the last 'sshvault check --repair' back: the filesystem is as it was before it.");
    report(ctx.name, fs.checker, fsck, verify, !!a.repair, !!a.json, run.record);
    if (run.error) throw run.error;
    return 0;
  });
}

function report(vault: string, checker: string, fsck: FsckResult | undefined, verify: VerifyResult | undefined, repair: boolean, json: boolean, record: RunRecord): void {
  if (json) {
    info(JSON.stringify({ fsck: fsck && { clean: fsck.clean, repaired: fsck.repaired, output: fsck.output, undoFile: fsck.undoFile }, verify, run: record }, null, 2));
    return;
  }
  if (fsck) {
    if (!fsck.clean || fsck.repaired) for (const l of findings(fsck.output)) info(l);
    if (fsck.repaired) info('e2fsck repaired the errors it found.');
    else if (fsck.clean) info(`The filesystem is clean (${checker === 'e2fsck' ? `e2fsck ${repair ? '-fy' : '-fn'}` : `${checker} --readonly`}).`);
    if (fsck.undoFile) info(`To roll this repair back (before anything else writes to the vault): sshvault check --undo-repair ${vault}   (undo file ${fsck.undoFile})`);
  }
  if (verify?.scrub) {
    for (const p of verify.problems) info(`${p.problem}: ${p.snapshot}${p.path}`);
    info(`Scrubbed the filesystem (every data and metadata checksum, ${formatBytes(verify.bytesRead)}): ${verify.scrub.errors ?? 'no errors'}; ${verify.problems.length} problem(s).`);
  } else if (verify) {
    for (const s of verify.snapshots) if (!s.manifest) warn(`snapshot ${s.name} has no manifest (made before manifests existed); its files were not verified`);
    for (const p of verify.problems) info(`${p.problem}: ${p.snapshot}${p.path}`);
    const listed = verify.snapshots.filter((s) => s.manifest).reduce((t, s) => t + s.files, 0);
    info(`Verified ${listed} files in ${verify.snapshots.length} snapshot(s) against their manifests: read ${verify.filesRead} distinct files, ${formatBytes(verify.bytesRead)}; ${verify.problems.length} problem(s).`);
  }
  info(renderRunsTable([record], DEFAULT_LINK));
}
