import { describe, expect, it } from 'vitest';
import type { VaultPaths } from '../../src/config/paths.js';
import { UsageError } from '../../src/errors.js';
import type { Engine } from '../../src/stack/engines/engine.js';
import { chooseEngine } from '../../src/stack/engines/index.js';
import type { LeftoverContext, LeftoverFinder } from '../../src/stack/layer.js';
import { layersTopFirst } from '../../src/stack/layer-order.js';
import { SshfsLayer } from '../../src/stack/mount/sshfs.js';
import { findLeftovers, leftoverFinders } from '../../src/stack/recovery.js';

function fakeEngine(name: string, ok: boolean, reason: string, layerKinds: LeftoverFinder[] = []): Engine & { probes: number } {
  const e = {
    name,
    probes: 0,
    async probe() {
      e.probes++;
      return { ok, reason };
    },
    blockStack: () => ({ on: '', layers: [] }),
    layerKinds,
  };
  return e;
}

/** A layer kind that reports one leftover per call, named after it, and records the context it was given. */
function fakeKind(name: string, seen: LeftoverContext[] = []): LeftoverFinder {
  return {
    async findLeftovers(ctx) {
      seen.push(ctx);
      return [{ layer: name, what: name, teardown: async () => {} }];
    },
  };
}

describe('choosing an engine', () => {
  const dm = fakeEngine('kernel', false, 'the kernel has no device-mapper driver');
  const qemu = fakeEngine('userspace', true, "qemu-nbd's LUKS driver does the decryption");

  it('auto takes the first engine that can run and says why the ones before it cannot', async () => {
    const d = await chooseEngine('auto', [dm, qemu]);
    expect(d.engine).toBe(qemu);
    expect(d.reason).toBe("the kernel has no device-mapper driver, so qemu-nbd's LUKS driver does the decryption");
    const fine = fakeEngine('kernel', true, 'device-mapper and dm-crypt are available');
    const q2 = fakeEngine('userspace', true, 'x');
    expect(await chooseEngine('auto', [fine, q2])).toEqual({ engine: fine, reason: 'device-mapper and dm-crypt are available' });
    expect(q2.probes).toBe(0);
  });

  it('an engine asked for by name is refused with its own reason when it cannot run here', async () => {
    await expect(chooseEngine('kernel', [dm, qemu])).rejects.toThrow(
      new UsageError('the kernel engine cannot run here: the kernel has no device-mapper driver; use --engine userspace'),
    );
    const d = await chooseEngine('userspace', [dm, qemu]);
    expect(d).toEqual({ engine: qemu, reason: 'chosen with --engine userspace' });
  });

  it('a third engine is chosen like the others', async () => {
    const third = fakeEngine('third', true, 'it runs anywhere');
    expect((await chooseEngine('auto', [dm, third, qemu])).engine).toBe(third);
    await expect(chooseEngine('kernel', [dm, third, qemu])).rejects.toThrow(/use --engine third or --engine userspace$/);
    await expect(chooseEngine('none', [dm, qemu])).rejects.toBeInstanceOf(UsageError);
    await expect(chooseEngine('auto', [dm])).rejects.toThrow(/no engine can run here: the kernel has no device-mapper driver/);
  });
});

describe('recovery over every engine', () => {
  it('orders shared layer kinds so that every engine tears down top first, each kind once', () => {
    expect(layersTopFirst([['mapping', 'loop'], ['loop', 'nbdfuse']])).toEqual(['mapping', 'loop', 'nbdfuse']);
    expect(layersTopFirst([['mapping', 'loop'], ['loop', 'nbdfuse'], ['other', 'loop']])).toEqual(['mapping', 'other', 'loop', 'nbdfuse']);
    expect(() => layersTopFirst([['a', 'b'], ['b', 'a']])).toThrow(/contradicting orders/);
  });

  it('asks the filesystem, each engine layer kind once, then sshfs, all with the same context', async () => {
    const seen: LeftoverContext[] = [];
    const mapping = fakeKind('mapping', seen);
    const loop = fakeKind('loop', seen);
    const fuse = fakeKind('nbdfuse', seen);
    const finders = leftoverFinders([fakeEngine('kernel', true, '', [mapping, loop]), fakeEngine('userspace', true, '', [loop, fuse])]);
    expect(finders.slice(1, -1)).toEqual([mapping, loop, fuse]);
    expect(finders.at(-1)).toBe(SshfsLayer);
    const ctx: LeftoverContext = { paths: {} as VaultPaths, vault: 'laptop' };
    const found = await findLeftovers(ctx, finders.slice(1, -1));
    expect(found.map((l) => l.what)).toEqual(['mapping', 'loop', 'nbdfuse']);
    expect(seen.every((c) => c === ctx)).toBe(true);
  });
});
