import { describe, expect, it } from 'vitest';
import { onMains, parseMetered } from '../../src/schedule/conditions.js';
import { parseShowTime } from '../../src/schedule/systemd.js';
import { crontabLine, parseUnit, serviceUnit, timerUnit, type ScheduleSpec } from '../../src/schedule/units.js';

const spec: ScheduleSpec = {
  vault: 'laptop',
  every: 'hourly',
  sshvault: ['/usr/bin/node', '/opt/sshvault/bin/sshvault'],
  acOnly: true,
  allowMetered: false,
  randomDelaySec: 300,
  environment: { XDG_CONFIG_HOME: '/home/me/my config' },
  system: true,
};

describe('systemd units', () => {
  it('the service runs push of the vault as root, niced, after the conditions', () => {
    const u = parseUnit(serviceUnit(spec));
    expect(u.Service.ExecStart).toEqual(['/usr/bin/node /opt/sshvault/bin/sshvault push laptop']);
    expect(u.Service.ExecCondition).toEqual(['/usr/bin/node /opt/sshvault/bin/sshvault schedule laptop --check-conditions']);
    expect(u.Service.User).toEqual(['root']);
    expect(u.Service.Type).toEqual(['oneshot']);
    expect(u.Service.Nice).toEqual(['10']);
    expect(u.Service.IOSchedulingClass).toEqual(['idle']);
    expect(u.Service.Environment).toEqual(['"XDG_CONFIG_HOME=/home/me/my config"']);
    expect(u.Unit.ConditionACPower).toEqual(['true']);
  });

  it('switches: battery allowed, metered allowed, user units', () => {
    const u = parseUnit(serviceUnit({ ...spec, acOnly: false, allowMetered: true, system: false }));
    expect(u.Unit.ConditionACPower).toBeUndefined();
    expect(u.Service.User).toBeUndefined();
    expect(u.Service.ExecCondition[0]).toMatch(/--check-conditions --allow-metered --allow-battery$/);
  });

  it('the timer catches up after sleep and spreads its start', () => {
    const t = parseUnit(timerUnit({ ...spec, every: '*-*-* 02:30' }));
    expect(t.Timer).toEqual({ OnCalendar: ['*-*-* 02:30'], Persistent: ['true'], RandomizedDelaySec: ['300'], Unit: ['sshvault-laptop.service'] });
    expect(t.Install.WantedBy).toEqual(['timers.target']);
  });

  it('quotes what systemd would split or expand', () => {
    const u = parseUnit(serviceUnit({ ...spec, vault: 'v', sshvault: ['/usr/bin/node', '/opt/my tools/100%/sshvault'] }));
    expect(u.Service.ExecStart).toEqual(['/usr/bin/node "/opt/my tools/100%%/sshvault" push v']);
  });
});

describe('crontab line', () => {
  it('hourly and daily translate, checks first, then a niced push', () => {
    const line = crontabLine(spec)!;
    expect(line).toMatch(/^\d{1,2} \* \* \* \* /);
    expect(line).toContain("XDG_CONFIG_HOME='/home/me/my config' /usr/bin/node /opt/sshvault/bin/sshvault schedule laptop --check-conditions && ");
    expect(line).toMatch(/nice -n 10 ionice -c 3 \/usr\/bin\/node \/opt\/sshvault\/bin\/sshvault push laptop$/);
    expect(crontabLine({ ...spec, every: 'daily' })).toMatch(/^\d{1,2} 3 \* \* \* /);
  });

  it('a calendar expression has none', () => {
    expect(crontabLine({ ...spec, every: 'Mon *-*-* 02:00' })).toBeUndefined();
  });
});

describe('conditions', () => {
  it.each([
    ['u 0', false],
    ['u 1', true],
    ['u 2', false],
    ['u 3', true],
    ['u 4', false],
    ['', false],
  ])('NetworkManager Metered %j -> %s', (out, m) => {
    expect(parseMetered(out)).toBe(m);
  });

  it('AC power as systemd sees it', () => {
    expect(onMains([])).toBe(true);
    expect(onMains([{ type: 'Mains', online: true }, { type: 'Battery' }])).toBe(true);
    expect(onMains([{ type: 'Mains', online: false }, { type: 'Battery' }])).toBe(false);
    expect(onMains([{ type: 'Battery' }])).toBe(false);
    expect(onMains([{ type: 'USB', online: true }])).toBe(true);
  });

  it('systemctl show times', () => {
    expect(parseShowTime('Mon 2026-11-30 05:00:12 UTC')).toBe('2026-11-30T05:00:12.000Z');
    expect(parseShowTime('n/a')).toBeUndefined();
    expect(parseShowTime('')).toBeUndefined();
  });
});
