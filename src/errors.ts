/** Exit codes are part of the CLI contract (docs/design.md, "CLI contract"; README). */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  auth: 3,
  link: 4,
  locked: 5,
  full: 6,
  checkFailed: 7,
  /** The snapshot is complete, but some files were unreadable or vanished while rsync ran. */
  warnings: 8,
  /** `status`: the last successful push is older than the vault's maxAge, or there was none. */
  stale: 9,
} as const;

/** An error a user can act on: one line that says what happened and what to do. */
export class SshvaultError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class UsageError extends SshvaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.usage, options);
  }
}

export class AuthError extends SshvaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.auth, options);
  }
}

export class LinkError extends SshvaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.link, options);
  }
}

export class LockHeldError extends SshvaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.locked, options);
  }
}

export class VaultFullError extends SshvaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.full, options);
  }
}

export class CheckFailedError extends SshvaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.checkFailed, options);
  }
}

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** The run was stopped by a signal; the exit code follows the shell's 128+N convention. */
export class InterruptedError extends SshvaultError {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}; the stack was torn down and the snapshot left partial`, 128 + (signalNumbers[signal] ?? 0));
  }
}

/** A program sshvault runs failed; carries its stderr so callers can classify the failure. */
export class CommandError extends SshvaultError {
  constructor(
    readonly command: string,
    readonly commandExitCode: number | undefined,
    readonly stderr: string,
    message: string,
  ) {
    super(message, ExitCode.unexpected);
  }
}
