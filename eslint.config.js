import { createNodeResolver, importX, typescriptParser } from '@jobswipe/lint';

/**
 * The layering, as import rules (docs/architecture in short):
 * - packages: `config` is imported by keystore, adapters and idp and imports none of them; no
 *   package imports `idp`; the clients import nothing of the server (they speak to it over HTTP).
 * - inside idp/src: routes → libraries → queries, never back. A route module is `routes.ts`,
 *   `*-routes.ts` or `views.ts`; a query module is `queries.ts`, `*-queries.ts` or `tables.ts`;
 *   everything else is a library. Only app.ts and the composition root import route modules.
 * - no import cycles (import-x/no-cycle).
 * Each file gets exactly one no-restricted-imports entry (later ones would replace earlier ones).
 */

const TESTS = ['**/*.test.ts', '**/*.test.tsx', 'test/**', '**/test/**'];
const IDP_COMPOSITION = ['idp/src/app.ts', 'idp/src/server.ts', 'idp/src/composition*.ts', 'idp/src/composition/**'];
const IDP_QUERIES = ['idp/src/**/queries.ts', 'idp/src/**/*-queries.ts', 'idp/src/**/tables.ts'];
/**
 * Route-level modules not named so: the device page's route, the error-page middleware, and the
 * provider configuration (the provider's own pages: errors, logout, device).
 */
const ROUTES_BY_PATH = ['interactions/device.ts', 'http/request-context.ts', 'provider/configuration.ts'];
const IDP_ROUTES = ['idp/src/**/routes.ts', 'idp/src/**/*-routes.ts', 'idp/src/**/views.ts', ...ROUTES_BY_PATH.map((path) => `idp/src/${path}`)];

/**
 * An import specifier that names a route module. Rules see the specifier, not the file it resolves
 * to: configuration.ts and request-context.ts are unique names in idp/src; device.ts is not, so
 * only `interactions/device.ts` is recognised (not `./device.ts` from its own folder).
 */
const ROUTE_MODULE = '(^|/)(routes|[\\w.-]+-routes|configuration|request-context)\\.ts$|(^|/)interactions/device\\.ts$';
const VIEW_MODULE = '(^|/)views\\.ts$';
/** A relative import of anything but a query module. */
const NOT_A_QUERY_MODULE = '^\\.{1,2}/(?!(?:.*/)?(?:queries|[\\w.-]+-queries|tables)\\.ts$)';

const restrict = (...patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });
const leaving = (folders) => `^(\\.\\./)+(${folders})/`;

const SERVER_PACKAGES = {
  regex: '^@jobswipe/(config|keystore|adapters|migrations|idp)(/|$)',
  message: 'Clients import nothing of the server: they speak to it over HTTP.',
};
const IDP_PACKAGE = { regex: '^@jobswipe/idp(/|$)', message: 'No package imports idp: it is the application, at the top.' };

export default [
  { ignores: ['**/node_modules/**', '**/.next/**', '**/dist/**', '**/out/**', 'coverage/**', '.data/**', '.test-data/**', '**/*.d.ts'] },
  {
    files: ['**/*.ts', '**/*.tsx', '**/*.cts', '**/*.mts'],
    languageOptions: { parser: typescriptParser },
  },
  // Disable comments in the code name it; a directive for a rule not enabled would be reported as unused.
  { rules: { 'require-yield': 'error' } },
  {
    // No import cycles, type imports included (about 2 s of the run).
    files: ['**/*.ts', '**/*.tsx'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/extensions': ['.ts', '.tsx', '.js', '.mjs'], 'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.tsx', '.js'] })] },
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
  {
    files: ['config/**'],
    rules: restrict(
      { regex: '^@jobswipe/(?!config$)', message: 'config is imported by the other packages and imports none of them.' },
      { regex: leaving('keystore|adapters|migrations|idp|clients|test'), message: 'config imports no other package.' },
    ),
  },
  {
    files: ['keystore/**', 'adapters/**', 'migrations/**'],
    rules: restrict(IDP_PACKAGE, { regex: leaving('idp|clients'), message: 'No package imports idp or a client.' }),
  },
  {
    files: ['clients/**'],
    rules: restrict(SERVER_PACKAGES, { regex: leaving('config|keystore|adapters|migrations|idp'), message: SERVER_PACKAGES.message }),
  },
  {
    files: IDP_QUERIES,
    ignores: TESTS,
    rules: restrict(
      { regex: NOT_A_QUERY_MODULE, message: 'A query module imports only other tables and queries (and kysely, adapters).' },
      { regex: '^@jobswipe/(idp|keystore|migrations)(/|$)', message: 'A query module imports only kysely, adapters and other tables and queries.' },
    ),
  },
  {
    files: IDP_ROUTES,
    ignores: [...TESTS, ...IDP_COMPOSITION],
    rules: restrict({ regex: ROUTE_MODULE, message: 'Only app.ts and the composition root import route modules.' }),
  },
  {
    files: ['idp/src/**'],
    ignores: [...TESTS, ...IDP_COMPOSITION, ...IDP_QUERIES, ...IDP_ROUTES],
    rules: restrict(
      { regex: ROUTE_MODULE, message: 'A library imports no route module: routes call libraries, never the reverse.' },
      { regex: VIEW_MODULE, message: 'A library imports no views: routes render, libraries decide.' },
    ),
  },
];
