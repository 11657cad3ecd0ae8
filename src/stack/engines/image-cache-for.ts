import { join } from 'node:path';
import { ImageCacheLayer } from '../block/image-cache.js';
import type { BlockContext } from './engine.js';

/** The NBD server with its block cache, serving the ciphertext image: the bottom of both engines' block path. */
export function imageCacheFor(ctx: BlockContext): ImageCacheLayer {
  return new ImageCacheLayer({
    conn: ctx.conn,
    phdr: ctx.phdr,
    header: ctx.header,
    socket: ctx.paths.imageSocket,
    cacheDir: ctx.scratchCache ? join(ctx.paths.run, 'scratch-blocks') : ctx.paths.blockCache,
    scratch: !!ctx.scratchCache,
    generation: ctx.generation,
    maxBytes: ctx.cacheBytes,
    rewrittenEveryRun: ctx.rewrittenEveryRun,
    readOnly: ctx.readOnly,
    command: ctx.command,
    notice: ctx.notice,
  });
}
