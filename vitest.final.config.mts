import { defineConfig } from 'vitest/config';

// Runs after the main suite: asserts that the root network namespace is as it was.
export default defineConfig({
  test: { include: ['test/final/**/*.test.ts'], testTimeout: 30_000 },
});
