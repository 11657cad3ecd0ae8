import { describe, expect, it } from 'vitest';
import { leftoverMappings, mappingName } from '../../src/stack/dm-name.js';
import type { StackRecord } from '../../src/stack/stack.js';

const MINE = '/home/me/.local/state/sshvault/laptop';
const THEIRS = '/home/you/.local/state/sshvault/laptop';

describe('dm-crypt mapping names', () => {
  it('are stable for a state directory and differ between state directories', () => {
    expect(mappingName('laptop', MINE)).toMatch(/^sshvault-laptop-[0-9a-f]{8}$/);
    expect(mappingName('laptop', MINE)).toBe(mappingName('laptop', MINE));
    expect(mappingName('laptop', MINE)).not.toBe(mappingName('laptop', THEIRS));
    expect(mappingName('laptop', MINE).length).toBeLessThanOrEqual(127);
  });

  it("recovery finds only this state directory's mapping, never another's of the same vault name", () => {
    const existing = ['control', mappingName('laptop', THEIRS), 'sshvault-laptop', mappingName('laptop2', MINE), mappingName('laptop', MINE), 'cryptroot'];
    expect(leftoverMappings(existing, 'laptop', MINE)).toEqual([mappingName('laptop', MINE)]);
    expect(leftoverMappings(existing.filter((n) => n !== mappingName('laptop', MINE)), 'laptop', MINE)).toEqual([]);
  });

  it('also takes a mapping its own stack.json recorded', () => {
    const previous: StackRecord = {
      pid: 1,
      command: 'push',
      started: '2026-11-30T00:00:00.000Z',
      layers: ['sshfs', 'loop', 'luks-kernel'],
      opened: [
        { layer: 'loop', on: '/x/vault.img', gave: '/dev/loop7' },
        { layer: 'luks-kernel', on: '/dev/loop7', gave: '/dev/mapper/sshvault-laptop' },
      ],
    };
    const existing = ['sshvault-laptop', mappingName('laptop', THEIRS), 'loop7'];
    expect(leftoverMappings(existing, 'laptop', MINE, previous)).toEqual(['sshvault-laptop']);
    expect(leftoverMappings(existing, 'laptop', THEIRS)).toEqual([mappingName('laptop', THEIRS)]);
  });
});
