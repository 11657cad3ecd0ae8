import { execa } from 'execa';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, workspace, type Workspace } from '../helpers/cli.js';
import { forceCleanup } from '../helpers/cleanup.js';
import { debugfsCat, decryptImage } from '../helpers/independent.js';
import { sleep } from '../helpers/proc.js';
import { jsonOf, setupVault, type TestVault } from '../helpers/vault.js';

interface ListEntry {
  name: string;
  complete: boolean;
}

const oneLine = (s: string) => s.replace(/\s+/g, ' ');

/**
 * The host puts back an older copy of the remote directory: the client must
 * refuse it (exit 3, "rollback") without touching its own view of the vault,
 * until the user accepts the remote's state on purpose. A newer state written
 * by another key holder is taken as it is.
 */
describe('rollback', () => {
  let v: TestVault;
  let other: Workspace | undefined;
  let round = 0;

  beforeAll(async () => {
    v = await setupVault('rbk');
  });

  afterAll(async () => {
    if (other) {
      await forceCleanup(other.dir);
      await other.dispose();
    }
    await v?.dispose();
  });

  const stateFile = (ws: Workspace, name: string) => join(ws.env.XDG_STATE_HOME, 'sshvault', v.name, name);
  const list = async (ws: Workspace) => jsonOf<ListEntry[]>(await ws.sv(['list', v.name, '--refresh', '--json']), 'list --refresh').map((s) => s.name);

  async function change(): Promise<void> {
    round++;
    await writeFile(join(v.src, 'docs', 'round.txt'), `round ${round}\n`);
  }

  /** The counter inside the encrypted filesystem, read through qemu's LUKS driver and debugfs. */
  async function counterOnImage(): Promise<number> {
    const raw = join(v.scratch, 'plain.raw');
    try {
      await decryptImage(v.image, v.ws.passphrase, raw);
      return (JSON.parse((await debugfsCat(raw, '/.sshvault/sequence')).toString('utf8')) as { counter: number }).counter;
    } finally {
      await rm(raw, { force: true });
    }
  }

  it('every writing run advances the counter inside the image, and this machine keeps the same number', async () => {
    await change();
    await v.push();
    const before = await counterOnImage();
    await change();
    await v.push();
    const after = await counterOnImage();
    expect(after).toBe(before + 1);
    const local = JSON.parse(await readFile(stateFile(v.ws, 'sequence.json'), 'utf8')) as { counter: number; snapshots: string[] };
    expect(local.counter).toBe(after);
    expect(local.snapshots).toEqual(await list(v.ws));
  });

  describe.each([
    ['old vault.img and old vault.generation', false],
    ['old vault.img, current vault.generation', true],
  ])('the remote directory is replaced by a copy taken after an earlier push (%s)', (_what, keepGeneration) => {
    let lost: string;
    let kept: string[];

    it('push and list --refresh refuse it with exit 3, and the local catalog stays as it was', async () => {
      await change();
      await v.push();
      kept = await list(v.ws);
      const copy = join(v.scratch, `copy-${round}`);
      await execa('cp', ['-a', '--sparse=always', v.remoteDir, copy]);
      await change();
      lost = await v.push();
      // A read-only run in between fills the block cache with what the newer image holds.
      expect(await list(v.ws)).toEqual([...kept, lost]);

      const generation = await readFile(join(v.remoteDir, 'vault.generation'));
      await rm(v.remoteDir, { recursive: true });
      await execa('cp', ['-a', '--sparse=always', copy, v.remoteDir]);
      if (keepGeneration) await writeFile(join(v.remoteDir, 'vault.generation'), generation);
      await rm(copy, { recursive: true });

      const catalog = await readFile(stateFile(v.ws, 'catalog.json'));
      const sequence = await readFile(stateFile(v.ws, 'sequence.json'));
      await change();
      const push = await v.ws.sv(['push', v.name]);
      expect(push.exitCode, push.stderr).toBe(3);
      expect(oneLine(push.stderr)).toMatch(/rollback/);
      expect(oneLine(push.stderr)).toMatch(/sshvault accept-remote rbk/);
      // The cache held the newer metadata for this generation: it must have noticed the older blocks.
      if (keepGeneration) expect(oneLine(push.stderr)).toMatch(/block cache .* does not match the remote image/);
      const refresh = await v.ws.sv(['list', v.name, '--refresh']);
      expect(refresh.exitCode, refresh.stderr).toBe(3);
      expect(oneLine(refresh.stderr)).toMatch(/rollback/);
      const restore = await v.ws.sv(['restore', v.name, 'latest', join(v.scratch, `restored-${round}`)]);
      expect(restore.exitCode, restore.stderr).toBe(3);
      expect(await readFile(stateFile(v.ws, 'catalog.json'))).toEqual(catalog);
      expect(await readFile(stateFile(v.ws, 'sequence.json'))).toEqual(sequence);
      expect(await v.leftovers()).toEqual([]);
    });

    it('accept-remote shows what is lost and takes the remote state; push works again', async () => {
      const accept = await v.ws.sv(['accept-remote', v.name]);
      expectOk(accept, 'accept-remote');
      expect(oneLine(accept.stdout)).toContain(`missing on the remote: ${lost}`);
      expect(jsonOf<ListEntry[]>(await v.ws.sv(['list', v.name, '--json']), 'list').map((s) => s.name)).toEqual(kept);
      const next = await v.push();
      expect(await list(v.ws)).toEqual([...kept, next]);
      expect(await v.leftovers()).toEqual([]);
    });
  });

  it('a push and a prune from another machine are taken as they are: its counter is ahead', async () => {
    other = await workspace(v.ws.passphrase);
    await cp(v.ws.env.XDG_CONFIG_HOME, other.env.XDG_CONFIG_HOME, { recursive: true });
    // Set up as the README says: the config and a copy of the LUKS header backup, nothing else.
    const header = (ws: { env: Record<string, string> }) => join(ws.env.XDG_STATE_HOME, 'sshvault', v.name, 'luks-header.img');
    await mkdir(dirname(header(other)), { recursive: true, mode: 0o700 });
    await cp(header(v.ws), header(other));
    await change();
    expectOk(await other.sv(['push', v.name]), 'push from the other machine');
    await sleep(1100);
    expectOk(await other.sv(['prune', v.name, '--keep-last', '1']), 'prune from the other machine');
    const theirs = await list(other);
    expect(theirs).toHaveLength(1);

    expect(await list(v.ws)).toEqual(theirs);
    await change();
    const next = await v.push();
    expect(await list(v.ws)).toEqual([...theirs, next]);
    expect(await v.leftovers()).toEqual([]);
  });
});
