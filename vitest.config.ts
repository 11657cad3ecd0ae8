import { defineConfig } from 'vitest/config';

// End-to-end files each start their own sshd and stack; on two cores running
// them one at a time keeps loop devices, FUSE mounts and timings predictable.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
