import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

/**
 * The layering rules of eslint.config.js, tried on imports placed where they break a boundary (and
 * where they do not), as `npm run lint` would see them in those files.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const eslint = new ESLint({ cwd: root });

async function importErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}${filePath}` });
  return (result?.messages ?? []).map((message) => `${message.ruleId}: ${message.message}`);
}

describe('import boundaries', () => {
  it.each([
    ['keystore/src/x.ts', "import { startServer } from '@jobswipe/idp';", /No package imports idp/],
    ['adapters/src/x.ts', "import { createApp } from '../../idp/src/app.ts';", /No package imports idp/],
    ['config/src/x.ts', "import { generateSigningKey } from '@jobswipe/keystore';", /config is imported by the other packages/],
    ['clients/web/app/x.tsx', "import { loadConfig } from '@jobswipe/config';", /Clients import nothing of the server/],
    ['clients/desktop/src/x.ts', "import { createUserQueries } from '../../../idp/src/users/queries.ts';", /Clients import nothing of the server/],
    ['idp/src/users/queries.ts', "import { accountRoutes } from '../account/routes.ts';", /query module imports only/],
    ['idp/src/users/queries.ts', "import { verifyCsrfToken } from '../http/csrf.ts';", /query module imports only/],
    ['idp/src/sessions/service.ts', "import { accountRoutes } from '../account/routes.ts';", /library imports no route module/],
    ['idp/src/sessions/service.ts', "import { errorPage } from '../pages/views.ts';", /library imports no views/],
    ['idp/src/provider/scopes.ts', "import { createProvider } from './configuration.ts';", /library imports no route module/],
    ['idp/src/signup/routes.ts', "import { accountRoutes } from '../account/routes.ts';", /Only app.ts and the composition root import route modules/],
  ])('refuses, in %s: %s', async (filePath, code, message) => {
    // Some of these imports would also close a cycle (import-x/no-cycle): the boundary is what is checked here.
    const errors = (await importErrors(filePath, code)).filter((error) => !error.startsWith('import-x/no-cycle:'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^no-restricted-imports: /);
    expect(errors[0]).toMatch(message);
  });

  it('refuses an import cycle', async () => {
    // route-resolution.ts imports request-scope.ts: importing it back closes a cycle.
    const errors = await importErrors('idp/src/http/request-scope.ts', "import { providerRouteOf } from './route-resolution.ts';\nexport const route = providerRouteOf;\n");
    expect(errors).toEqual(['import-x/no-cycle: Dependency cycle detected']);
  });

  it.each([
    ['idp/src/app.ts', "import { accountRoutes } from './account/routes.ts';"],
    ['idp/src/server.ts', "import { createProvider } from './provider/configuration.ts';"],
    ['idp/src/account/routes.ts', "import { accountPage } from './views.ts';\nimport { createSessionService } from '../sessions/service.ts';"],
    ['idp/src/sessions/service.ts', "import { createUserQueries } from '../users/queries.ts';\nimport type { Kysely } from 'kysely';"],
    ['idp/src/users/queries.ts', "import type { UsersTable } from './tables.ts';\nimport type { SessionsTable } from '../sessions/tables.ts';\nimport { sql } from 'kysely';"],
    ['keystore/src/x.ts', "import { loadConfig } from '@jobswipe/config';"],
    ['test/support/x.ts', "import { startServer } from '@jobswipe/idp';"],
  ])('allows, in %s: %s', async (filePath, code) => {
    expect(await importErrors(filePath, code)).toEqual([]);
  });
});
