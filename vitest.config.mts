import { defineConfig } from 'vitest/config';

// Integration tests create network namespaces and run real daemons; each file
// uses its own per-run prefix, so files may run in parallel. The root-namespace
// check runs separately, after everything else (scripts/test.sh).
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['test/final/**', 'node_modules/**', 'dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['test/global-setup.ts'],
  },
});
