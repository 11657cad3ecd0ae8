import { describe, expect, it } from 'vitest';
import { dataChunkRanges } from '../../src/stack/filesystems/btrfs/chunks.js';

// `btrfs inspect-internal dump-tree -t chunk` (btrfs-progs 6.2) of a `-m single -d single` filesystem after 300 MB of
// writes, with the last stripe moved away from its logical address to tell the two apart.
const DUMP = `chunk tree
leaf 1060864 items 6 free space 3347 generation 7 owner CHUNK_TREE
leaf 1060864 flags 0x1(WRITTEN) backref revision 1
fs uuid 8530b338-15ce-41c2-9af9-27fa3042cc6a
chunk uuid 52ae86a2-60e8-42b0-95b6-a514c72ef11d
\titem 0 key (DEV_ITEMS DEV_ITEM 1) itemoff 3897 itemsize 98
\t\tdevid 1 total_bytes 3221225472 bytes_used 692060160
\t\tio_align 4096 io_width 4096 sector_size 4096 type 0
\t\tgeneration 0 start_offset 0 dev_group 0
\t\tseek_speed 0 bandwidth 0
\t\tuuid 72c83ad1-299e-433b-a60b-89ca0938f2e5
\t\tfsid 8530b338-15ce-41c2-9af9-27fa3042cc6a
\titem 1 key (FIRST_CHUNK_TREE CHUNK_ITEM 1048576) itemoff 3817 itemsize 80
\t\tlength 4194304 owner 2 stripe_len 65536 type SYSTEM|single
\t\tio_align 4096 io_width 4096 sector_size 4096
\t\tnum_stripes 1 sub_stripes 0
\t\t\tstripe 0 devid 1 offset 1048576
\t\t\tdev_uuid 72c83ad1-299e-433b-a60b-89ca0938f2e5
\titem 2 key (FIRST_CHUNK_TREE CHUNK_ITEM 5242880) itemoff 3737 itemsize 80
\t\tlength 8388608 owner 2 stripe_len 65536 type METADATA|single
\t\tio_align 65536 io_width 65536 sector_size 4096
\t\tnum_stripes 1 sub_stripes 1
\t\t\tstripe 0 devid 1 offset 5242880
\t\t\tdev_uuid 72c83ad1-299e-433b-a60b-89ca0938f2e5
\titem 3 key (FIRST_CHUNK_TREE CHUNK_ITEM 13631488) itemoff 3657 itemsize 80
\t\tlength 8388608 owner 2 stripe_len 65536 type DATA|single
\t\tio_align 65536 io_width 65536 sector_size 4096
\t\tnum_stripes 1 sub_stripes 1
\t\t\tstripe 0 devid 1 offset 13631488
\t\t\tdev_uuid 72c83ad1-299e-433b-a60b-89ca0938f2e5
\titem 4 key (FIRST_CHUNK_TREE CHUNK_ITEM 22020096) itemoff 3577 itemsize 80
\t\tlength 335544320 owner 2 stripe_len 65536 type DATA|single
\t\tio_align 65536 io_width 65536 sector_size 4096
\t\tnum_stripes 1 sub_stripes 1
\t\t\tstripe 0 devid 1 offset 357564416
\t\t\tdev_uuid 72c83ad1-299e-433b-a60b-89ca0938f2e5
`;

describe('dataChunkRanges', () => {
  it('gives the device ranges of data chunks (the stripe offset, not the logical address), in order', () => {
    expect(dataChunkRanges(DUMP)).toEqual([
      { from: 13631488, to: 13631488 + 8388608 },
      { from: 357564416, to: 357564416 + 335544320 },
    ]);
  });

  it('leaves out mixed chunks, striped profiles and anything it cannot read', () => {
    const mixed = DUMP.replace('type DATA|single', 'type DATA|METADATA|single').replace('length 335544320 owner 2 stripe_len 65536 type DATA|single', 'length 335544320 owner 2 stripe_len 65536 type DATA|RAID0');
    expect(dataChunkRanges(mixed)).toEqual([]);
    expect(dataChunkRanges('ERROR: not a btrfs filesystem')).toEqual([]);
  });

  it('takes a chunk without a profile (older btrfs-progs) as single', () => {
    expect(dataChunkRanges(DUMP.replaceAll('DATA|single', 'DATA'))).toHaveLength(2);
  });
});
