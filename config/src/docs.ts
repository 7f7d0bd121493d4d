import { environmentSchema } from './schema.ts';

function defaultOf(field: unknown): string {
  const def = (field as { _zod: { def: { type: string; defaultValue?: unknown } } })._zod.def;
  if (def.type !== 'default') return '(unset)';
  const value = def.defaultValue;
  return `\`${Array.isArray(value) ? value.join(' ') : String(value)}\``;
}

/** Renders docs/configuration.md from the schema, so the page cannot drift from the code. */
export function renderConfigurationDoc(): string {
  const rows = Object.entries(environmentSchema.shape).map(
    ([name, field]) => `| \`${name}\` | ${defaultOf(field)} | ${(field.description ?? '').replaceAll('|', '\\|')} |`,
  );
  return [
    '# Configuration',
    '',
    'JobSwipe Identity reads its configuration from environment variables only. At start-up every',
    'variable is validated; if any is invalid the process prints one message naming each bad variable',
    'and why, and exits with status 2. Empty values count as unset.',
    '',
    'This page is generated from `config/src/schema.ts` by `npm run docs:config`; a test fails when it is stale.',
    '',
    '| Variable | Default | Meaning |',
    '| --- | --- | --- |',
    ...rows,
    '',
    '## Production guards',
    '',
    'With `NODE_ENV=production` the server refuses to start unless `ISSUER` is https, `DATABASE_URL` is',
    'set, `COOKIE_KEYS` is given and a key-encryption key is configured (`KEYSTORE_KEK` or',
    '`KEYSTORE_KEK_FILE`), `SMTP_URL` is set, and it refuses `BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK=true`. Outside production, missing cookie keys are generated once and kept in',
    '`DATA_DIR/secrets.json` so sessions survive a restart, and a missing key-encryption key is generated',
    'into `DATA_DIR/keystore.kek` (the server warns at start-up). See [keys.md](keys.md).',
    '',
  ].join('\n');
}
