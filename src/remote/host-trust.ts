import { existsSync } from 'node:fs';
import { AuthError } from '../errors.js';
import { fingerprint, hostKeyAlgorithms, judgeHostKey, keyType, lookupKnownKeys, plainKeys, recordHostKey, type KnownKey } from './known-hosts.js';

export interface HostTrustOptions {
  /** The host as known_hosts names it (hostPattern). */
  pattern: string;
  /** Where new keys are recorded: the user's (or the vault's) known_hosts. */
  recordFile: string;
  /** Every file to look in, the user's and the global ones (/etc/ssh/ssh_known_hosts), as `ssh -G` lists them. */
  lookupFiles: string[];
  acceptNew: boolean;
}

/**
 * The host key decision of one connection. ssh2 asks again at every key
 * re-exchange of a long run; a key accepted once is known from then on, so it
 * is recorded once.
 */
export class HostTrust {
  private constructor(
    private readonly o: HostTrustOptions,
    private readonly known: KnownKey[],
  ) {}

  static async load(o: HostTrustOptions): Promise<HostTrust> {
    const files = [...new Set(o.lookupFiles)].filter((f) => existsSync(f));
    return new HostTrust(o, await lookupKnownKeys(o.pattern, files));
  }

  /** ssh2 host key algorithms to offer, so that the server shows a key known_hosts can vouch for; undefined: any. */
  algorithms(): string[] | undefined {
    const types = plainKeys(this.known).map((k) => k.type);
    return types.length ? hostKeyAlgorithms(types) : undefined;
  }

  /** Undefined if the key is trusted (recording it if new and accepted), else why it is refused. */
  async check(blob: Buffer): Promise<AuthError | undefined> {
    const { pattern, recordFile } = this.o;
    const fp = fingerprint(blob);
    const verdict = judgeHostKey(blob, this.known);
    if (verdict.kind === 'known') return undefined;
    if (verdict.kind === 'revoked') return new AuthError(`the host key of ${pattern} (${fp}) is marked @revoked in known_hosts; refusing to connect`);
    if (verdict.kind === 'changed') {
      const file = plainKeys(this.known).find((k) => k.file)?.file ?? recordFile;
      return new AuthError(
        `the host key of ${pattern} has CHANGED (${keyType(blob)} ${fp}); someone may be intercepting the connection. If the server was really reinstalled, remove the old key with: ssh-keygen -R '${pattern}' -f ${file}`,
      );
    }
    if (!this.o.acceptNew) {
      const ca = verdict.certAuthorityOnly
        ? ' (known_hosts trusts this host only through a @cert-authority key, and sshvault cannot check host certificates)'
        : '';
      return new AuthError(`unknown host key for ${pattern} (${keyType(blob)} ${fp})${ca}; check the fingerprint and run again with --accept-new-host-key`);
    }
    try {
      await recordHostKey(recordFile, pattern, blob);
    } catch (e) {
      return new AuthError(`cannot record the host key in ${recordFile}: ${(e as Error).message}`, { cause: e });
    }
    this.known.push({ type: keyType(blob), blob: blob.toString('base64'), revoked: false, file: recordFile });
    process.stderr.write(`Recorded new host key for ${pattern} (${keyType(blob)} ${fp}) in ${recordFile}\n`);
    return undefined;
  }
}
