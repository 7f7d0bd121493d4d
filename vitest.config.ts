import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{config,keystore,adapters,migrations,idp}/**/*.test.ts', 'test/lint/**/*.test.ts', 'clients/desktop/test/**/*.test.ts', 'clients/web/test/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each worker boots its own stores; two cores, two workers.
    pool: 'forks',
    maxWorkers: 2,
  },
});
