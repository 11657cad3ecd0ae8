import type { FsType } from '../../config/vault-config.js';
import type { ImageLayout } from '../../snapshot/layout.js';
import type { VerifyProgress, VerifyResult } from '../../snapshot/manifest.js';
import type { SnapshotRef } from '../../snapshot/naming.js';

export interface ByteRange {
  from: number;
  to: number;
}

export interface FsckResult {
  /** No errors were found, or all that were found are repaired. */
  clean: boolean;
  repaired: boolean;
  /** What the checker said: its findings, for the user. */
  output: string;
  /** Kept after a repair that changed something: what `check --undo-repair` replays. */
  undoFile?: string;
}

export interface OpenOptions {
  readOnly: boolean;
  notice: (message: string) => void;
  /** Where an unattended repair keeps its undo file while it is audited. */
  repairUndo: string;
}

export interface NewSnapshot {
  /** The new `<name>.partial`, made and ready for rsync. */
  partial: string;
  /** rsync options of this filesystem's way of making a snapshot from the previous one. */
  rsyncArgs: string[];
  /** Older `.partial` snapshots this one replaces: removed once it is complete. */
  stalePartials: string[];
  /** What an interrupted run copied is reused (not copied again). */
  resumes: boolean;
}

export interface NewSnapshotOptions {
  snapshotsDir: string;
  name: string;
  refs: SnapshotRef[];
  /** The newest complete snapshot, if any. */
  previous: SnapshotRef | undefined;
  /** The run before was cut off before its data was flushed (the filesystem was not clean). */
  cutOff: boolean;
}

/**
 * What sshvault needs of the filesystem inside the vault (docs/design.md,
 * "Filesystems"): making it, mounting it, what it needs after an unclean
 * stop, checking it, and how it makes, seals and deletes snapshots. The
 * FsLayer is what runs mount and umount, with this filesystem's options.
 */
export interface Filesystem {
  readonly type: FsType;
  /** The smallest image `init` makes for it, LUKS header included. */
  readonly minImageBytes: number;
  /**
   * Plaintext bytes every writing run rewrites (its superblock): a reused
   * block cache proves itself by them (docs/design.md, "Trusting the host"),
   * and being rewritten they stay in the cache however much else a push writes.
   */
  readonly rewrittenEveryRun: ByteRange;
  /** Whether push writes a SHA-256 manifest per snapshot: needed where the filesystem has no data checksums. */
  readonly keepsManifests: boolean;
  /** What a full check is called, for messages. */
  readonly checker: string;
  /** Whether `check --repair` and `--undo-repair` exist for it. */
  readonly repairs: boolean;
  make(device: string): Promise<void>;
  mountOptions(readOnly: boolean): string[];
  /** Before mounting: looks at the state an earlier run left and repairs what it may. True if that run was cut off. */
  prepare(device: string, o: OpenOptions): Promise<boolean>;
  /** `sshvault check` on the unmounted device; with `repairUndo`, repairs and keeps an undo file there. */
  check(device: string, repairUndo?: string): Promise<FsckResult>;
  /** `check --undo-repair`. */
  undoRepair(device: string, undoFile: string): Promise<void>;
  /**
   * Where file data lives on the device now, if the filesystem keeps it
   * apart from metadata: the block cache keeps none of it, as no walk reads
   * it again. Asked again while mounted, since a push allocates more.
   */
  fileDataRanges?(device: string): Promise<ByteRange[]>;
  /** `check --verify-data` on the mounted filesystem: the content of the named complete snapshots. */
  verifyData(layout: ImageLayout, names: string[], progress: VerifyProgress): Promise<VerifyResult>;
  /** Makes `<name>.partial` from the previous complete snapshot (or empty). */
  newSnapshot(o: NewSnapshotOptions): Promise<NewSnapshot>;
  /** Makes a filled `.partial` immutable, flushes, then renames it to its final name. */
  finishSnapshot(partial: string, final: string, flush: () => Promise<void>): Promise<void>;
  /** Deletes one snapshot directory (complete, `.partial` or `.deleting`). */
  removeSnapshot(dir: string): Promise<void>;
}
