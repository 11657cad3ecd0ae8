import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/remote/connection.js';
import { ImageCacheLayer } from '../../src/stack/block/image-cache.js';

describe('image cache layer', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('opens the image it is given by the layer below', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sshvault-image-cache-'));
    const opened: string[] = [];
    const sftp = {
      open: (path: string, _flags: string, cb: (err: Error | undefined) => void) => {
        opened.push(path);
        cb(new Error('No such file'));
      },
    } as unknown as SFTPWrapper;
    const conn = { openSftp: async () => sftp, lost: false, target: 'host' } as unknown as Connection;
    const layer = new ImageCacheLayer({
      conn,
      socket: join(dir, 'image.sock'),
      cacheDir: join(dir, 'blocks'),
      generation: {},
      maxBytes: 0,
      readOnly: true,
      command: 'list',
      notice: () => {},
    });
    await expect(layer.open('backups/laptop/vault.img')).rejects.toThrow(/No such file/);
    expect(opened).toEqual(['backups/laptop/vault.img']);
  });
});
