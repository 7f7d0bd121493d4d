import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigurationDoc } from './docs.ts';
import { ConfigError, loadConfig, type ConfigProblem } from './load.ts';

const KEY_A = 'a'.repeat(32);
const KEY_B = 'b'.repeat(48);

/** The ConfigError loadConfig throws for this environment (fails the test when it does not throw one). */
function configError(source: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(source);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(source)}`);
}

const variables = (problems: ConfigProblem[]) => problems.map((problem) => problem.variable).sort();

describe('loadConfig defaults', () => {
  it('an empty environment is a development server on port 4000 with the embedded store', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      env: 'development',
      production: false,
      port: 4000,
      host: 'localhost',
      issuer: 'http://localhost:4000',
      dataDir: './.data',
      store: { kind: 'embedded', dataDir: './.data' },
      migrateOnStart: true,
      cookieKeys: undefined,
      api: { resource: 'urn:jobswipe:api', scopes: ['api:read', 'api:write'] },
      bcryptCost: 12,
      logLevel: 'info',
      sweepIntervalSeconds: 300,
      shutdownGraceSeconds: 8,
    });
  });

  it('the default issuer follows PORT', () => {
    const config = loadConfig({ PORT: '8123' });
    expect(config.port).toBe(8123);
    expect(config.issuer).toBe('http://localhost:8123');
  });

  it('an explicit ISSUER wins over the PORT default', () => {
    expect(loadConfig({ PORT: '8123', ISSUER: 'https://id.jobswipe.example' }).issuer).toBe('https://id.jobswipe.example');
  });

  it('the embedded store lives in DATA_DIR when DATABASE_URL is unset', () => {
    const config = loadConfig({ DATA_DIR: '/var/lib/idp' });
    expect(config.store).toEqual({ kind: 'embedded', dataDir: '/var/lib/idp' });
    expect(config.dataDir).toBe('/var/lib/idp');
  });

  it('DATABASE_URL selects Postgres with the pool size', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://idp@db.internal:5432/identity', DATABASE_POOL_MAX: '25' });
    expect(config.store).toEqual({ kind: 'postgres', url: 'postgres://idp@db.internal:5432/identity', poolMax: 25 });
    expect(loadConfig({ DATABASE_URL: 'postgresql://db/identity' }).store).toEqual({
      kind: 'postgres',
      url: 'postgresql://db/identity',
      poolMax: 10,
    });
  });

  it('MIGRATE_ON_START=auto migrates the embedded store and not Postgres; true/false override', () => {
    const postgres = 'postgres://db/identity';
    expect(loadConfig({}).migrateOnStart).toBe(true);
    expect(loadConfig({ MIGRATE_ON_START: 'auto' }).migrateOnStart).toBe(true);
    expect(loadConfig({ DATABASE_URL: postgres }).migrateOnStart).toBe(false);
    expect(loadConfig({ DATABASE_URL: postgres, MIGRATE_ON_START: 'auto' }).migrateOnStart).toBe(false);
    expect(loadConfig({ DATABASE_URL: postgres, MIGRATE_ON_START: 'true' }).migrateOnStart).toBe(true);
    expect(loadConfig({ MIGRATE_ON_START: 'false' }).migrateOnStart).toBe(false);
    expect(variables(configError({ MIGRATE_ON_START: 'yes' }).problems)).toEqual(['MIGRATE_ON_START']);
  });

  it('API_SCOPES accepts space- and comma-separated lists', () => {
    expect(loadConfig({ API_SCOPES: 'jobs:read, jobs:write  profile:edit' }).api.scopes).toEqual([
      'jobs:read',
      'jobs:write',
      'profile:edit',
    ]);
    expect(variables(configError({ API_SCOPES: 'ok "quoted"' }).problems)).toEqual(['API_SCOPES']);
  });

  it('DEFAULT_PLAN is free unless set, and must be a plan id', () => {
    expect(loadConfig({}).defaultPlan).toBe('free');
    expect(loadConfig({ DEFAULT_PLAN: 'pro' }).defaultPlan).toBe('pro');
    expect(variables(configError({ DEFAULT_PLAN: 'Pro Plan' }).problems)).toEqual(['DEFAULT_PLAN']);
  });

  it('METRICS_PORT is 9464 on 127.0.0.1 unless set, and never the public PORT', () => {
    expect(loadConfig({}).metrics).toEqual({ port: 9464, host: '127.0.0.1' });
    expect(loadConfig({ METRICS_PORT: '0', METRICS_HOST: '0.0.0.0' }).metrics).toEqual({ port: 0, host: '0.0.0.0' });
    expect(variables(configError({ METRICS_PORT: '4000' }).problems)).toEqual(['METRICS_PORT']);
    expect(variables(configError({ PORT: '9464' }).problems)).toEqual(['METRICS_PORT']);
    expect(variables(configError({ METRICS_PORT: '70000' }).problems)).toEqual(['METRICS_PORT']);
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ HOME: '/root', PATH: '/bin', SOMETHING_ELSE: 'x' }).port).toBe(4000);
  });
});

describe('loadConfig problems', () => {
  it('names every bad variable in one ConfigError', () => {
    const error = configError({ PORT: 'abc', ISSUER: 'not-a-url', BCRYPT_COST: '10', DATABASE_URL: 'mysql://x' });
    expect(error.code).toBe('ERR_CONFIG_INVALID');
    expect(variables(error.problems)).toEqual(['BCRYPT_COST', 'DATABASE_URL', 'ISSUER', 'PORT']);
    for (const problem of error.problems) {
      expect(problem.message.length).toBeGreaterThan(0);
      expect(error.message).toContain(`  ${problem.variable}: ${problem.message}`);
    }
    expect(error.problems.find((p) => p.variable === 'BCRYPT_COST')?.message).toBe('must be at least 12');
    expect(error.message.split('\n')[0]).toBe('Invalid configuration:');
  });

  it.each([
    ['PORT', '0'],
    ['PORT', '65536'],
    ['PORT', '80.5'],
    ['DATABASE_POOL_MAX', '0'],
    ['SWEEP_INTERVAL_SECONDS', '-5'],
    ['NODE_ENV', 'staging'],
  ])('rejects %s=%s, naming only that variable', (name, value) => {
    expect(variables(configError({ [name]: value }).problems)).toEqual([name]);
  });

  it('rejects an issuer with a trailing slash, query or fragment, and non-http schemes', () => {
    for (const issuer of ['https://id.example/', 'https://id.example?x=1', 'https://id.example#f', 'ftp://id.example']) {
      expect(variables(configError({ ISSUER: issuer }).problems)).toEqual(['ISSUER']);
    }
    expect(loadConfig({ ISSUER: 'https://id.example/tenant' }).issuer).toBe('https://id.example/tenant');
  });

  it('BCRYPT_COST, SHUTDOWN_GRACE_SECONDS and LOG_LEVEL are range-checked', () => {
    expect(loadConfig({ BCRYPT_COST: '13' }).bcryptCost).toBe(13);
    expect(variables(configError({ BCRYPT_COST: '17', SHUTDOWN_GRACE_SECONDS: '10', LOG_LEVEL: 'loud' }).problems)).toEqual([
      'BCRYPT_COST',
      'LOG_LEVEL',
      'SHUTDOWN_GRACE_SECONDS',
    ]);
  });

  it('empty strings count as unset', () => {
    const config = loadConfig({
      PORT: '',
      ISSUER: '',
      DATABASE_URL: '',
      DATA_DIR: '',
      COOKIE_KEYS: '',
      BCRYPT_COST: '',
      NODE_ENV: '',
      MIGRATE_ON_START: '',
    });
    expect(config.port).toBe(4000);
    expect(config.issuer).toBe('http://localhost:4000');
    expect(config.store).toEqual({ kind: 'embedded', dataDir: './.data' });
    expect(config.cookieKeys).toBeUndefined();
    expect(config.bcryptCost).toBe(12);
    expect(config.env).toBe('development');
    expect(config.migrateOnStart).toBe(true);
  });
});

describe('COOKIE_KEYS', () => {
  it('parses a comma-separated list, trimming blanks and empty entries, keeping the order', () => {
    expect(loadConfig({ COOKIE_KEYS: KEY_A }).cookieKeys).toEqual([KEY_A]);
    expect(loadConfig({ COOKIE_KEYS: ` ${KEY_B} , ${KEY_A},` }).cookieKeys).toEqual([KEY_B, KEY_A]);
  });

  it('rejects a key shorter than 32 characters, naming COOKIE_KEYS', () => {
    const error = configError({ COOKIE_KEYS: `${KEY_A},short` });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toEqual({ variable: 'COOKIE_KEYS', message: 'each key must be at least 32 characters' });
    expect(variables(configError({ COOKIE_KEYS: 'a'.repeat(31) }).problems)).toEqual(['COOKIE_KEYS']);
  });

  it('rejects a list with no keys at all', () => {
    expect(variables(configError({ COOKIE_KEYS: ' , ,' }).problems)).toEqual(['COOKIE_KEYS']);
  });
});

const KEK = Buffer.alloc(32, 7).toString('base64');

describe('Redis', () => {
  it('REDIS_URL names one Redis; REDIS_SENTINELS the Sentinels of a primary, with its name and passwords', () => {
    expect(loadConfig({ REDIS_URL: 'redis://cache:6379/2' }).redis).toEqual({ kind: 'url', url: 'redis://cache:6379/2', keyPrefix: 'jobswipe:' });
    expect(loadConfig({ REDIS_SENTINELS: 'sentinel-a:26380, sentinel-b ,[::1]:26381' }).redis).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 'sentinel-a', port: 26380 },
        { host: 'sentinel-b', port: 26379 },
        { host: '::1', port: 26381 },
      ],
      master: 'mymaster',
      password: undefined,
      sentinelPassword: undefined,
      keyPrefix: 'jobswipe:',
    });
    expect(
      loadConfig({ REDIS_SENTINELS: '10.0.0.5', REDIS_SENTINEL_MASTER: 'identity', REDIS_PASSWORD: 'primary secret', REDIS_SENTINEL_PASSWORD: 'sentinel secret', REDIS_KEY_PREFIX: 'idp:' }).redis,
    ).toEqual({ kind: 'sentinel', sentinels: [{ host: '10.0.0.5', port: 26379 }], master: 'identity', password: 'primary secret', sentinelPassword: 'sentinel secret', keyPrefix: 'idp:' });
    expect(loadConfig({}).redis).toBeUndefined();
  });

  it('refuses both at once, a malformed Sentinel list, and passwords that have no Sentinels to go with', () => {
    expect(variables(configError({ REDIS_URL: 'redis://cache:6379', REDIS_SENTINELS: 'sentinel:26379' }).problems)).toEqual(['REDIS_SENTINELS']);
    for (const value of ['sentinel:0', 'sentinel:70000', 'sentinel:port', 'http://sentinel:26379', ',', 'a b:1']) {
      expect(variables(configError({ REDIS_SENTINELS: value }).problems), value).toEqual(['REDIS_SENTINELS']);
    }
    expect(variables(configError({ REDIS_URL: 'redis://cache:6379', REDIS_PASSWORD: 'secret' }).problems)).toEqual(['REDIS_PASSWORD']);
    expect(variables(configError({ REDIS_SENTINEL_PASSWORD: 'secret' }).problems)).toEqual(['REDIS_SENTINEL_PASSWORD']);
    expect(variables(configError({ REDIS_SENTINELS: 'sentinel', REDIS_SENTINEL_MASTER: 'my master' }).problems)).toEqual(['REDIS_SENTINEL_MASTER']);
    // A problem names the variable, never a password's value.
    expect(configError({ REDIS_URL: 'redis://cache:6379', REDIS_PASSWORD: 'do-not-print-me' }).message).not.toContain('do-not-print-me');
  });
});

describe('keystore settings', () => {
  it('takes the KEK as a value or a file, generated when neither is set, never both', () => {
    expect(loadConfig({}).keystore.kek).toEqual({ kind: 'generated' });
    expect(loadConfig({ KEYSTORE_KEK: KEK }).keystore.kek).toEqual({ kind: 'value', value: KEK });
    expect(loadConfig({ KEYSTORE_KEK_FILE: '/run/kek' }).keystore.kek).toEqual({ kind: 'file', path: '/run/kek' });
    expect(variables(configError({ KEYSTORE_KEK: KEK, KEYSTORE_KEK_FILE: '/run/kek' }).problems)).toEqual(['KEYSTORE_KEK_FILE']);
    expect(variables(configError({ KEYSTORE_KEK: 'too-short' }).problems)).toEqual(['KEYSTORE_KEK']);
  });

  it('bounds the rotation period, the JWKS cache lifetime and the poll interval', () => {
    expect(loadConfig({}).keystore).toMatchObject({ rotationSeconds: 2_592_000, jwksCacheSeconds: 3600, pollSeconds: 10 });
    expect(variables(configError({ KEYSTORE_POLL_SECONDS: '31' }).problems)).toEqual(['KEYSTORE_POLL_SECONDS']);
    expect(variables(configError({ KEY_ROTATION_SECONDS: '59' }).problems)).toEqual(['KEY_ROTATION_SECONDS']);
  });
});

describe('production guards', () => {
  it('NODE_ENV=production alone names ISSUER, DATABASE_URL, COOKIE_KEYS, KEYSTORE_KEK and SMTP_URL at once', () => {
    const error = configError({ NODE_ENV: 'production' });
    expect(variables(error.problems)).toEqual(['COOKIE_KEYS', 'DATABASE_URL', 'ISSUER', 'KEYSTORE_KEK', 'SMTP_URL']);
    expect(error.problems.find((p) => p.variable === 'ISSUER')?.message).toMatch(/https/);
  });

  it('names schema problems and production problems together', () => {
    const error = configError({ NODE_ENV: 'production', PORT: 'abc' });
    expect(variables(error.problems)).toEqual(['COOKIE_KEYS', 'DATABASE_URL', 'ISSUER', 'KEYSTORE_KEK', 'PORT', 'SMTP_URL']);
  });

  it('refuses an http issuer even when everything else is set', () => {
    const error = configError({
      NODE_ENV: 'production',
      ISSUER: 'http://id.jobswipe.example',
      DATABASE_URL: 'postgres://idp@db/identity',
      COOKIE_KEYS: KEY_A,
      KEYSTORE_KEK: KEK,
      SMTP_URL: 'smtp://mail.internal:25',
    });
    expect(variables(error.problems)).toEqual(['ISSUER']);
  });

  it('the http default issuer is refused too', () => {
    const error = configError({ NODE_ENV: 'production', DATABASE_URL: 'postgres://idp@db/identity', COOKIE_KEYS: KEY_A, KEYSTORE_KEK_FILE: '/run/secrets/kek', SMTP_URL: 'smtp://mail.internal:25' });
    expect(variables(error.problems)).toEqual(['ISSUER']);
  });

  it('accepts a proper production environment', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      ISSUER: 'https://id.jobswipe.example',
      DATABASE_URL: 'postgres://idp@db.internal:5432/identity',
      COOKIE_KEYS: `${KEY_B},${KEY_A}`,
      KEYSTORE_KEK_FILE: '/run/secrets/kek',
      SMTP_URL: 'smtp://mail.internal:25',
      HOST: '0.0.0.0',
      PORT: '8080',
    });
    expect(config).toMatchObject({
      env: 'production',
      production: true,
      issuer: 'https://id.jobswipe.example',
      port: 8080,
      host: '0.0.0.0',
      store: { kind: 'postgres', url: 'postgres://idp@db.internal:5432/identity', poolMax: 10 },
      migrateOnStart: false,
      cookieKeys: [KEY_B, KEY_A],
      keystore: { kek: { kind: 'file', path: '/run/secrets/kek' }, rotationSeconds: 30 * 24 * 3600, jwksCacheSeconds: 3600, pollSeconds: 10 },
    });
  });

  it('development does not require any of them', () => {
    expect(() => loadConfig({ NODE_ENV: 'development', ISSUER: 'http://id.local' })).not.toThrow();
    expect(() => loadConfig({ NODE_ENV: 'test' })).not.toThrow();
  });
});

const PRODUCTION = {
  NODE_ENV: 'production',
  ISSUER: 'https://id.jobswipe.example',
  DATABASE_URL: 'postgres://idp@db.internal:5432/identity',
  COOKIE_KEYS: KEY_A,
  KEYSTORE_KEK: KEK,
  SMTP_URL: 'smtp://mail.internal:25',
};

describe('back-channel logout settings', () => {
  it('defaults: loopback allowed and private refused outside production, 5 s timeout, 3 retries', () => {
    expect(loadConfig({}).backchannelLogout).toEqual({ allowLoopback: true, allowPrivate: false, timeoutSeconds: 5, retries: 3 });
    expect(loadConfig({ NODE_ENV: 'test' }).backchannelLogout.allowLoopback).toBe(true);
  });

  it('production refuses loopback by default', () => {
    expect(loadConfig(PRODUCTION).backchannelLogout).toEqual({ allowLoopback: false, allowPrivate: false, timeoutSeconds: 5, retries: 3 });
    expect(loadConfig({ ...PRODUCTION, BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK: 'false' }).backchannelLogout.allowLoopback).toBe(false);
    expect(loadConfig({ ...PRODUCTION, BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK: '' }).backchannelLogout.allowLoopback).toBe(false);
  });

  it('BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK=true in production is a ConfigError naming it', () => {
    const error = configError({ ...PRODUCTION, BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK: 'true' });
    expect(variables(error.problems)).toEqual(['BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK']);
    expect(error.message).toContain('  BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK: must not be true in production');
    // Reported together with the other production problems.
    expect(variables(configError({ NODE_ENV: 'production', BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK: 'true' }).problems)).toEqual([
      'BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK',
      'COOKIE_KEYS',
      'DATABASE_URL',
      'ISSUER',
      'KEYSTORE_KEK',
      'SMTP_URL',
    ]);
  });

  it('debug output (LOG_LEVEL debug or trace) is refused in production, and allowed outside it', () => {
    for (const level of ['debug', 'trace']) {
      const error = configError({ ...PRODUCTION, LOG_LEVEL: level });
      expect(variables(error.problems)).toEqual(['LOG_LEVEL']);
      expect(error.message).toContain('  LOG_LEVEL: must not be debug or trace in production');
      expect(loadConfig({ LOG_LEVEL: level }).logLevel).toBe(level);
    }
    expect(loadConfig({ ...PRODUCTION, LOG_LEVEL: 'info' }).logLevel).toBe('info');
  });

  it('BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK can be turned off outside production', () => {
    expect(loadConfig({ BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK: 'false' }).backchannelLogout.allowLoopback).toBe(false);
    expect(loadConfig({ BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK: 'true' }).backchannelLogout.allowLoopback).toBe(true);
  });

  it('BACKCHANNEL_LOGOUT_ALLOW_PRIVATE accepts only true and false', () => {
    expect(loadConfig({ BACKCHANNEL_LOGOUT_ALLOW_PRIVATE: 'true' }).backchannelLogout.allowPrivate).toBe(true);
    expect(loadConfig({ BACKCHANNEL_LOGOUT_ALLOW_PRIVATE: 'false' }).backchannelLogout.allowPrivate).toBe(false);
    expect(loadConfig({ ...PRODUCTION, BACKCHANNEL_LOGOUT_ALLOW_PRIVATE: 'true' }).backchannelLogout.allowPrivate).toBe(true);
    for (const value of ['yes', '1', 'TRUE', 'on']) {
      expect(variables(configError({ BACKCHANNEL_LOGOUT_ALLOW_PRIVATE: value }).problems)).toEqual(['BACKCHANNEL_LOGOUT_ALLOW_PRIVATE']);
      expect(variables(configError({ BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK: value }).problems)).toEqual(['BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK']);
    }
  });

  it('BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS is an integer from 1 to 30', () => {
    expect(loadConfig({ BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS: '1' }).backchannelLogout.timeoutSeconds).toBe(1);
    expect(loadConfig({ BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS: '30' }).backchannelLogout.timeoutSeconds).toBe(30);
    for (const value of ['0', '31', '2.5', 'five', '-1']) {
      expect(variables(configError({ BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS: value }).problems)).toEqual(['BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS']);
    }
  });

  it('BACKCHANNEL_LOGOUT_RETRIES is an integer from 0 to 10', () => {
    expect(loadConfig({ BACKCHANNEL_LOGOUT_RETRIES: '0' }).backchannelLogout.retries).toBe(0);
    expect(loadConfig({ BACKCHANNEL_LOGOUT_RETRIES: '10' }).backchannelLogout.retries).toBe(10);
    for (const value of ['-1', '11', '1.5', 'many']) {
      expect(variables(configError({ BACKCHANNEL_LOGOUT_RETRIES: value }).problems)).toEqual(['BACKCHANNEL_LOGOUT_RETRIES']);
    }
  });

  it('empty values count as unset', () => {
    const empty = {
      BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK: '',
      BACKCHANNEL_LOGOUT_ALLOW_PRIVATE: '',
      BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS: '',
      BACKCHANNEL_LOGOUT_RETRIES: '',
    };
    expect(loadConfig(empty).backchannelLogout).toEqual({ allowLoopback: true, allowPrivate: false, timeoutSeconds: 5, retries: 3 });
  });
});

describe('TRUST_PROXY', () => {
  it('trusts no proxy by default', () => {
    expect(loadConfig({}).trustProxy).toEqual([]);
  });

  it('takes addresses, CIDR ranges and the proxy-addr names, comma-separated', () => {
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8,::1,fd00::/8, 192.0.2.7' }).trustProxy).toEqual([
      'loopback',
      '10.0.0.0/8',
      '::1',
      'fd00::/8',
      '192.0.2.7',
    ]);
  });

  it('refuses anything else, naming the variable', () => {
    for (const value of ['true', '*', '10.0.0.0/33', 'proxy.example']) {
      expect(() => loadConfig({ TRUST_PROXY: value }), value).toThrow(/TRUST_PROXY: each entry must be/);
    }
  });
});

describe('TOKEN_RATE_LIMIT_PER_MINUTE', () => {
  it('allows 6000 requests a minute per client by default, and takes a positive whole number', () => {
    expect(loadConfig({}).tokenRateLimitPerMinute).toBe(6000);
    expect(loadConfig({ TOKEN_RATE_LIMIT_PER_MINUTE: '120' }).tokenRateLimitPerMinute).toBe(120);
    for (const value of ['0', '-1', '1.5', 'lots']) {
      expect(() => loadConfig({ TOKEN_RATE_LIMIT_PER_MINUTE: value }), value).toThrow(/TOKEN_RATE_LIMIT_PER_MINUTE/);
    }
  });
});

describe('REFRESH_TOKEN_REUSE_GRACE_SECONDS', () => {
  it('is 10 seconds by default, 0 turns it off, and it is a whole number of at most 60', () => {
    expect(loadConfig({}).refreshTokenReuseGraceSeconds).toBe(10);
    expect(loadConfig({ REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0' }).refreshTokenReuseGraceSeconds).toBe(0);
    expect(loadConfig({ REFRESH_TOKEN_REUSE_GRACE_SECONDS: '60' }).refreshTokenReuseGraceSeconds).toBe(60);
    for (const value of ['-1', '61', '2.5', 'soon']) {
      expect(() => loadConfig({ REFRESH_TOKEN_REUSE_GRACE_SECONDS: value }), value).toThrow(/REFRESH_TOKEN_REUSE_GRACE_SECONDS/);
    }
  });
});

describe('docs/configuration.md', () => {
  it('is what `npm run docs:config` renders from the schema (run it when this fails)', () => {
    const onDisk = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    expect(onDisk).toBe(renderConfigurationDoc());
  });

  it('documents every variable loadConfig reads', () => {
    const doc = renderConfigurationDoc();
    for (const name of [
      'NODE_ENV',
      'PORT',
      'HOST',
      'ISSUER',
      'DATABASE_URL',
      'DATA_DIR',
      'COOKIE_KEYS',
      'BCRYPT_COST',
      'SHUTDOWN_GRACE_SECONDS',
      'BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK',
      'BACKCHANNEL_LOGOUT_ALLOW_PRIVATE',
      'BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS',
      'BACKCHANNEL_LOGOUT_RETRIES',
      'TRUST_PROXY',
      'TOKEN_RATE_LIMIT_PER_MINUTE',
    ]) {
      expect(doc).toContain(`| \`${name}\` |`);
    }
  });
});
