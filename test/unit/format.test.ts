import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, formatRatio, linkSeconds, parseLink, parseLinkRate, parseSize } from '../../src/ui/format.js';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1, '1 B'],
    [512, '512 B'],
    [1023, '1023 B'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [10 * 1024 + 512, '10.5 KiB'],
    [20.5 * 1024 ** 2, '20.5 MiB'],
    [1.234 * 1024 ** 3, '1.23 GiB'],
    [123.4 * 1024 ** 3, '123 GiB'],
    [1023.9 * 1024, '1 MiB'],
    [999.4 * 1024, '999 KiB'],
    [5 * 1024 ** 4, '5 TiB'],
    [2 * 1024 ** 6, '2 EiB'],
    [4096 * 1024 ** 6, '4096 EiB'],
    [-1536, '-1.5 KiB'],
    [Number.NaN, '-'],
  ])('%d -> %s', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0 ms'],
    [850, '850 ms'],
    [999.4, '999 ms'],
    [999.6, '1.0 s'],
    [1000, '1.0 s'],
    [12_345, '12.3 s'],
    [59_940, '59.9 s'],
    [59_960, '1m 00s'],
    [245_000, '4m 05s'],
    [3_599_000, '59m 59s'],
    [3_599_600, '1h 00m'],
    [3_720_000, '1h 02m'],
    [26 * 3_600_000 + 5 * 60_000, '26h 05m'],
    [-5, '-'],
    [Number.POSITIVE_INFINITY, '-'],
  ])('%d ms -> %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('parseSize', () => {
  it.each([
    ['4096', 4096],
    ['512B', 512],
    ['100k', 100 * 1024],
    ['100K', 100 * 1024],
    ['512M', 512 * 1024 ** 2],
    ['20G', 20 * 1024 ** 3],
    ['20g', 20 * 1024 ** 3],
    ['20GiB', 20 * 1024 ** 3],
    ['20 G', 20 * 1024 ** 3],
    [' 20G ', 20 * 1024 ** 3],
    ['1.5T', 1.5 * 1024 ** 4],
    ['.5G', 512 * 1024 ** 2],
    ['2P', 2 * 1024 ** 5],
    ['0', 0],
  ])('%j -> %d', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'G', '20X', '-1G', '1,5G', '20 GB gigs', '1e3', '0x10', 'twenty', '20G20', '1..5G'])('throws on %j', (text) => {
    expect(() => parseSize(text)).toThrow(/is not a size/);
  });

  it('makes the user choose on GB/MB, which tools disagree about', () => {
    expect(() => parseSize('20GB')).toThrow(/ambiguous: write 20G or 20GiB/);
  });

  it('throws on sizes beyond exact integers', () => {
    expect(() => parseSize('9000E')).toThrow(/too large/);
  });
});

describe('parseLinkRate', () => {
  it.each([
    ['10mbit', 10e6],
    ['50Mbit', 50e6],
    ['1gbit', 1e9],
    ['100kbit', 100e3],
    ['10M', 10e6],
    ['2.5mbit', 2.5e6],
    ['10 Mbit/s', 10e6],
    ['10Mbps', 10e6],
    ['10Mb', 10e6],
    ['10MBit', 10e6],
    ['1200bit', 1200],
    ['1T', 1e12],
  ])('%j -> %d bit/s', (text, bps) => {
    expect(parseLinkRate(text)).toBe(bps);
  });

  it.each(['', '10', 'mbit', '10MB', '10MB/s', '10MBps', '10 furlongs', '-10mbit', '10xbit'])('throws on %j', (text) => {
    expect(() => parseLinkRate(text)).toThrow(/not a link rate/);
  });

  it('throws on a zero rate', () => {
    expect(() => parseLinkRate('0mbit')).toThrow(/above 0/);
  });
});

describe('parseLink', () => {
  it('reads one rate as a symmetric link', () => {
    expect(parseLink('10mbit')).toEqual({ downBps: 10e6, upBps: 10e6 });
    expect(parseLink('10mbit/s')).toEqual({ downBps: 10e6, upBps: 10e6 });
  });

  it('reads down/up, a side without unit borrowing the other one', () => {
    expect(parseLink('50/10mbit')).toEqual({ downBps: 50e6, upBps: 10e6 });
    expect(parseLink('50mbit/10')).toEqual({ downBps: 50e6, upBps: 10e6 });
    expect(parseLink('1gbit/100M')).toEqual({ downBps: 1e9, upBps: 100e6 });
    expect(parseLink('50mbit/s/10mbit/s')).toEqual({ downBps: 50e6, upBps: 10e6 });
    expect(parseLink('2.5 / 0.5mbit')).toEqual({ downBps: 2.5e6, upBps: 0.5e6 });
  });

  it.each(['50/10', '50/10/5mbit', '/10mbit', '10mbit/', 'fast'])('throws on %j', (text) => {
    expect(() => parseLink(text)).toThrow();
  });
});

describe('linkSeconds', () => {
  it('takes the slower direction, since up and down run in parallel', () => {
    const { downBps, upBps } = parseLink('50/10mbit');
    // 10 MB up at 10 Mbit/s: 8 s; 20 MB down at 50 Mbit/s: 3.2 s.
    expect(linkSeconds(10e6, 20e6, upBps, downBps)).toBeCloseTo(8);
    expect(linkSeconds(1e6, 100e6, upBps, downBps)).toBeCloseTo(16);
    expect(linkSeconds(0, 0, upBps, downBps)).toBe(0);
  });
});

describe('formatRatio', () => {
  it.each([
    [2.6, '2.6x'],
    [2.63, '2.6x'],
    [0.05, '0.05x'],
    [0.0534, '0.053x'],
    [1, '1x'],
    [0, '0x'],
    [12.34, '12x'],
    [123.4, '123x'],
    [0.0000123, '<0.001x'],
    [Number.NaN, '-'],
    [Number.POSITIVE_INFINITY, '-'],
  ])('%d -> %s', (x, text) => {
    expect(formatRatio(x)).toBe(text);
  });
});
