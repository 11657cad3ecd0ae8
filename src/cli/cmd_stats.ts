import { readRuns } from '../snapshot/runs.js';
import { writeFile } from 'node:fs/promises';
import { info, notice } from '../ui/console.js';
import { plotRuns } from '../ui/plot.js';
import { parseLink, plural } from '../ui/format.js';
import { DEFAULT_LINK, renderRunsTable } from '../ui/runs-view.js';
import { UsageError } from '../errors.js';
import { openContext } from './common.js';
import { action } from './action.js';
import { vaultArg, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) =>
  vaultArg(y)
    .option('link', { type: 'string', describe: 'link to estimate times for, e.g. 10mbit or 50/10mbit (down/up)', default: '10mbit' })
    .option('plot', { type: 'string', describe: 'draw bytes up and down per run over time into this SVG file' })
    .example('$0 stats --link 50/10mbit', 'what each run would take on a 50 Mbit down, 10 Mbit up line')
    .example('$0 stats --plot traffic.svg', 'are the backups getting more expensive?');

type StatsArgs = ArgsOf<typeof builder>;

export const statsCommand: CommandOf<typeof builder> = {
  command: 'stats [vault]',
  describe: 'bytes up and down of every run, phase by phase',
  builder,
  handler: action('stats', cmdStats),
};

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
