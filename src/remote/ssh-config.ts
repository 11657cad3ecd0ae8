/**
 * The user's OpenSSH view of a host, read from `ssh -G host`: OpenSSH applies
 * ssh_config (Match, Include, wildcards, defaults) and prints the result as
 * lowercase `key value` lines, which spares us reimplementing its rules.
 */
export interface ResolvedHost {
  hostname: string;
  port: number;
  user: string;
  /** In OpenSSH's order; `~` left as printed (see expandHome). */
  identityFiles: string[];
  identitiesOnly: boolean;
  proxyJump?: string;
  proxyCommand?: string;
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  /** As printed: `true`, `false`, `ask` or `accept-new`. */
  strictHostKeyChecking: string;
  hashKnownHosts: boolean;
  serverAliveInterval: number;
  compression: boolean;
  ciphers?: string[];
  /** As printed, `none` included: it means "use no agent", which differs from no setting at all. */
  identityAgent?: string;
}

type Options = Map<string, string[]>;

function readOptions(output: string): Options {
  const options: Options = new Map();
  for (const line of output.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const key = m[1]!.toLowerCase();
    options.set(key, [...(options.get(key) ?? []), m[2]!.trim()]);
  }
  return options;
}

function required(o: Options, key: string): string {
  const v = o.get(key)?.[0];
  if (v === undefined) throw new Error(`'ssh -G' printed no '${key}': is this OpenSSH's ssh?`);
  return v;
}

/** OpenSSH prints `yes`/`no` for most flags and `true`/`false` for some. */
function flag(o: Options, key: string): boolean {
  const v = o.get(key)?.[0];
  return v === 'yes' || v === 'true';
}

function integer(key: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new Error(`'ssh -G' printed '${key} ${v}', not a whole number`);
  return Number(v);
}

/** OpenSSH prints `none` for an option switched off. */
function optional(o: Options, key: string): string | undefined {
  const v = o.get(key)?.[0];
  return v === undefined || v === 'none' ? undefined : v;
}

/** Known-hosts options hold several files in one line; `none` means no file at all. */
function fileList(o: Options, key: string): string[] {
  const v = optional(o, key);
  return v === undefined ? [] : v.split(/\s+/);
}

export function parseSshG(output: string): ResolvedHost {
  const o = readOptions(output);
  return {
    hostname: required(o, 'hostname'),
    port: integer('port', required(o, 'port')),
    user: required(o, 'user'),
    identityFiles: o.get('identityfile') ?? [],
    identitiesOnly: flag(o, 'identitiesonly'),
    proxyJump: optional(o, 'proxyjump'),
    proxyCommand: optional(o, 'proxycommand'),
    userKnownHostsFiles: fileList(o, 'userknownhostsfile'),
    globalKnownHostsFiles: fileList(o, 'globalknownhostsfile'),
    strictHostKeyChecking: o.get('stricthostkeychecking')?.[0] ?? 'ask',
    hashKnownHosts: flag(o, 'hashknownhosts'),
    serverAliveInterval: integer('serveraliveinterval', o.get('serveraliveinterval')?.[0] ?? '0'),
    compression: flag(o, 'compression'),
    ciphers: o.get('ciphers')?.[0]?.split(','),
    identityAgent: o.get('identityagent')?.[0],
  };
}

/** `~` and `~/x` as OpenSSH means them; `~user` is left alone, as is every other path. */
export function expandHome(path: string, home: string): string {
  if (path === '~') return home;
  return path.startsWith('~/') ? `${home.replace(/\/+$/, '')}/${path.slice(2)}` : path;
}
