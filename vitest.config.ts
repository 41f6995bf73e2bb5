import { defineConfig } from 'vitest/config';

/**
 * Tests by layer, one project per folder (`vitest run --project unit`, or `npm run test:unit`):
 * - unit: plain logic, no PostgreSQL, no Temporal, no package manager; about a minute on two busy cores.
 * - agent: the agent's backends against the real apt, dnf and zypper on fixture roots.
 * - integration and e2e: a real PostgreSQL and a real Temporal dev server, started once by the
 *   global setup (shared by both projects) and only when one of their files runs.
 * A new test file joins the project of the folder it is in.
 */
export default defineConfig({
  resolve: {
    // One graphql module for test files and dependencies alike ("Duplicate graphql modules" otherwise).
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    // The threads pool crashes with Temporal's native bridge.
    pool: 'forks',
    // Two test files at a time, whatever the core count. Vitest's default is one fewer worker than
    // cores: one on a two-core CI machine, which ran the whole suite a file at a time although most
    // integration and e2e files spend their time waiting on processes, timers and agents, not on a
    // core. Every file already has its own database, task queue, ports and folders (docs/testing.md),
    // so two run side by side as they do in any order. All projects share this one pool: a slow e2e
    // file overlaps the unit and integration files instead of queuing them behind it.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'agent', include: ['test/agent/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'], globalSetup: ['test/support/globalSetup.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], globalSetup: ['test/support/globalSetup.ts'] } },
    ],
  },
});
