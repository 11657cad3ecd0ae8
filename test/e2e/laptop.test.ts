import { execa } from 'execa';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, workspace, type Workspace } from '../helpers/cli.js';
import { parseUnit } from '../../src/schedule/units.js';
import { setupVault, type TestVault } from '../helpers/vault.js';
import { startRelay } from '../helpers/relay.js';
import { randomBytes } from 'node:crypto';
import { processTree, signal, sleep } from '../helpers/proc.js';

/**
 * The unattended side: schedule, status, push hooks, and output that reads
 * right off a terminal and on one. Nothing here needs a host but the
 * progress bar, which runs a real push.
 */

const ESC = '\x1b[';
let ws: Workspace;
const vault = 'lap';

async function writeConfig(w: Workspace, extra: Record<string, unknown> = {}): Promise<void> {
  const dir = join(w.env.XDG_CONFIG_HOME, 'sshvault');
  await mkdir(dir, { recursive: true });
  await mkdir(join(w.dir, 'src'), { recursive: true });
  await writeFile(
    join(dir, `${vault}.json`),
    JSON.stringify({
      name: vault,
      vaultId: '0f0f',
      // Nothing listens on port 1 of the loopback: the push fails at connect, exit 4.
      remote: 'ssh://root@127.0.0.1:1/srv/none',
      image: 'vault.img',
      size: 1 << 28,
      fs: 'ext4',
      engine: 'userspace',
      sources: [join(w.dir, 'src')],
      excludes: [],
      passphraseFile: w.passphraseFile,
      identity: join(w.dir, 'id_ed25519'),
      ...extra,
    }),
  );
}

async function writeRuns(w: Workspace, finishedAgoMs: number): Promise<void> {
  const dir = join(w.env.XDG_STATE_HOME, 'sshvault', vault);
  await mkdir(dir, { recursive: true });
  const finished = new Date(Date.now() - finishedAgoMs).toISOString();
  const run = { id: 'x', command: 'push', vault, snapshot: '2026-11-30T040413Z', started: finished, finished, ok: true, exitCode: 0, changedBytes: 1, upBytes: 2, downBytes: 3, phases: [], remoteFreeBytes: 1 << 30 };
  await writeFile(join(dir, 'runs.jsonl'), JSON.stringify(run) + '\n');
}

/** A private mount namespace in which systemd seems to run: /run and the system unit directory are fresh tmpfs. */
function inFakeSystemd(w: Workspace, script: string) {
  return execa('unshare', ['-m', '--propagation', 'private', 'sh', '-euc', `
    mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system
    mkdir -p /etc/systemd/system && mount -t tmpfs tmpfs /etc/systemd/system
    PATH=${join(w.dir, 'fakebin')}:$PATH
    ${script}`], { env: { ...w.env }, reject: false });
}

beforeAll(async () => {
  ws = await workspace();
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(ws.dir, 'id_ed25519')]);
  await writeConfig(ws);
  // No systemd runs here to enable a timer; systemctl --root does the same to the files, offline.
  await mkdir(join(ws.dir, 'fakebin'));
  await writeFile(
    join(ws.dir, 'fakebin', 'systemctl'),
    `#!/bin/sh
echo "$*" >> ${join(ws.dir, 'systemctl.log')}
case "$1" in
  enable|disable) verb=$1; shift; [ "$1" = --now ] && shift; exec /usr/bin/systemctl --root=/ "$verb" "$@" ;;
  *) exit 0 ;;
esac
`,
    { mode: 0o755 },
  );
});

afterAll(async () => {
  await ws.dispose();
});

describe('schedule', () => {
  it('--dry-run prints units that run push of the vault as root, on the timer, with the conditions', async () => {
    const r = await ws.sv(['schedule', vault, '--every', 'hourly', '--dry-run']);
    expect(r.exitCode).toBe(0);
    const [service, timer] = r.stdout.split(/^# .*\.(?:service|timer)$/m).slice(1);
    expect(r.stdout).toMatch(/^# \/etc\/systemd\/system\/sshvault-lap\.service$/m);
    const s = parseUnit(service);
    expect(s.Service.ExecStart).toEqual([`${process.execPath} ${BIN} push lap`]);
    expect(s.Service.User).toEqual(['root']);
    expect(s.Unit.ConditionACPower).toEqual(['true']);
    expect(s.Service.ExecCondition![0]).toBe(`${process.execPath} ${BIN} schedule lap --check-conditions`);
    expect(s.Service.Environment).toContain(`XDG_STATE_HOME=${ws.env.XDG_STATE_HOME}`);
    const t = parseUnit(timer.split(/^# without systemd/m)[0]);
    expect(t.Timer.OnCalendar).toEqual(['hourly']);
    expect(t.Timer.Persistent).toEqual(['true']);
    expect(Number(t.Timer.RandomizedDelaySec![0])).toBeGreaterThan(0);
  });

  it('the condition check passes here (AC or no battery, no NetworkManager, no other run) and its flags parse', async () => {
    const r = await ws.sv(['schedule', vault, '--check-conditions', '--allow-metered']);
    expect(r.exitCode, r.stderr).toBe(0);
  });

  it('installs and enables the units where systemd runs, and --remove leaves nothing', async () => {
    const r = await inFakeSystemd(ws, `
      ${BIN} schedule ${vault} --every daily
      ls -A /etc/systemd/system /etc/systemd/system/timers.target.wants
      ${BIN} schedule --list
      ${BIN} schedule ${vault} --remove
      echo "left: $(find /etc/systemd/system -mindepth 1 | wc -l)"`);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('sshvault-lap.service');
    expect(r.stdout).toMatch(/timers\.target\.wants:\s*\nsshvault-lap\.timer/);
    expect(r.stdout).toMatch(/^lap\s+daily\s/m);
    expect(r.stdout).toMatch(/^left: 0$/m);
    const log = await readFile(join(ws.dir, 'systemctl.log'), 'utf8');
    expect(log).toContain('enable --now sshvault-lap.timer');
    expect(log).toContain('disable --now sshvault-lap.timer');
  });

  it('without systemd it prints a crontab line and installs nothing', async () => {
    const r = await execa('unshare', ['-m', '--propagation', 'private', 'sh', '-euc', `mount -t tmpfs tmpfs /run; ${BIN} schedule ${vault} --every hourly`], { env: ws.env, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/systemd is not running here/);
    expect(r.stdout).toMatch(new RegExp(`^\\d+ \\* \\* \\* \\* .* schedule ${vault} --check-conditions && .*nice -n 10 ionice -c 3 .* push ${vault}$`, 'm'));
  });
});

describe('status', () => {
  it('exit 0 while the last success is within maxAge, 9 once it is older', async () => {
    await writeRuns(ws, 3600_000);
    const fresh = await ws.sv(['status', vault]);
    expect(fresh.exitCode, fresh.stderr).toBe(0);
    expect(fresh.stdout).toMatch(/^vault lap: ok/);
    expect(fresh.stdout).toMatch(/last success\s+\S+Z, 1h 0m ago \(snapshot 2026-11-30T040413Z\)/);
    expect(fresh.stdout).toMatch(/remote free\s+1 GiB/);

    await writeRuns(ws, 4 * 86_400_000);
    const stale = await ws.sv(['status', vault, '--json']);
    expect(stale.exitCode).toBe(9);
    expect(JSON.parse(stale.stdout)).toMatchObject({ vault, stale: true, maxAge: '3d', lastSuccess: { snapshot: '2026-11-30T040413Z' } });

    const other = await ws.sv(['stats', vault]);
    expect(other.stderr.match(/is stale/g)).toHaveLength(1);
  });

  it('maxAge comes from the config', async () => {
    await writeConfig(ws, { maxAge: '5d' });
    expect((await ws.sv(['status', vault])).exitCode).toBe(0);
    await writeConfig(ws);
  });
});

describe('push hooks', () => {
  it('a failing push runs --on-failure with the summary and SSHVAULT_* variables; a failing hook keeps the exit code', async () => {
    const out = join(ws.dir, 'hook.out');
    const r = await ws.sv(['push', vault, '--on-failure', `{ cat; env | grep ^SSHVAULT_ | sort; } > ${out}; exit 3`]);
    expect(r.exitCode).toBe(4);
    const got = await readFile(out, 'utf8');
    expect(got).toMatch(/^Push of vault lap failed \(exit 4\): /);
    expect(got).toMatch(/^SSHVAULT_EXIT_CODE=4$/m);
    expect(got).toMatch(/^SSHVAULT_VAULT=lap$/m);
    expect(got).toMatch(/^SSHVAULT_MESSAGE=.+/m);
    expect(got).toMatch(/^SSHVAULT_UP_BYTES=\d+$/m);
    expect(got).toMatch(/^SSHVAULT_DOWN_BYTES=\d+$/m);
    expect(r.stderr).toMatch(/on-failure command failed/);
  });

  it('the config names the hook too', async () => {
    const out = join(ws.dir, 'hook2.out');
    await writeConfig(ws, { onFailure: `cat > ${out}` });
    expect((await ws.sv(['push', vault])).exitCode).toBe(4);
    expect(await readFile(out, 'utf8')).toMatch(/failed \(exit 4\)/);
    await writeConfig(ws);
  });
});

describe('output', () => {
  // Without CI in the environment: chalk turns colour off on any terminal inside an unknown CI.
  const pty = (cmd: string, env: Record<string, string> = {}) =>
    execa('script', ['-q', '-e', '-c', cmd, '/dev/null'], { env: { ...process.env, CI: undefined, ...ws.env, TERM: 'xterm-256color', ...env }, extendEnv: false, reject: false });

  it('no escape codes off a terminal; colour on one, unless NO_COLOR or --no-color', async () => {
    await writeRuns(ws, 4 * 86_400_000);
    const piped = await ws.sv(['status', vault]);
    expect(piped.stdout + piped.stderr).not.toContain(ESC);
    expect((await pty(`${BIN} status ${vault}`)).stdout).toContain(ESC);
    expect((await pty(`${BIN} status ${vault}`, { NO_COLOR: '1' })).stdout).not.toContain(ESC);
    expect((await pty(`${BIN} status ${vault} --no-color`)).stdout).not.toContain(ESC);
  });

  it('list times are ISO 8601 UTC, or local with --local-time', async () => {
    const state = join(ws.env.XDG_STATE_HOME, 'sshvault', vault);
    await writeFile(join(state, 'catalog.json'), JSON.stringify({ vaultId: '0f0f', snapshots: [{ name: '2026-11-30T040413Z', time: '2026-11-30T04:04:13.000Z', complete: true, files: 1, bytes: 1 }] }));
    expect((await ws.sv(['list', vault])).stdout).toMatch(/2026-11-30T040413Z\s+2026-11-30T04:04:13Z\s+complete/);
    const local = await ws.sv(['list', vault, '--local-time'], { env: { TZ: 'Asia/Kolkata' } });
    expect(local.stdout).toMatch(/2026-11-30T09:34:13\+05:30/);
  });

  it('--quiet keeps the stale warning back', async () => {
    expect((await ws.sv(['stats', vault, '--quiet'])).stderr).toBe('');
  });
});

describe('help, completion and the man page', () => {
  const commands = ['init', 'push', 'list', 'stats', 'status', 'schedule', 'restore', 'mount', 'umount', 'check', 'prune', 'key', 'config', 'recover', 'unlock', 'doctor'];

  it('--help shows an example', async () => {
    const r = await ws.sv(['schedule', '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^Examples:\n\s+sshvault schedule laptop --every hourly/m);
  });

  it('completion prints a shell script for this program', async () => {
    const r = await ws.sv(['completion']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/complete -o bashdefault -o default -F _sshvault_yargs_completions sshvault/);
  });

  it('the man page is made from the same definitions and renders cleanly', async () => {
    const page = join(ws.dir, 'sshvault.1');
    const r = await ws.sv(['man']);
    expect(r.exitCode).toBe(0);
    await writeFile(page, r.stdout);
    // Each command's section is its --help, example included.
    for (const c of commands) expect(r.stdout).toMatch(new RegExp(`^\\.SS ${c}\\n\\.nf\\n(?:(?!^\\.fi$)[^])*?^Examples:$`, 'm'));
    const rendered = await execa('groff', ['-man', '-Tutf8', '-ww', '-P-cbou', page]);
    expect(rendered.stderr).toBe('');
    expect(rendered.stdout).toContain('sshvault schedule laptop --every hourly');
    expect(rendered.stdout).toMatch(/EXIT STATUS/);
  });
});

describe('root, said plainly', () => {
  // A user namespace in which this process is uid 1000: what sshvault sees is a plain user, while the
  // files it reads (the project, wherever CI cloned it) stay readable as they are to root.
  const asNobody = (args: string[]) =>
    execa('unshare', ['--user', '--map-user=1000', '--map-group=1000', process.execPath, BIN, ...args], { env: { ...ws.env, HOME: ws.dir, PATH: process.env.PATH! }, reject: false });

  it('a command that mounts says in one line that it needs root, and doctor says it first', async () => {
    const push = await asNobody(['push', 'lap']);
    expect(push.exitCode).toBe(2);
    expect(push.stderr.trim()).toBe("sshvault: 'sshvault push' needs root: it attaches loop devices and mounts filesystems; run it as root (e.g. sudo sshvault push)");
    const doctor = await asNobody(['doctor']);
    expect(doctor.exitCode).toBe(2);
    expect(doctor.stdout.split('\n')[0]).toMatch(/^root: NO: /);
  });
});

describe('stats --plot', () => {
  it('draws a self-contained SVG that parses and renders, one group per run', async () => {
    const dir = join(ws.env.XDG_STATE_HOME, 'sshvault', vault);
    await mkdir(dir, { recursive: true });
    const runs = Array.from({ length: 7 }, (_, i) => {
      const t = new Date(Date.UTC(2026, 10, 20 + i, 3)).toISOString();
      return { id: String(i), command: 'push', vault, snapshot: t, started: t, finished: t, ok: i !== 3, exitCode: i === 3 ? 4 : 0, changedBytes: (i + 1) << 20, upBytes: (i + 2) << 20, downBytes: 4096 * i, phases: [] };
    });
    await writeFile(join(dir, 'runs.jsonl'), runs.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const svg = join(ws.dir, 'traffic.svg');
    const r = await ws.sv(['stats', vault, '--plot', svg]);
    expect(r.exitCode, r.stderr).toBe(0);
    const text = await readFile(svg, 'utf8');
    await execa('xmllint', ['--noout', svg]);
    expect(text.match(/<g class="run">/g)).toHaveLength(7);
    expect(text).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)|@import|url\(/);
    expect(text).toMatch(/time on a 10 Mbit\/s link/);
    const png = join(ws.dir, 'traffic.png');
    await execa('rsvg-convert', ['-o', png, svg]);
    const head = await readFile(png);
    expect(head.subarray(1, 4).toString()).toBe('PNG');
    expect([head.readUInt32BE(16), head.readUInt32BE(20)]).toEqual([960, 480]);
  });
});

describe('progress on a terminal', () => {
  let v: TestVault;
  beforeAll(async () => {
    v = await setupVault('pty');
  });
  afterAll(async () => {
    await v?.dispose();
  });

  it('push shows a progress bar under a pseudo-terminal, and none when piped', async () => {
    const env = Object.entries(v.ws.env).map(([k, val]) => `${k}=${val}`).join(' ');
    const r = await execa('script', ['-q', '-e', '-c', `env ${env} ${BIN} push ${v.name}`, '/dev/null'], { env: { TERM: 'xterm-256color' }, reject: false });
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/sync\s+\S*[░█].*ETA/);
    expect(r.stdout).toContain('Snapshot ');
    await new Promise((res) => setTimeout(res, 1100));
    const piped = await v.ws.sv(['push', v.name]);
    expect(piped.exitCode).toBe(0);
    expect(piped.stdout + piped.stderr).not.toContain(ESC);
    expect(await v.leftovers()).toEqual([]);
    expect(await readdir(v.remoteDir)).toContain('vault.img');
  });

  it('--limit-upload holds the upload to the cap, and the run still counts every byte', async () => {
    const relay = await startRelay({ host: '127.0.0.1', port: v.sshd.port });
    try {
      await writeFile(join(v.src, 'big.bin'), randomBytes(12 << 20));
      const cfgFile = join(v.ws.env.XDG_CONFIG_HOME, 'sshvault', `${v.name}.json`);
      const cfg = JSON.parse(await readFile(cfgFile, 'utf8')) as { remote: string };
      await writeFile(cfgFile, JSON.stringify({ ...cfg, remote: `ssh://root@127.0.0.1:${relay.port}${v.remoteDir}` }));
      const samples: [number, number][] = [];
      const timer = setInterval(() => samples.push([performance.now(), relay.upBytes()]), 100);
      const r = await v.ws.sv(['push', v.name, '--limit-upload', '8mbit', '--json']);
      clearInterval(timer);
      expect(r.exitCode, r.stderr).toBe(0);
      const total = relay.upBytes();
      // The steady part of the run: from a quarter to three quarters of what went up.
      const a = samples.find(([, b]) => b >= total / 4)!;
      const b = samples.find(([, x]) => x >= (total * 3) / 4)!;
      const rate = ((b[1] - a[1]) / (b[0] - a[0])) * 1000;
      expect(rate).toBeGreaterThan(1_000_000 * 0.9);
      expect(rate).toBeLessThan(1_000_000 * 1.1);
      const record = JSON.parse(r.stdout) as { upBytes: number };
      expect(Math.abs(record.upBytes - total) / total).toBeLessThan(0.03);
      await writeFile(cfgFile, JSON.stringify(cfg));
    } finally {
      await relay.close();
    }
  });

  /**
   * A laptop suspended mid-push wakes on another network: the old TCP
   * connection is dead. SUSPEND seconds of SIGSTOP on the whole run (30 in
   * CI; SSHVAULT_SUSPEND_SECONDS=300 for the five minutes the README reports),
   * with the link blackholed meanwhile, then SIGCONT.
   */
  it('a push stopped while the link dies fails with exit 4 after SIGCONT, and the next push completes a snapshot', async () => {
    const suspendMs = Number(process.env.SSHVAULT_SUSPEND_SECONDS ?? 30) * 1000;
    const relay = await startRelay({ host: '127.0.0.1', port: v.sshd.port });
    const cfgFile = join(v.ws.env.XDG_CONFIG_HOME, 'sshvault', `${v.name}.json`);
    const cfg = JSON.parse(await readFile(cfgFile, 'utf8')) as { remote: string };
    try {
      await writeFile(join(v.src, 'suspend.bin'), randomBytes(16 << 20));
      await writeFile(cfgFile, JSON.stringify({ ...cfg, remote: `ssh://root@127.0.0.1:${relay.port}${v.remoteDir}` }));
      // Paced, so that the sync phase is still under way when the laptop "sleeps".
      const run = execa(BIN, ['push', v.name, '--limit-upload', '16mbit'], { env: v.ws.env, reject: false, stdin: 'ignore' });
      const start = relay.upBytes();
      while (relay.upBytes() - start < 4 << 20 && run.exitCode === null) await sleep(100);
      const tree = processTree(run.pid!);
      signal(tree, 'SIGSTOP');
      relay.cut('blackhole');
      await sleep(suspendMs);
      const woke = performance.now();
      signal(tree, 'SIGCONT');
      const r = await run;
      const seconds = (performance.now() - woke) / 1000;
      console.log(`suspended ${suspendMs / 1000} s; after SIGCONT the push exited ${r.exitCode} in ${seconds.toFixed(1)} s: ${String(r.stderr).trim().split('\n').pop()}`);
      expect(r.exitCode, String(r.stderr)).toBe(4);
      expect(await v.leftovers()).toEqual([]);
      // What the run wrote before the cut reached the remote only as far as it was written back: the
      // next push resumes the partial snapshot when its directory made it, and starts over otherwise.
      const next = await v.ws.sv(['push', v.name, '--json']);
      expect(next.exitCode, next.stderr).toBe(0);
      console.log(`the next push ${/Resuming the interrupted snapshot/.test(next.stderr) ? 'resumed the partial snapshot' : 'found no partial snapshot and started over'}`);
      const list = JSON.parse((await v.ws.sv(['list', v.name, '--json'])).stdout) as { name: string; complete: boolean }[];
      expect(list.at(-1)).toMatchObject({ name: (JSON.parse(next.stdout) as { snapshot: string }).snapshot, complete: true });
    } finally {
      await writeFile(cfgFile, JSON.stringify(cfg));
      await relay.close();
    }
  }, Number(process.env.SSHVAULT_SUSPEND_SECONDS ?? 30) * 1000 + 300_000);
});

afterAll(async () => {
  await rm(join(ws.dir, 'fakebin'), { recursive: true, force: true });
});
