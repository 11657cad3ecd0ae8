import { rename, rm } from 'node:fs/promises';
import { readNewPassphrase } from '../config/passphrase.js';
import type { VaultPaths } from '../config/paths.js';
import { AuthError, UsageError } from '../errors.js';
import { activeSlots, backupPhdr, luksAddKey, luksChangeKey, luksHeaderBackup, luksKillSlot, phdrUuid, slotOf } from '../stack/luks.js';
import { info, notice } from '../ui/console.js';
import { DEFAULT_LINK, renderRunsTable } from '../ui/runs-view.js';
import { withImageFile } from '../session/open.js';
import { exclusive, openContext, passphraseFor } from './common.js';
import { action } from './action.js';
import { type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) =>
  y
    .positional('action', { choices: ['add', 'change', 'remove', 'backup-header'] as const, demandOption: true })
    .positional('vault', { type: 'string', describe: 'vault name (optional when only one is configured)' })
    .option('new-passphrase-file', { type: 'string', describe: 'add/change: read the new passphrase from this file' })
    .option('new-passphrase-command', { type: 'string', describe: 'add/change: run this command for the new passphrase' })
    .option('slot', { type: 'number', describe: 'remove: the key slot to wipe (authorise with a passphrase that stays)' })
    .example('$0 key add --new-passphrase-file ~/second-key', 'a second passphrase, e.g. for a safe');

type KeyArgs = ArgsOf<typeof builder>;

export const keyCommand: CommandOf<typeof builder> = {
  command: 'key <action> [vault]',
  describe: 'LUKS passphrases: add, change, remove (never the last) and back up the header',
  builder,
  handler: action('key', cmdKey, { root: true }),
};

/**
 * `cryptsetup luksHeaderBackup` refuses to overwrite, so a new backup is
 * made beside the old one, to be renamed over it: there is always one.
 */
async function newHeaderBackup(image: string, paths: VaultPaths): Promise<string> {
  const tmp = `${paths.headerBackup}.new`;
  await rm(tmp, { force: true });
  await luksHeaderBackup(image, tmp);
  return tmp;
}

/**
 * LUKS key slots, edited on the image file through the sshfs mount: this
 * needs cryptsetup but no device-mapper. The current passphrase (the usual
 * sources) authorises every change; a change is followed by a fresh local
 * header backup, which every run compares the remote header with.
 */
export async function cmdKey(a: KeyArgs): Promise<number> {
  const ctx = await openContext(a.vault);
  if (a.action === 'remove' && a.slot !== undefined && (!Number.isInteger(a.slot) || a.slot < 0 || a.slot > 7)) {
    throw new UsageError('--slot must be a LUKS1 key slot number, 0 to 7');
  }
  if (a.action !== 'remove' && a.slot !== undefined) throw new UsageError(`--slot belongs to 'key remove', not 'key ${a.action}'`);
  return exclusive(ctx, async () => {
    const headerOnly = a.action === 'backup-header';
    // The header backup holds no secret and needs none: it can be made without the passphrase.
    const passphrase = headerOnly ? '' : await passphraseFor(a, ctx.config);
    const secret = a.action === 'add' || a.action === 'change' ? await readNewPassphrase({ file: a.newPassphraseFile, command: a.newPassphraseCommand }) : undefined;
    if (secret !== undefined && secret === passphrase) throw new UsageError('the new passphrase is the one the vault already opens with; choose another');
    let said = '';
    const run = await withImageFile(
      ctx,
      { command: `key ${a.action}`, passphrase, write: !headerOnly, headerUnchecked: headerOnly, trustRemoteHeader: a.trustRemoteHeader },
      async (vault) => {
        vault.phase('key');
        const image = vault.file;
        if (headerOnly) {
          said = await backupHeader(image, ctx.paths);
          return;
        }
        const mine = await slotOf(image, passphrase);
        if (mine === undefined) throw new AuthError('wrong passphrase: no LUKS key slot of the vault opens with it; nothing was changed');
        if (a.action === 'add') {
          const slot = await luksAddKey(image, passphrase, secret!, ctx.paths.run);
          if ((await slotOf(image, secret!)) !== slot) throw new Error(`cryptsetup added key slot ${slot}, but the new passphrase does not open it`);
          said = `Added the new passphrase in key slot ${slot}; the one in slot ${mine} still works.`;
        } else if (a.action === 'change') {
          await luksChangeKey(image, passphrase, secret!, ctx.paths.run);
          const slot = await slotOf(image, secret!);
          if (slot === undefined) throw new Error('cryptsetup changed the key, but the new passphrase does not open the vault');
          said = `Changed the passphrase of key slot ${mine}; it is now in slot ${slot}.`;
          if (ctx.config.passphraseFile || ctx.config.passphraseCommand) {
            notice(`The vault's config still takes the passphrase from ${ctx.config.passphraseFile ?? 'its passphrase command'}: make that give the new one.`);
          }
        } else {
          const slots = await activeSlots(image);
          if (a.slot === undefined) {
            throw new UsageError(`name the key slot to remove with --slot N: slots in use are ${slots.join(', ')}, and your passphrase opens slot ${mine}`);
          }
          if (!slots.includes(a.slot)) throw new UsageError(`key slot ${a.slot} is not in use (in use: ${slots.join(', ')}); nothing was changed`);
          if (a.slot === mine) {
            throw new UsageError(
              slots.length === 1
                ? `slot ${mine} holds the vault's only key; removing it would lock you out for good. Add another with 'sshvault key add' first`
                : `your passphrase is the one in slot ${mine}; to remove it, authorise with the passphrase of a key that stays (--passphrase-file)`,
            );
          }
          // cryptsetup checks that `passphrase` opens a slot other than the one removed: a working key remains.
          await luksKillSlot(image, a.slot, passphrase);
          said = `Removed key slot ${a.slot}; your passphrase in slot ${mine} still opens the vault.`;
        }
        await rename(await newHeaderBackup(image, ctx.paths), ctx.paths.headerBackup);
      },
    );
    if (run.error) throw run.error;
    if (a.json) info(JSON.stringify({ action: a.action, message: said, headerBackup: ctx.paths.headerBackup, run: run.record }, null, 2));
    else {
      info(said);
      info(`LUKS header backup: ${ctx.paths.headerBackup} (keep a copy off this machine; README: Restore without sshvault)`);
      info(renderRunsTable([run.record], DEFAULT_LINK));
    }
    return 0;
  });
}

/**
 * Accepts the remote header as the vault's own: after key slots changed
 * elsewhere, this is how runs stop refusing. A header with another UUID is
 * another LUKS volume, never accepted.
 */
async function backupHeader(image: string, paths: VaultPaths): Promise<string> {
  const before = await backupPhdr(paths.headerBackup);
  const tmp = await newHeaderBackup(image, paths);
  const after = (await backupPhdr(tmp))!;
  if (before && phdrUuid(before) !== phdrUuid(after)) {
    await rm(tmp, { force: true });
    throw new AuthError(`the remote image is another LUKS volume (UUID ${phdrUuid(after)}, the vault's is ${phdrUuid(before)}): it was replaced; the old header backup was kept`);
  }
  await rename(tmp, paths.headerBackup);
  if (!before) return 'Saved the LUKS header backup.';
  return before.equals(after) ? 'The LUKS header backup was already up to date.' : 'Updated the LUKS header backup: the key slots had changed since the last one.';
}
