import { describe, expect, it } from 'vitest';
import { scrubErrors } from '../../src/stack/filesystems/btrfs/scrub.js';

const report = (summary: string) => `scrub done for a24b3754-446a-4d4a-81f9-46c7cb92e173
Scrub started:    Mon Nov 30 08:40:59 2026
Status:           finished
Duration:         0:00:00
Total to scrub:   32.75MiB
Rate:             0.00B/s
Error summary:    ${summary}
`;

describe('scrubErrors', () => {
  it('is undefined when the scrub found nothing', () => {
    expect(scrubErrors(report('no errors found'))).toBeUndefined();
  });

  it("names what the scrub found, from btrfs-progs' error summary", () => {
    expect(scrubErrors(`${report('csum=1')}  Corrected:      0\n  Uncorrectable:  1\n  Unverified:     0\n`)).toBe('csum=1');
  });

  it('refuses output without an error summary rather than taking it as clean', () => {
    expect(() => scrubErrors('ERROR: scrubbing /mnt failed for device id 1')).toThrow(/no error summary/);
  });
});
