import { run } from '../../exec.js';
import type { Child } from '../../exec.js';
import { debug } from '../../log.js';
import { abortFuse, isMounted, waitUntil } from './mounts.js';

/**
 * Unmounts a FUSE filesystem served by one of our children (sshfs, nbdfuse)
 * and waits for the child to go. A clean `fusermount3 -u` lets the daemon
 * flush; if the mount is busy or its server hangs, the connection is aborted
 * and the mount detached lazily so the teardown always finishes.
 */
export async function unmountFuse(mountpoint: string, child: Child | undefined, timeoutMs = 60_000): Promise<void> {
  if (await isMounted(mountpoint)) {
    let clean = false;
    for (let i = 0; i < 5 && !clean; i++) {
      try {
        await run('fusermount3', ['-u', mountpoint], { timeoutMs: timeoutMs / 2 });
        clean = true;
      } catch (e) {
        debug(`fusermount3 -u ${mountpoint} failed: ${(e as Error).message}`);
        if (!(await isMounted(mountpoint))) break;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    if (!clean && (await isMounted(mountpoint))) {
      await abortFuse(mountpoint);
      await run('fusermount3', ['-u', '-z', mountpoint]).catch(() => run('umount', ['-l', mountpoint]));
    }
  }
  if (child?.running()) {
    let timer: NodeJS.Timeout | undefined;
    const gone = await Promise.race([
      child.exited.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (!gone) child.process.kill('SIGKILL');
    await waitUntil(() => !child.running(), 5000);
  }
}
