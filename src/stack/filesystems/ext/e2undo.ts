/**
 * Reader for e2fsprogs' undo files ("E2UNDO02", what `e2fsck -z` writes): the
 * old contents of every filesystem block the program changed. Layout as in
 * e2fsprogs' misc/e2undo.c: a header block, a copy of the superblock, then
 * runs of one key block (keys of {fsblk, crc, size}) followed by the data
 * blocks those keys describe. Pure: the caller reads the file.
 */

const MAGIC = 'E2UNDO02';
const KEYBLOCK_MAGIC = 0xcadecade;
const STATE_FINISHED = 0x1;
const HEADER_CRC_OFFSET = 508;
const KEY_SIZE = 16;

let table: Uint32Array | undefined;

/** CRC32C as e2fsprogs' ext2fs_crc32c_le computes it: reflected, no final inversion. */
export function crc32c(seed: number, data: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      table[i] = c >>> 0;
    }
  }
  let crc = seed >>> 0;
  for (const b of data) crc = (table[(crc ^ b) & 0xff]! ^ (crc >>> 8)) >>> 0;
  return crc;
}

export interface UndoExtent {
  /** Byte offset in the device where these old contents belong. */
  offset: number;
  /** The contents before the change. */
  old: Buffer;
}

export interface UndoFile {
  /** The program finished and closed the undo file: it lists every change it made. */
  finished: boolean;
  fsBlockSize: number;
  extents: UndoExtent[];
}

export class UndoFormatError extends Error {}

/** Parses and checks an undo file: header, key-block and data checksums must all match. */
export function parseUndoFile(file: Buffer): UndoFile {
  if (file.length < 512 || file.toString('latin1', 0, 8) !== MAGIC) throw new UndoFormatError('not an e2undo file');
  if (crc32c(0xffffffff, file.subarray(0, HEADER_CRC_OFFSET)) !== file.readUInt32LE(HEADER_CRC_OFFSET)) {
    throw new UndoFormatError('undo file header checksum mismatch');
  }
  const numKeys = Number(file.readBigUInt64LE(8));
  const keyOffset = Number(file.readBigUInt64LE(24));
  const blockSize = file.readUInt32LE(32);
  const fsBlockSize = file.readUInt32LE(36);
  const state = file.readUInt32LE(44);
  const fsOffset = file.readUInt32LE(48) & 0x1 ? Number(file.readBigUInt64LE(64)) : 0;
  if (file.readUInt32LE(52) || file.readUInt32LE(56)) throw new UndoFormatError('undo file has unknown features');
  if (blockSize < 1024 || blockSize > 1 << 20 || fsBlockSize === 0) throw new UndoFormatError('corrupt undo file header');

  const block = (n: number, bytes = blockSize): Buffer => {
    const start = n * blockSize;
    if (start + bytes > file.length) throw new UndoFormatError(`undo file is truncated at block ${n}`);
    return file.subarray(start, start + bytes);
  };
  const keysPerBlock = blockSize / KEY_SIZE - 1;
  const extents: UndoExtent[] = [];
  let lblk = keyOffset;
  for (let i = 0; i < numKeys; i += keysPerBlock) {
    const kb = Buffer.from(block(lblk));
    if (kb.readUInt32LE(0) !== KEYBLOCK_MAGIC) throw new UndoFormatError(`wrong key block magic at undo block ${lblk}`);
    const crc = kb.readUInt32LE(4);
    kb.writeUInt32LE(0, 4);
    if (crc32c(0xffffffff, kb) !== crc) throw new UndoFormatError(`key block checksum mismatch at undo block ${lblk}`);
    lblk++;
    for (let j = 0; j < Math.min(keysPerBlock, numKeys - i); j++) {
      const at = KEY_SIZE * (j + 1);
      const fsblk = Number(kb.readBigUInt64LE(at));
      const blkCrc = kb.readUInt32LE(at + 8);
      const size = kb.readUInt32LE(at + 12);
      const old = block(lblk, size);
      if (crc32c(0xffffffff, old) !== blkCrc) throw new UndoFormatError(`checksum mismatch of filesystem block ${fsblk} in the undo file`);
      extents.push({ offset: fsOffset + fsblk * fsBlockSize, old });
      lblk += Math.ceil(size / blockSize);
    }
  }
  return { finished: (state & STATE_FINISHED) !== 0, fsBlockSize, extents };
}
