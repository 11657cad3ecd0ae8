import { rm } from 'node:fs/promises';
import type { SFTPWrapper } from 'ssh2';
import { AuthError, UsageError } from '../errors.js';
import { readRange, stat } from '../remote/sftp.js';
import { isLuks1, luksHeaderBackup, PHDR_BYTES, phdrUuid } from '../stack/luks.js';
import { readHeaderArea } from '../stack/luks-header.js';

/** The remote image's header as checked, and the header area the engines decrypt with. */
export interface CheckedHeader {
  /** The remote LUKS header as read at connect. */
  phdr: Buffer;
  /** From the local backup; undefined when runs read the remote's. */
  header?: Buffer;
  /** No local backup and the user trusts the remote header: save it once sshfs is up. */
  adopt: boolean;
}

/**
 * The image must be the one init made: same LUKS header as the local
 * backup. Costs 592 bytes; refuses before anything is written.
 */
export async function checkRemoteHeader(
  sftp: SFTPWrapper,
  image: string,
  o: { headerBackup: string; readOnly: boolean; skip?: boolean; trustRemote?: boolean; notice: (message: string) => void },
): Promise<CheckedHeader> {
  if (!(await stat(sftp, image))) {
    throw new UsageError(`the remote image ${image} is missing; if it was lost, a new vault needs 'sshvault init' (the local header backup cannot bring back data)`);
  }
  const remote = await readRange(sftp, image, 0, PHDR_BYTES);
  if (!isLuks1(remote)) {
    throw new UsageError(
      `the remote image ${image} has no LUKS1 header; if it was overwritten, restore it from ${o.headerBackup} with 'cryptsetup luksHeaderRestore' (README: Restore without sshvault)`,
    );
  }
  if (o.skip) return { phdr: remote, adopt: false };
  const header = await readHeaderArea(o.headerBackup);
  if (!header) {
    if (o.readOnly) {
      o.notice(`No local LUKS header backup for this vault; run 'sshvault key backup-header' to make one.`);
      return { phdr: remote, adopt: false };
    }
    if (o.trustRemote) {
      o.notice(`No local LUKS header backup for this vault: trusting the remote header as it is, and saving it to ${o.headerBackup}.`);
      return { phdr: remote, adopt: true };
    }
    throw new AuthError(
      `no local LUKS header backup for this vault (${o.headerBackup}), so the remote header cannot be checked; copy your backup there, or if you trust this host, run again with --trust-remote-header`,
    );
  }
  const local = header.subarray(0, PHDR_BYTES);
  if (!local.equals(remote)) {
    const was = phdrUuid(local);
    const now = phdrUuid(remote);
    throw new AuthError(
      was !== now
        ? `the remote image is not the vault made by init (LUKS UUID ${now}, expected ${was}): it was replaced; refusing to write to it`
        : `the LUKS header of the remote image changed since the local backup (key slots edited elsewhere?); if you did that, run 'sshvault key backup-header', otherwise do not trust this host`,
    );
  }
  return { phdr: remote, header, adopt: false };
}

/**
 * The remote header, taken as the vault's own: from now on runs check against
 * it and decrypt with it. `imageFile` is the image inside the sshfs mount.
 */
export async function adoptRemoteHeader(imageFile: string, headerBackup: string, phdr: Buffer): Promise<Buffer> {
  await luksHeaderBackup(imageFile, headerBackup);
  const header = (await readHeaderArea(headerBackup))!;
  if (!header.subarray(0, PHDR_BYTES).equals(phdr)) {
    await rm(headerBackup, { force: true });
    throw new AuthError('the LUKS header of the remote image changed while this run read it; do not trust this host');
  }
  return header;
}
