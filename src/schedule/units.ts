/**
 * The systemd units (or, without systemd, the crontab line) that make a
 * vault back itself up. Pure text: the tests parse what `schedule --dry-run`
 * prints, and the same text is what gets installed.
 */
export interface ScheduleSpec {
  vault: string;
  /** `hourly`, `daily`, or any systemd OnCalendar expression. */
  every: string;
  /** argv that runs sshvault itself: node and the script, absolute. */
  sshvault: string[];
  /** Only on mains power (systemd's ConditionACPower=). */
  acOnly: boolean;
  /** Also on a connection NetworkManager reports as metered. */
  allowMetered: boolean;
  randomDelaySec: number;
  /** XDG variables the vault's config and state were found with, so the unit finds them too. */
  environment: Record<string, string>;
  /** System units run as root; user units as the user who owns the user manager. */
  system: boolean;
}

export function unitName(vault: string, kind: 'service' | 'timer'): string {
  return `sshvault-${vault}.${kind}`;
}

/** How long a timer may wait past its time, spread so that many laptops do not hit one host at the hour. */
export function defaultRandomDelay(every: string): number {
  if (every === 'hourly') return 300;
  if (every === 'daily') return 1800;
  return 600;
}

function quoteArg(a: string): string {
  // systemd's own quoting: double quotes, with backslash escapes; '%' is a specifier.
  const q = a.replace(/%/g, '%%');
  return /^[\w@%+=:,./-]+$/.test(q) ? q : `"${q.replace(/(["\\])/g, '\\$1')}"`;
}

function commandLine(argv: string[]): string {
  return argv.map(quoteArg).join(' ');
}

export function conditionArgv(s: ScheduleSpec): string[] {
  return [...s.sshvault, 'schedule', s.vault, '--check-conditions', ...(s.allowMetered ? ['--allow-metered'] : []), ...(s.acOnly ? [] : ['--allow-battery'])];
}

export function serviceUnit(s: ScheduleSpec): string {
  const env = Object.entries(s.environment).map(([k, v]) => `Environment=${quoteArg(`${k}=${v}`)}`);
  return [
    '[Unit]',
    `Description=sshvault: back up vault ${s.vault}`,
    'Documentation=man:sshvault(1)',
    'Wants=network-online.target',
    'After=network-online.target',
    ...(s.acOnly ? ['ConditionACPower=true'] : []),
    '',
    '[Service]',
    'Type=oneshot',
    ...(s.system ? ['User=root'] : []),
    ...env,
    // Exit 1 from the condition skips the run without counting it as a failure.
    `ExecCondition=${commandLine(conditionArgv(s))}`,
    `ExecStart=${commandLine([...s.sshvault, 'push', s.vault])}`,
    'Nice=10',
    'IOSchedulingClass=idle',
    '',
  ].join('\n');
}

export function timerUnit(s: ScheduleSpec): string {
  return [
    '[Unit]',
    `Description=sshvault: schedule of vault ${s.vault}`,
    '',
    '[Timer]',
    `OnCalendar=${s.every}`,
    // A run missed while the machine slept or was off happens once it is back.
    'Persistent=true',
    `RandomizedDelaySec=${s.randomDelaySec}`,
    `Unit=${unitName(s.vault, 'service')}`,
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
}

const CRON_EVERY: Record<string, (minute: number) => string> = {
  hourly: (m) => `${m} * * * *`,
  daily: (m) => `${m} 3 * * *`,
};

/** Without systemd: the same job as a crontab line. Only hourly and daily translate; the minute is spread like the timer's delay. */
export function crontabLine(s: ScheduleSpec): string | undefined {
  const when = CRON_EVERY[s.every];
  if (!when) return undefined;
  let h = 0;
  for (const c of s.vault) h = (h * 31 + c.charCodeAt(0)) % 60;
  const env = Object.entries(s.environment).map(([k, v]) => `${k}=${shellQuote(v)} `).join('');
  const cond = conditionArgv(s).map(shellQuote).join(' ');
  const push = [...s.sshvault, 'push', s.vault].map(shellQuote).join(' ');
  return `${when(h)} ${env}${cond} && ${env}nice -n 10 ionice -c 3 ${push}`;
}

function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** The key=value lines of a unit file section, for `schedule --list` and the tests. */
export function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1];
      out[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    ((out[section] ??= {})[key] ??= []).push(line.slice(eq + 1).trim());
  }
  return out;
}
