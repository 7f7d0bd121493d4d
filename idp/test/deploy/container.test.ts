import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, constants, lstat, mkdir, mkdtemp, readdir, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { ConfigError, ENVIRONMENT_VARIABLES, loadConfig } from '@jobswipe/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { baseEnvironment, collect, freePort, ROOT } from '../../../test/support/processes.ts';
import { TEST_REDIS_URL } from '../../../test/support/redis.ts';
import { createTestStore, type TestStore } from '../../../test/support/stores.ts';
import {
  applyCopy,
  composeCliAvailable,
  composeConfigByCli,
  dockerignoreMatcher,
  execForm,
  healthcheckCommand,
  hostPath,
  InterpolationError,
  parseDockerfile,
  parseDotenv,
  readCompose,
  referencedVariables,
  stageEnvironment,
  whichIn,
  type ComposeModel,
  type Stage,
  type StageTree,
} from './docker-files.ts';

/**
 * The Dockerfile and docker-compose.yml, checked without a Docker engine: `docker compose config` reads
 * the compose file where the compose CLI exists (else the same model is built by parsing the YAML), its
 * settings are validated by the provider's own configuration loader, and the image's file layout is
 * rebuilt from the Dockerfile's COPY lines and npm ci line, then migrated and started on Postgres.
 */

const run = promisify(execFile);

/** What .env.example leaves for the deployer to fill in, with values of the right shape. */
const DEPLOYER_VALUES: Record<string, string> = {
  ISSUER: 'https://id.example.test',
  POSTGRES_PASSWORD: randomBytes(24).toString('hex'),
  COOKIE_KEYS: `${randomBytes(48).toString('base64')},${randomBytes(48).toString('base64')}`,
  KEYSTORE_KEK: randomBytes(32).toString('base64'),
  SMTP_URL: 'smtps://identity:password@smtp.example.test:465',
};
const SECRETS = ['POSTGRES_PASSWORD', 'COOKIE_KEYS', 'KEYSTORE_KEK', 'SMTP_URL'];

let composeText: string;
let example: Map<string, string>;
let stages: Stage[];
let runtime: Stage;
let ignored: (path: string) => boolean;
let deployerEnv: Map<string, string>;
let compose: ComposeModel;
let composeSource: 'docker compose config' | 'YAML';
let work: string;

/** Environment for `docker compose`: none of the compose file's variables come from this shell. */
function composeProcessEnv(): NodeJS.ProcessEnv {
  const env = baseEnvironment();
  for (const name of referencedVariables(composeText)) delete env[name];
  return env;
}

async function composeModel(variables: Map<string, string>): Promise<ComposeModel> {
  return composeSource === 'docker compose config'
    ? composeConfigByCli(ROOT, variables, composeProcessEnv(), join(work, `compose-${randomBytes(4).toString('hex')}.env`))
    : readCompose(composeText, variables);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'jobswipe-image-'));
  composeText = await readFile(join(ROOT, 'docker-compose.yml'), 'utf8');
  example = parseDotenv(await readFile(join(ROOT, '.env.example'), 'utf8'));
  stages = parseDockerfile(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));
  runtime = stages.at(-1)!;
  ignored = dockerignoreMatcher(await readFile(join(ROOT, '.dockerignore'), 'utf8'));
  deployerEnv = new Map(example);
  for (const [name, value] of Object.entries(DEPLOYER_VALUES)) deployerEnv.set(name, value);
  composeSource = (await composeCliAvailable()) ? 'docker compose config' : 'YAML';
  compose = await composeModel(deployerEnv);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('.env.example', () => {
  it('leaves exactly the issuer and the secrets blank, and documents every variable the compose file uses', () => {
    const blank = [...example].filter(([, value]) => value === '').map(([name]) => name);
    expect(blank.sort()).toEqual(Object.keys(DEPLOYER_VALUES).sort());
    const documented = new Set(example.keys());
    expect([...referencedVariables(composeText)].filter((name) => !documented.has(name))).toEqual([]);
  });
});

describe(`docker-compose.yml (read by ${'`docker compose config`'} where the CLI exists, else as YAML)`, () => {
  it('runs Postgres, Redis, the migrations once, and the provider after them', () => {
    console.info(`docker-compose.yml read by: ${composeSource}`);
    const { services } = compose;
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['idp', 'migrate', 'postgres', 'redis']));
    for (const [name, service] of Object.entries(services)) {
      for (const [target, { condition }] of Object.entries(service.depends_on)) {
        expect(services[target], `${name} depends on ${target}`).toBeDefined();
        expect(['service_started', 'service_healthy', 'service_completed_successfully']).toContain(condition);
        // service_healthy needs a health check: the compose file's, or the image's HEALTHCHECK.
        if (condition === 'service_healthy') expect(services[target]!.healthcheck ?? services[target]!.build).toBeDefined();
      }
    }
    expect(services['postgres']!.healthcheck?.test.join(' ')).toContain('pg_isready');
    expect(services['redis']!.healthcheck?.test.join(' ')).toContain('ping');
    expect(services['migrate']!.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(services['idp']!.depends_on).toEqual({
      migrate: { condition: 'service_completed_successfully' },
      postgres: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
    });
    expect(services['migrate']!.command).toEqual(['idp', 'migrate']);
    expect(services['migrate']!.restart).toBe('no');
    // One image, built from this checkout's Dockerfile, for both.
    for (const name of ['idp', 'migrate']) {
      expect(services[name]!.image).toBe(deployerEnv.get('IDP_IMAGE'));
      expect(resolve(ROOT, services[name]!.build!.context)).toBe(resolve(ROOT));
    }
  });

  it('sets only variables the provider knows, and the configuration it describes passes the production checks', () => {
    const known = new Set(ENVIRONMENT_VARIABLES);
    for (const name of ['idp', 'migrate']) {
      const environment = compose.services[name]!.environment;
      expect(Object.keys(environment).filter((variable) => !known.has(variable)), `unknown variables in ${name}`).toEqual([]);
      const config = loadConfig({ ...stageEnvironment(runtime, {}), ...environment });
      expect(config.production).toBe(true);
      expect(config.issuer).toBe(DEPLOYER_VALUES['ISSUER']);
      expect(config.store.kind).toBe('postgres');
      expect(config.redis).toMatchObject({ kind: 'url', url: 'redis://redis:6379' });
    }
    // The migrations run on the provider's database, with the password Postgres was given.
    const idp = compose.services['idp']!.environment;
    expect(compose.services['migrate']!.environment['DATABASE_URL']).toBe(idp['DATABASE_URL']);
    const database = new URL(idp['DATABASE_URL']!);
    expect(database.hostname).toBe('postgres');
    expect(database.password).toBe(DEPLOYER_VALUES['POSTGRES_PASSWORD']);
    expect(compose.services['postgres']!.environment['POSTGRES_PASSWORD']).toBe(DEPLOYER_VALUES['POSTGRES_PASSWORD']);
    expect(database.username).toBe(compose.services['postgres']!.environment['POSTGRES_USER']);
    expect(database.pathname).toBe(`/${compose.services['postgres']!.environment['POSTGRES_DB']}`);
  });

  it('publishes only the provider, on loopback, on the port it listens on', () => {
    const idp = compose.services['idp']!;
    const listening = Number(idp.environment['PORT'] ?? stageEnvironment(runtime, {})['PORT']);
    expect(idp.ports.map((port) => port.target)).toEqual([listening]);
    expect(idp.ports[0]!.host_ip).toBe('127.0.0.1');
    const exposed = runtime.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map((port) => Number(port.replace(/\/tcp$/, ''))));
    expect(exposed).toContain(listening);
    for (const name of ['postgres', 'redis', 'migrate']) expect(compose.services[name]!.ports, name).toEqual([]);
  });

  it('holds no secret: each comes from .env, and compose or the provider refuses to start without it', async () => {
    const raw = parseYaml(composeText, { merge: true }) as { services: Record<string, { environment: Record<string, string> }> };
    for (const service of ['idp', 'migrate']) {
      const environment = raw.services[service]!.environment;
      for (const name of ['COOKIE_KEYS', 'KEYSTORE_KEK', 'SMTP_URL']) expect(environment[name], `${service} ${name}`).toMatch(new RegExp(`^\\$\\{${name}[:}]`));
      expect(environment['DATABASE_URL']).toContain('${POSTGRES_PASSWORD:?');
      expect(environment['ISSUER']).toMatch(/^\$\{ISSUER:\?/);
    }
    expect(raw.services['postgres']!.environment['POSTGRES_PASSWORD']).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);

    // .env.example copied as it is: compose stops at the blank issuer and Postgres password.
    if (composeSource === 'YAML') expect(() => readCompose(composeText, example)).toThrow(InterpolationError);
    else await expect(composeModel(example)).rejects.toThrow(/ISSUER|POSTGRES_PASSWORD/);

    // Issuer and database filled in, secrets left blank: the provider (and `idp migrate`) exits naming each one.
    const withoutSecrets = new Map(example);
    withoutSecrets.set('ISSUER', DEPLOYER_VALUES['ISSUER']!);
    withoutSecrets.set('POSTGRES_PASSWORD', DEPLOYER_VALUES['POSTGRES_PASSWORD']!);
    const model = await composeModel(withoutSecrets);
    for (const service of ['idp', 'migrate']) {
      const problem = (() => {
        try {
          loadConfig({ ...stageEnvironment(runtime, {}), ...model.services[service]!.environment });
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      expect(problem).toBeInstanceOf(ConfigError);
      expect((problem as ConfigError).problems.map((p) => p.variable).sort()).toEqual(['COOKIE_KEYS', 'KEYSTORE_KEK', 'SMTP_URL']);
    }
    expect(SECRETS.every((name) => example.get(name) === '')).toBe(true);
  });

  it('runs in development mode for a local trial with the two lines .env.example gives for it', async () => {
    const trial = new Map(example);
    trial.set('NODE_ENV', 'development');
    trial.set('ISSUER', 'http://localhost:4000');
    trial.set('POSTGRES_PASSWORD', DEPLOYER_VALUES['POSTGRES_PASSWORD']!);
    const model = await composeModel(trial);
    const config = loadConfig({ ...stageEnvironment(runtime, {}), ...model.services['idp']!.environment });
    expect(config.production).toBe(false);
    expect(config.issuer).toBe('http://localhost:4000');
    expect(config.keystore.kek.kind).toBe('generated');
    expect(config.cookieKeys).toBeUndefined();
  });
});

describe('Dockerfile', () => {
  it('builds in stages on Node 24 and runs the provider as an unprivileged user with a /readyz health check', async () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage.image).toMatch(/^node:24(?:[.-]|$)/);
    const copies = runtime.instructions.filter((i) => i.keyword === 'COPY');
    expect(copies.some((i) => /^--from=\S+/.test(i.args))).toBe(true);
    // Dependencies are installed in the build stage only.
    expect(runtime.instructions.filter((i) => i.keyword === 'RUN' && /\bnpm\b/.test(i.args))).toEqual([]);

    const user = runtime.instructions.findLast((i) => i.keyword === 'USER')?.args;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(stageEnvironment(runtime, {})['NODE_ENV']).toBe('production');

    const health = healthcheckCommand(runtime)!;
    expect(health.join(' ')).toContain('/readyz');

    // CMD is `npm start` without npm (signals reach node directly).
    const cmd = execForm(runtime.instructions.findLast((i) => i.keyword === 'CMD')!.args);
    const scripts = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(cmd).toEqual(scripts['start']!.split(' '));
    expect(runtime.instructions.some((i) => i.keyword === 'ENTRYPOINT')).toBe(false);
  });

  it('leaves local state, secrets, tests and other packages out of the build context', () => {
    for (const path of ['.env', '.git/config', 'node_modules/koa/package.json', 'idp/node_modules/x', '.data/keystore.kek', 'idp/test/deploy/container.test.ts', 'idp/src/cli/cli.test.ts', 'clients/web/package.json', 'docs/scaling.md']) {
      expect(ignored(path), path).toBe(true);
    }
    for (const path of ['idp/src/main.ts', 'idp/bin/idp.js', 'migrations/sql/0001_oidc_models.sql', 'package-lock.json']) expect(ignored(path), path).toBe(false);
  });
});

describe('the image layout, rebuilt outside Docker from the Dockerfile', () => {
  let store: TestStore | undefined;
  let started: { stop(): Promise<void> } | undefined;

  afterAll(async () => {
    await started?.stop();
    await store?.drop();
  });

  /** Every path under `dir` with its size and modification time. */
  async function snapshot(dir: string): Promise<Record<string, string>> {
    const entries: Record<string, string> = {};
    for (const path of (await readdir(dir, { recursive: true })).sort()) {
      const stats = await lstat(join(dir, path));
      entries[path] = `${stats.size} ${stats.mtimeMs}`;
    }
    return entries;
  }

  /** Runs a node program to its end with a deadline; its output is reported when it fails. */
  async function runNode(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }) {
    return run(process.execPath, args, { cwd: options.cwd, env: options.env, timeout: options.timeoutMs }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
    );
  }

  it('migrates and serves /readyz from only what the runtime stage copies', { timeout: 120_000 }, async () => {
    // Each stage's WORKDIR is a folder here; COPY and the build stage's npm ci are replayed in order.
    const trees = new Map<string, StageTree>();
    let tree: StageTree | undefined;
    const skipped: string[] = [];
    for (const [index, stage] of stages.entries()) {
      const dir = join(work, stage.name ?? `stage-${index}`);
      await mkdir(dir, { recursive: true });
      tree = undefined;
      for (const { keyword, args } of stage.instructions) {
        if (keyword === 'WORKDIR') {
          expect(args.startsWith('/')).toBe(true);
          tree = { workdir: args, dir };
        } else if (keyword === 'COPY') {
          if (!tree) throw new Error('COPY before WORKDIR');
          await applyCopy(tree, args, { context: ROOT, ignored, stages: trees });
        } else if (keyword === 'RUN') {
          if (!tree) throw new Error('RUN before WORKDIR');
          const words = args.split(/\s+/);
          if (words[0] === 'npm' && words[1] === 'ci' && !/[;&|<>$`]/.test(args)) {
            await run('npm', [...words.slice(1), '--prefer-offline'], { cwd: tree.dir, env: baseEnvironment(), timeout: 90_000 }).catch(
              (error: { stderr?: string; message: string }) => {
                throw new Error(`${args} failed: ${error.stderr ?? error.message}`);
              },
            );
          } else if (stage === runtime && /^mkdir -p \/data && chown node:node \/data && chmod 700 \/data$/.test(args)) {
            skipped.push(args); // DATA_DIR: a fresh 0700 folder below stands for it
          } else {
            throw new Error(`RUN ${args}: not replayed by this test; teach it, or keep the Dockerfile to COPY and npm ci`);
          }
        }
      }
      if (tree) trees.set(stage.name ?? String(index), tree);
    }
    const image = tree!;
    expect(skipped).toHaveLength(1);

    // Nothing but the provider's packages and their production dependencies.
    const modules = new Set(await readdir(join(image.dir, 'node_modules')));
    for (const dev of ['vitest', 'typescript', 'eslint', 'next', 'electron', 'fast-check', 'yaml', 'playwright-core']) expect(modules.has(dev), dev).toBe(false);
    // openid-client is the provider's own client of upstream identity providers (social login).
    for (const needed of ['tsx', 'oidc-provider', 'koa', 'pg', 'bcrypt', 'openid-client', 'prom-client', 'otplib']) expect(modules.has(needed), needed).toBe(true);
    const workspaces = await readdir(join(image.dir, 'node_modules/@jobswipe'));
    for (const workspace of workspaces) {
      expect((await realpath(join(image.dir, 'node_modules/@jobswipe', workspace))).startsWith(await realpath(image.dir)), workspace).toBe(true);
    }
    const tests: string[] = [];
    const walk = async (folder: string): Promise<void> => {
      for (const entry of await readdir(folder, { withFileTypes: true })) {
        if (entry.name === 'node_modules') continue;
        const path = join(folder, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (/\.test\.ts$/.test(entry.name)) tests.push(relative(image.dir, path));
      }
    };
    await walk(image.dir);
    expect(tests).toEqual([]);

    // The image's environment, with paths under WORKDIR mapped here, then compose's, then this test's stores.
    const imageEnv = stageEnvironment(runtime, { PATH: process.env['PATH'] ?? '' });
    imageEnv['PATH'] = imageEnv['PATH']!.split(':').map((folder) => (folder.startsWith(`${image.workdir}/`) ? hostPath(image, folder) : folder)).join(':');
    const dataDir = await mkdtemp(join(work, 'data-'));
    store = await createTestStore('postgres');
    if (store.kind !== 'postgres') throw new Error('expected a Postgres store');
    const port = await freePort();
    const local = {
      DATABASE_URL: store.url,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_KEY_PREFIX: `test:image:${randomBytes(4).toString('hex')}:`,
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
      // On this machine, beside other servers: a free metrics port, on loopback.
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
    };
    // The provider's root file system is read-only (only /tmp and DATA_DIR are written): TMPDIR stands for /tmp.
    const tmp = await mkdtemp(join(work, 'tmp-'));
    const envFor = (service: string): NodeJS.ProcessEnv => ({ ...baseEnvironment(), ...imageEnv, ...compose.services[service]!.environment, ...local, TMPDIR: tmp });
    expect(compose.services['idp']!.read_only).toBe(true);
    const before = await snapshot(image.dir);

    // The migrate service's command, found on the image's PATH (the node image's entrypoint runs it).
    const [program, ...programArgs] = compose.services['migrate']!.command!;
    const executable = await whichIn(imageEnv['PATH']!, program!);
    expect(executable?.startsWith(image.dir), `${program} on the image's PATH`).toBe(true);
    await access(await realpath(executable!), constants.X_OK);
    const migrated = await runNode([executable!, ...programArgs], { cwd: image.dir, env: envFor('migrate'), timeoutMs: 60_000 });
    expect(migrated.code, `${migrated.stdout}\n${migrated.stderr}`).toBe(0);

    // The image's CMD, `node` being this Node.
    const cmd = execForm(runtime.instructions.findLast((i) => i.keyword === 'CMD')!.args);
    expect(cmd[0]).toBe('node');
    const child = spawn(process.execPath, cmd.slice(1), { cwd: image.dir, env: envFor('idp'), stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.end();
    const server = collect(child, 'SIGTERM');
    started = server;
    const deadline = Date.now() + 45_000;
    let status: number | undefined;
    while (Date.now() < deadline && status !== 200) {
      if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}: ${server.stderr()}`);
      status = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
        (response) => response.status,
        () => undefined,
      );
      if (status !== 200) await sleep(200);
    }
    expect(status, server.stderr()).toBe(200);
    const discovery = (await (await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`)).json()) as { issuer: string };
    expect(discovery.issuer).toBe(DEPLOYER_VALUES['ISSUER']);

    // The HEALTHCHECK command, as Docker runs it in the container: healthy now, unhealthy once stopped.
    const health = healthcheckCommand(runtime)!;
    expect(health[0]).toBe('node');
    const healthEnv = { ...baseEnvironment(), ...imageEnv, PORT: String(port) };
    expect((await runNode(health.slice(1), { cwd: image.dir, env: healthEnv, timeoutMs: 10_000 })).code).toBe(0);
    server.signal('SIGTERM');
    expect(await server.exited).toBe(0);
    expect((await runNode(health.slice(1), { cwd: image.dir, env: healthEnv, timeoutMs: 10_000 })).code).toBe(1);
    expect(await snapshot(image.dir)).toEqual(before);
  });
});
