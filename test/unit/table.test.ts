import chalk from 'chalk';
import { describe, expect, it } from 'vitest';
import { renderTable, visibleWidth } from '../../src/ui/table.js';

describe('renderTable', () => {
  it('sizes columns to their content, numbers right and text left', () => {
    expect(renderTable(['name', 'files', 'note'], [['alpha', 3, 'x'], ['b', 12345, 'longer note']])).toBe(
      ['name   files  note', '-----  -----  -----------', 'alpha      3  x', 'b      12345  longer note'].join('\n'),
    );
  });

  it('aligns a column left when any of its cells is text', () => {
    expect(renderTable(['n'], [[1], ['-'], [22]])).toBe(['n', '--', '1', '-', '22'].join('\n'));
  });

  it('follows the given alignment over the default', () => {
    expect(renderTable(['size', 'n'], [['1 KiB', 5], ['20.5 MiB', 10]], { align: ['right', 'left'] })).toBe(
      ['    size  n', '--------  --', '   1 KiB  5', '20.5 MiB  10'].join('\n'),
    );
  });

  it('puts a rule above the footer and sizes columns to it too', () => {
    expect(renderTable(['phase', 'up'], [['connect', '1 KiB'], ['sync', '2 KiB']], { align: ['left', 'right'], footer: ['total', '3.0 KiB'] })).toBe(
      ['phase         up', '-------  -------', 'connect    1 KiB', 'sync       2 KiB', '-------  -------', 'total    3.0 KiB'].join('\n'),
    );
  });

  it('measures cells without their colour codes', () => {
    chalk.level = 1;
    const failed = chalk.red('failed');
    const out = renderTable(['state', 'n'], [[failed, 1], ['ok', 22]]);
    expect(out).toContain(`${failed}   1`);
    expect(out.replace(/\x1b\[[0-9;]*m/g, '')).toBe(['state    n', '------  --', 'failed   1', 'ok      22'].join('\n'));
  });

  it('counts an emoji as one character', () => {
    expect(visibleWidth('ok 🙂')).toBe(4);
    expect(renderTable(['a', 'b'], [['🙂', 'x'], ['ab', 'y']])).toBe(['a   b', '--  -', '🙂   x', 'ab  y'].join('\n'));
  });

  it('fills short rows and leaves no trailing spaces', () => {
    const out = renderTable(['a', 'b', 'c'], [['1'], ['22', '333', '']]);
    expect(out).toBe(['a   b    c', '--  ---  -', '1', '22  333'].join('\n'));
    expect(out.split('\n').every((l) => l === l.trimEnd())).toBe(true);
  });

  it('renders a table with no rows', () => {
    expect(renderTable(['snapshot', 'files'], [])).toBe('snapshot  files\n--------  -----');
  });

  it('throws on a row with more cells than headers', () => {
    expect(() => renderTable(['a'], [['1', '2']])).toThrow(/2 cells for 1 columns/);
  });

  it('renders GitHub markdown with the alignment in the rule', () => {
    expect(renderTable(['config', 'up'], [['ext4', '5.6 MB'], ['ext2', '17.2 MB']], { align: ['left', 'right'], markdown: true })).toBe(
      ['| config |      up |', '|:-------|--------:|', '| ext4   |  5.6 MB |', '| ext2   | 17.2 MB |'].join('\n'),
    );
  });
});
