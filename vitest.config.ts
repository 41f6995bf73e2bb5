import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // One graphql module for test files and dependencies alike ("Duplicate graphql modules" otherwise).
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // The threads pool crashes with Temporal's native bridge.
    pool: 'forks',
    globalSetup: ['test/support/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
