/**
 * Where a vault lives: `ssh://[user@]host[:port]/abs/dir` or scp's
 * `[user@]host:dir`. IPv6 addresses go in brackets in both forms.
 *
 * `dir` is what SFTP is given: absolute, or relative to the login directory.
 * The login directory itself is `.`. SFTP does not expand `~`, so `~` and
 * `~/dir` are turned into `.` and `dir` here; `ssh://host/~/dir` is how the
 * URL form says "relative to home" (as git does). `ssh://host` without a path
 * also means the login directory; `ssh://host/` means `/`. As in any URL,
 * user and path of the URL form are percent-decoded (`%20`, `%40`, `%25`).
 */
export interface RemoteSpec {
  user?: string;
  host: string;
  port?: number;
  dir: string;
}

const USAGE = 'write ssh://[user@]host[:port]/dir or [user@]host:dir';

function fail(spec: string, why: string): never {
  throw new Error(`'${spec}' is not a remote (${why}): ${USAGE}`);
}

/** `~` and `~/x` are home-relative; doubled and trailing slashes say nothing. */
function normalizeDir(spec: string, dir: string): string {
  if (/^~[^/]/.test(dir)) fail(spec, `'~user' paths are not supported, give the absolute path`);
  const collapsed = dir.replace(/^~(?:\/+|$)/, '').replace(/\/{2,}/g, '/');
  const trimmed = collapsed.length > 1 ? collapsed.replace(/\/+$/, '') : collapsed;
  return trimmed === '' ? '.' : trimmed;
}

function checkUser(spec: string, user: string | undefined): string | undefined {
  if (user === undefined) return undefined;
  if (user === '' || user.startsWith('-') || /[\s/:]/.test(user)) fail(spec, `bad user name '${user}'`);
  return user;
}

/** A leading '-' would reach `ssh -G` as an option. */
function checkHost(spec: string, hostText: string): string {
  const host = hostText.startsWith('[') ? hostText.slice(1, -1) : hostText;
  if (host === '') fail(spec, 'no host');
  if (host.startsWith('-') || /[\s/@[\]]/.test(host)) fail(spec, `bad host '${host}'`);
  return host;
}

function checkPort(spec: string, port: string): number {
  const n = Number(port);
  if (!/^\d+$/.test(port) || n < 1 || n > 65535) fail(spec, `bad port '${port}'`);
  return n;
}

function decode(spec: string, text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    fail(spec, `bad %-escape in '${text}'`);
  }
}

const HOST = String.raw`\[[^\]]*\]|[^:/@[\]]*`;

function parseUrl(spec: string): RemoteSpec {
  const rest = spec.slice('ssh://'.length);
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const at = authority.lastIndexOf('@');
  const m = new RegExp(`^(${HOST})(?::(\\d*))?$`).exec(authority.slice(at + 1));
  if (!m) fail(spec, `cannot read host and port from '${authority.slice(at + 1)}'`);
  const path = slash < 0 ? '' : decode(spec, rest.slice(slash));
  return compact({
    user: checkUser(spec, at < 0 ? undefined : decode(spec, authority.slice(0, at))),
    host: checkHost(spec, m[1]!),
    // An empty port ("host:/dir") is the default port, as in any URL.
    port: m[2] ? checkPort(spec, m[2]) : undefined,
    dir: normalizeDir(spec, path.startsWith('/~') ? path.slice(1) : path),
  });
}

function parseScpLike(spec: string): RemoteSpec {
  // A user name may hold '@' (me@corp@host:dir), never ':' or '/'.
  const m = new RegExp(`^(?:([^:/]*)@)?(${HOST}):(.*)$`, 's').exec(spec);
  if (!m) {
    const colon = spec.indexOf(':');
    // scp's rule: without a colon, or with a slash before it, it is a local path.
    const local = colon < 0 || spec.slice(0, colon).includes('/');
    fail(spec, local ? 'no host: it reads as a local path' : 'cannot tell the host from the directory');
  }
  return compact({ user: checkUser(spec, m[1]), host: checkHost(spec, m[2]!), dir: normalizeDir(spec, m[3]!) });
}

/** Optional fields are absent, not undefined, so specs compare and serialise cleanly. */
function compact(r: RemoteSpec): RemoteSpec {
  return Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as RemoteSpec;
}

export function parseRemote(spec: string): RemoteSpec {
  const s = spec.trim();
  if (s.startsWith('ssh://')) return parseUrl(s);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(s);
  if (scheme) fail(spec, `'${scheme[1]}://' is not supported, only ssh://`);
  return parseScpLike(s);
}

function hostText(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** The scp form where it can say everything (no port, relative dir); the URL form otherwise. */
export function formatRemote(r: RemoteSpec): string {
  if (r.port === undefined && !r.dir.startsWith('/')) {
    return `${r.user ? `${r.user}@` : ''}${hostText(r.host)}:${r.dir === '.' ? '' : r.dir}`;
  }
  const user = r.user ? `${encodeURIComponent(r.user)}@` : '';
  const port = r.port === undefined ? '' : `:${r.port}`;
  const path = r.dir.startsWith('/') ? r.dir : r.dir === '.' ? '/~' : `/~/${r.dir}`;
  return `ssh://${user}${hostText(r.host)}${port}${path.replace(/%/g, '%25')}`;
}
