import { readRuns } from '../snapshot/runs.js';
import { writeFile } from 'node:fs/promises';
import { info, notice } from '../ui/console.js';
import { plotRuns } from '../ui/plot.js';
import { parseLink, plural } from '../ui/format.js';
import { DEFAULT_LINK, renderRunsTable } from '../ui/runs-view.js';
import { UsageError } from '../errors.js';
import { openContext, type GlobalArgs } from './common.js';

export interface StatsArgs extends GlobalArgs {
  vault?: string;
  link?: string;
  plot?: string;
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
  if (a.plot) {
    if (!runs.length) throw new UsageError(`vault '${ctx.name}' has no runs to plot yet`);
    await writeFile(a.plot, plotRuns(runs, ctx.name));
    notice(`Wrote ${a.plot}: ${plural(runs.length, 'run')}.`);
    return 0;
  }
  if (a.json) {
    info(JSON.stringify({ runs }, null, 2));
  } else if (!runs.length) {
    info(`No runs recorded for vault '${ctx.name}' yet.`);
  } else {
    info(renderRunsTable(runs, link));
  }
  return 0;
}
