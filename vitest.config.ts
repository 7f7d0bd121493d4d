import { defineConfig } from 'vitest/config';

const RESILIENCE = 'idp/test/resilience/**/*.test.ts';
const COMMON = { testTimeout: 30_000, hookTimeout: 60_000, pool: 'forks' } as const;

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...COMMON,
          name: 'suites',
          include: ['{config,keystore,adapters,migrations,idp}/**/*.test.ts', 'test/lint/**/*.test.ts', 'clients/desktop/test/**/*.test.ts', 'clients/web/test/**/*.test.ts'],
          exclude: ['**/node_modules/**', RESILIENCE],
          globalSetup: ['test/support/global-setup.ts'],
          // Each worker boots its own stores; two cores, two workers.
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        // The soak and the faults pace their traffic by the rate the provider reached flat out at
        // their start: they run last, one at a time, with nothing else on the machine's two cores
        // (beside other suites, half of a rate measured in a quiet moment is more than the machine
        // gives in a busy one). They start their own stores and need no PGlite template.
        test: {
          ...COMMON,
          name: 'resilience',
          include: [RESILIENCE],
          exclude: ['**/node_modules/**'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
