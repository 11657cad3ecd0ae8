import { readRuns } from '../snapshot/runs.js';
import { info } from '../ui/console.js';
import { parseLink } from '../ui/format.js';
import { DEFAULT_LINK, renderRunsTable } from '../ui/runs-view.js';
import { UsageError } from '../errors.js';
import { openContext, type GlobalArgs } from './common.js';

export interface StatsArgs extends GlobalArgs {
  vault?: string;
  link?: string;
}

export async function cmdStats(a: StatsArgs): Promise<number> {
  const ctx = await openContext(a.vault);
  const link = a.link ?? DEFAULT_LINK;
  try {
    parseLink(link);
  } catch (e) {
    throw new UsageError(`--link ${link}: ${(e as Error).message}`);
  }
  const runs = await readRuns(ctx.paths.runsFile);
  if (a.json) {
    info(JSON.stringify({ runs }, null, 2));
  } else if (!runs.length) {
    info(`No runs recorded for vault '${ctx.name}' yet.`);
  } else {
    info(renderRunsTable(runs, link));
  }
  return 0;
}
