import { InterruptedError } from '../errors.js';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Turns SIGINT/SIGTERM/SIGHUP into an abort of the running command, so the
 * stack is torn down by the normal error path. Later signals do not cut the
 * teardown short: a half-closed stack is worse than a slow exit.
 */
export function trapSignals(controller: AbortController, notice: (message: string) => void): () => void {
  const handler = (sig: NodeJS.Signals) => {
    if (!controller.signal.aborted) {
      notice(`Received ${sig}: stopping and closing the vault cleanly...`);
      controller.abort(new InterruptedError(sig));
    } else {
      notice('Still closing the vault; please wait (unmounting now would leave the image unclean).');
    }
  };
  for (const s of SIGNALS) process.on(s, handler);
  return () => {
    for (const s of SIGNALS) process.off(s, handler);
  };
}
