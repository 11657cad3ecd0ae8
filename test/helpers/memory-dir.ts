import type { RemoteDir } from '../../src/remote/remote-dir.js';

/**
 * An in-memory remote directory with the SFTP semantics the locks rely on
 * (exclusive mkdir, rename that never replaces, a directory removed only when empty), so
 * lock races can be played out step by step. `before` runs ahead of every
 * operation: a test interleaves another client there, or cuts the link by
 * throwing.
 */
export class MemoryDir implements RemoteDir {
  readonly dirs = new Set<string>(['/']);
  readonly files = new Map<string, Buffer>();
  before: (op: string, path: string) => void | Promise<void> = () => {};

  constructor(...dirs: string[]) {
    for (const d of dirs) this.dirs.add(d);
  }

  private parentExists(path: string): boolean {
    return this.dirs.has(path.slice(0, path.lastIndexOf('/')) || '/');
  }

  private children(dir: string): string[] {
    return [...this.dirs, ...this.files.keys()].filter((p) => p.startsWith(`${dir}/`) && !p.slice(dir.length + 1).includes('/'));
  }

  async stat(path: string): Promise<{ isDirectory: boolean } | undefined> {
    await this.before('stat', path);
    if (this.dirs.has(path)) return { isDirectory: true };
    return this.files.has(path) ? { isDirectory: false } : undefined;
  }

  async mkdirExclusive(path: string): Promise<boolean> {
    await this.before('mkdir', path);
    if (this.dirs.has(path) || this.files.has(path)) return false;
    if (!this.parentExists(path)) throw new Error(`no such directory for ${path}`);
    this.dirs.add(path);
    return true;
  }

  async rename(from: string, to: string): Promise<void> {
    await this.before('rename', from);
    if (this.dirs.has(to) || this.files.has(to)) throw new Error(`${to} exists`);
    if (this.files.has(from)) {
      this.files.set(to, this.files.get(from)!);
      this.files.delete(from);
      return;
    }
    if (!this.dirs.has(from)) throw new Error(`no such file ${from}`);
    for (const d of [...this.dirs]) {
      if (d === from || d.startsWith(`${from}/`)) {
        this.dirs.delete(d);
        this.dirs.add(to + d.slice(from.length));
      }
    }
    for (const [f, data] of [...this.files]) {
      if (f.startsWith(`${from}/`)) {
        this.files.delete(f);
        this.files.set(to + f.slice(from.length), data);
      }
    }
  }

  async readdir(dir: string): Promise<string[]> {
    await this.before('readdir', dir);
    return this.children(dir).map((p) => p.slice(dir.length + 1));
  }

  async read(path: string): Promise<Buffer | undefined> {
    await this.before('read', path);
    return this.files.get(path);
  }

  async write(path: string, data: string): Promise<void> {
    await this.before('write', path);
    if (!this.parentExists(path)) throw new Error(`no such directory for ${path}`);
    this.files.set(path, Buffer.from(data));
  }

  async remove(path: string): Promise<void> {
    await this.before('remove', path);
    if (!this.dirs.has(path)) {
      this.files.delete(path);
      return;
    }
    if (this.children(path).length) throw new Error(`${path} is not empty`);
    this.dirs.delete(path);
  }
}
