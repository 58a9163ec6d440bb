import { defineConfig } from 'vitest/config';

// Unit tests (engine) are pure; integration and e2e tests talk to the real Postgres and Redis that
// scripts/setup.mjs made sure are up. The machine has 2 cores: run files in 2 forks.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    env: { FASTADAPT_TEST: '1' },
  },
});
