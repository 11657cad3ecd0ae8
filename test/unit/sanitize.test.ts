import { describe, expect, it } from 'vitest';
import { sanitize } from '../../src/ui/sanitize.js';

describe('sanitize', () => {
  it('keeps printable text, unicode included', () => {
    expect(sanitize('push by pid 42 on büro-Рабочий-机器, started 2026-11-30T05:00:00Z')).toBe('push by pid 42 on büro-Рабочий-机器, started 2026-11-30T05:00:00Z');
  });
  it('drops ANSI escape sequences whole: CSI, OSC, and lone escapes', () => {
    expect(sanitize('a\x1b[31mred\x1b[0m b\x1b[2J\x1b[1;1H')).toBe('ared b');
    expect(sanitize('x\x1b]0;title\x07y\x1b]8;;http://e\x1b\\z')).toBe('xyz');
    expect(sanitize('a\x1bcb\x1b(Bc')).toBe('abc');
  });
  it('drops C0 and C1 controls, DEL and text-direction overrides', () => {
    expect(sanitize('a\rb\nc\td\x00e\x7ff\x9b31mg\x85h')).toBe('abcdef31mgh');
    expect(sanitize('evil\u202etxt.exe\u2066\u2069')).toBe('eviltxt.exe');
  });
  it('prints what is not a string as text', () => {
    expect(sanitize(42)).toBe('42');
    expect(sanitize(undefined)).toBe('undefined');
  });
});
