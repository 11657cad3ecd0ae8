import { resolve } from 'node:path';
import { LockHeldError, UsageError } from '../errors.js';
import { run } from '../exec.js';
import { metered, onMains, powerSupplies } from '../schedule/conditions.js';
import { installedSchedules, installUnits, isSystem, removeUnits, systemdRunning, unitDir } from '../schedule/systemd.js';
import { crontabLine, defaultRandomDelay, serviceUnit, timerUnit, unitName, type ScheduleSpec } from '../schedule/units.js';
import { RunLock } from '../stack/run-lock.js';
import { info, notice, warn } from '../ui/console.js';
import { renderTable } from '../ui/table.js';
import { formatTime } from '../ui/time.js';
import { openContext } from './common.js';
import { action } from './action.js';
import { vaultArg, type ArgsOf, type CommandArgv, type CommandOf } from './options.js';

const builder = (y: CommandArgv) =>
  vaultArg(y)
    .option('every', { type: 'string', describe: 'hourly, daily, or a systemd OnCalendar expression' })
    .option('dry-run', { type: 'boolean', describe: 'print the units, install nothing' })
    .option('remove', { type: 'boolean', describe: "remove the vault's units" })
    .option('list', { type: 'boolean', describe: 'every vault with a schedule, its last and next run' })
    .option('allow-metered', { type: 'boolean', describe: 'also run on a connection NetworkManager reports as metered' })
    .option('allow-battery', { type: 'boolean', describe: 'also run on battery' })
    .option('random-delay', { type: 'number', describe: 'seconds a run may be delayed at random (default by --every)' })
    .option('check-conditions', { type: 'boolean', hidden: true })
    .example('$0 schedule laptop --every hourly', 'hourly, on AC power, not on metered connections')
    .example('$0 schedule laptop --every "*-*-* 02:30" --dry-run', 'print the units of a nightly run');

type ScheduleArgs = ArgsOf<typeof builder>;

export const scheduleCommand: CommandOf<typeof builder> = {
  command: 'schedule [vault]',
  describe: 'back up on a timer (systemd; a crontab line without it)',
  builder,
  handler: action('schedule', cmdSchedule, { staleWarning: false }),
};

/** Exit code of `--check-conditions` when the run should be skipped: systemd's ExecCondition skips on 1-254 without a failure. */
const SKIP = 1;

export async function cmdSchedule(a: ScheduleArgs): Promise<number> {
  if (a.list) return listSchedules(a);
  const ctx = await openContext(a.vault);
  if (a.checkConditions) return checkConditions(a, ctx);
  const system = isSystem();
  if (a.remove) {
    const removed = systemdRunning() || a.dryRun ? (a.dryRun ? [] : await removeUnits(ctx.name, system)) : [];
    if (!systemdRunning()) notice(`systemd is not running here: remove the vault's line from your crontab with 'crontab -e'.`);
    else info(removed.length ? `Removed the schedule of vault '${ctx.name}': ${removed.join(', ')}.` : `Vault '${ctx.name}' had no schedule.`);
    return 0;
  }
  if (!a.every) throw new UsageError(`say how often with --every hourly, daily or a systemd calendar expression (e.g. '*-*-* 02:30')`);
  await checkCalendar(a.every);
  const spec: ScheduleSpec = {
    vault: ctx.name,
    every: a.every,
    sshvault: [process.execPath, resolve(process.argv[1])],
    acOnly: !a.allowBattery,
    allowMetered: !!a.allowMetered,
    randomDelaySec: a.randomDelay ?? defaultRandomDelay(a.every),
    environment: Object.fromEntries(['XDG_CONFIG_HOME', 'XDG_STATE_HOME', 'XDG_CACHE_HOME'].filter((k) => process.env[k]).map((k) => [k, process.env[k]!])),
    system,
  };
  if (!ctx.config.passphraseFile && !ctx.config.passphraseCommand) {
    warn(`vault '${ctx.name}' has no passphraseFile or passphraseCommand in its config; a scheduled run cannot ask for the passphrase`);
  }
  const service = serviceUnit(spec);
  const timer = timerUnit(spec);
  if (a.dryRun) {
    const dir = unitDir(system);
    info(`# ${dir}/${unitName(ctx.name, 'service')}\n${service}\n# ${dir}/${unitName(ctx.name, 'timer')}\n${timer}`);
    const cron = crontabLine(spec);
    if (cron) info(`# without systemd, the same as a crontab line:\n${cron}`);
    return 0;
  }
  if (!systemdRunning()) {
    const cron = crontabLine(spec);
    if (!cron) throw new UsageError(`systemd is not running here and '${a.every}' has no crontab equivalent; use --every hourly or daily`);
    notice(`systemd is not running here; add this line with 'crontab -e' to back up vault '${ctx.name}' ${a.every}:`);
    info(cron);
    return 0;
  }
  const files = await installUnits(ctx.name, system, service, timer);
  info(`Vault '${ctx.name}' is backed up ${a.every}: ${files.join(', ')} (enabled). 'sshvault schedule --list' shows the next run.`);
  return 0;
}

/** A typo in a calendar expression would make a timer that never fires; systemd-analyze knows the grammar. */
async function checkCalendar(every: string): Promise<void> {
  if (!/\s|[*:,~/]/.test(every) && ['hourly', 'daily', 'weekly', 'monthly', 'minutely'].includes(every)) return;
  try {
    await run('systemd-analyze', ['calendar', every], { timeoutMs: 10_000 });
  } catch (e) {
    const msg = (e as Error).message;
    if (/could not start/.test(msg)) return;
    throw new UsageError(`--every '${every}' is not a systemd calendar expression (${msg}); see 'man systemd.time'`);
  }
}

async function checkConditions(a: ScheduleArgs, ctx: Awaited<ReturnType<typeof openContext>>): Promise<number> {
  if (!a.allowBattery && !onMains(await powerSupplies())) {
    notice(`Skipping the scheduled backup of vault '${ctx.name}': on battery.`);
    return SKIP;
  }
  if (!a.allowMetered && (await metered())) {
    notice(`Skipping the scheduled backup of vault '${ctx.name}': the connection is metered (--allow-metered overrides).`);
    return SKIP;
  }
  try {
    await (await RunLock.take(ctx.paths, ctx.name)).release();
  } catch (e) {
    if (!(e instanceof LockHeldError)) throw e;
    notice(`Skipping the scheduled backup of vault '${ctx.name}': another run of it is active.`);
    return SKIP;
  }
  return 0;
}

async function listSchedules(a: ScheduleArgs): Promise<number> {
  const system = isSystem();
  const all = await installedSchedules(system);
  if (a.json) {
    info(JSON.stringify({ systemd: systemdRunning(), unitDir: unitDir(system), schedules: all }, null, 2));
    return 0;
  }
  if (!systemdRunning()) notice('systemd is not running here: schedules made without it are crontab lines (crontab -l).');
  if (!all.length) {
    info('No vault has a schedule.');
    return 0;
  }
  const at = (t?: string) => (t ? formatTime(t) : '-');
  info(renderTable(['vault', 'every', 'last run', 'next run'], all.map((s) => [s.vault, s.every, at(s.last), at(s.next)])));
  return 0;
}
