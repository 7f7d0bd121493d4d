/**
 * `npm run bench`: the ceilings, then every scenario against every target in alternating rounds,
 * then docs/benchmarks.md and docs/benchmarks.svg (also printed). See docs/benchmarks.md's last
 * section for the method, and `npm run bench -- --help` for the options.
 */
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir, totalmem, type } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { cores, measureCeilings } from './ceilings.ts';
import { cpuSnapshot, cpuUse } from './cpu.ts';
import { createSeed, type Credentials } from './seed.ts';
import { renderMarkdown, renderSvg, type BenchResult, type Machine } from './report.ts';
import { repairUsers, runScenario, SCENARIOS, signInUsers, stopLoad, type ScenarioName, type TargetState } from './scenarios.ts';
import { Cleanup, POSTGRES_ADMIN_URL, REDIS_URL, ROOT, startTarget, stopStarting, TARGETS, targetRss, unsupported, type TargetName } from './targets.ts';

export interface BenchOptions {
  duration: number;
  rounds: number;
  warmup: number;
  connections: number;
  ceilingSeconds: number;
  scenarios: ScenarioName[];
  targets: TargetName[];
  cpuProf: string | undefined;
  heapProf: string | undefined;
  out: string;
  svg: string;
  json: string | undefined;
  quiet: boolean;
}

const USAGE = `npm run bench -- [options]

  --duration S        seconds per measured run (default 6; the whole run then takes about 10 minutes)
  --rounds N          rounds per scenario, alternating between targets; medians reported (default 3)
  --warmup S          unmeasured seconds before each target's first run of a scenario (default 1)
  --connections N     autocannon connections (default 16)
  --ceiling-seconds S how long each ceiling is measured (default 3; RS256 at most 2)
  --scenarios a,b     of ${SCENARIOS.join(', ')} (default all)
  --targets x,y       of ${TARGETS.join(', ')} (default all; WORKERS=2 runs client credentials only; usage runs on ours only)
  --cpu-prof DIR      start every target under node --cpu-prof --cpu-prof-dir DIR/<target> (bare ones too, to compare)
  --heap-prof DIR     the same with node --heap-prof (sampled allocations still live when the target stops, by where they were made)
  --out FILE          the report (default docs/benchmarks.md); the chart goes next to it as .svg
  --svg FILE          the chart (default: --out with .svg)
  --json FILE         also write every measurement as JSON
  --quiet             print only the report
`;

export class UsageError extends Error {}

function list<T extends string>(value: string, allowed: readonly T[], what: string): T[] {
  const names = value.split(',').map((name) => name.trim()).filter(Boolean);
  const unknown = names.filter((name) => !allowed.includes(name as T));
  if (unknown.length > 0 || names.length === 0) throw new UsageError(`--${what}: unknown ${unknown.join(', ') || '(empty)'}; choose from ${allowed.join(', ')}`);
  // Canonical order, whatever the order given.
  return allowed.filter((name) => names.includes(name));
}

export function parseOptions(argv: string[]): BenchOptions {
  const options: BenchOptions = {
    duration: 6,
    rounds: 3,
    warmup: 1,
    connections: 16,
    ceilingSeconds: 3,
    scenarios: [...SCENARIOS],
    targets: [...TARGETS],
    cpuProf: undefined,
    heapProf: undefined,
    out: join(ROOT, 'docs/benchmarks.md'),
    svg: '',
    json: undefined,
    quiet: false,
  };
  const number = (flag: string, value: string | undefined, min: number) => {
    const parsed = Number(value);
    if (value === undefined || !Number.isFinite(parsed) || parsed < min) throw new UsageError(`${flag} needs a number ≥ ${min}`);
    return parsed;
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i]!;
    const value = () => {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`${flag} needs a value`);
      i += 1;
      return next;
    };
    switch (flag) {
      case '--duration':
        options.duration = number(flag, value(), 1);
        break;
      case '--rounds':
        options.rounds = Math.floor(number(flag, value(), 1));
        break;
      case '--warmup':
        options.warmup = number(flag, value(), 0);
        break;
      case '--connections':
        options.connections = Math.floor(number(flag, value(), 1));
        break;
      case '--ceiling-seconds':
        options.ceilingSeconds = number(flag, value(), 0.5);
        break;
      case '--scenarios':
        options.scenarios = list(value(), SCENARIOS, 'scenarios');
        break;
      case '--targets':
        options.targets = list(value(), TARGETS, 'targets');
        break;
      case '--cpu-prof':
        options.cpuProf = resolve(value());
        break;
      case '--heap-prof':
        options.heapProf = resolve(value());
        break;
      case '--out':
        options.out = resolve(value());
        break;
      case '--svg':
        options.svg = resolve(value());
        break;
      case '--json':
        options.json = resolve(value());
        break;
      case '--quiet':
        options.quiet = true;
        break;
      case '--help':
      case '-h':
        throw new UsageError(USAGE);
      default:
        throw new UsageError(`unknown option ${flag}\n\n${USAGE}`);
    }
  }
  if (!options.svg) options.svg = options.out.replace(/\.md$/, '') + '.svg';
  return options;
}

async function postgresVersion(): Promise<string> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('show server_version');
    return rows[0]?.server_version ?? 'unknown';
  } catch (error) {
    return `unreachable (${(error as Error).message})`;
  } finally {
    await client.end().catch(() => {});
  }
}

async function redisVersion(): Promise<string> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await redis.connect();
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
  } catch (error) {
    return `unreachable (${(error as Error).message})`;
  } finally {
    redis.disconnect();
  }
}

async function machine(): Promise<Machine> {
  let osName = `${type()} ${release()}`;
  try {
    osName = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName;
  } catch {
    // not Linux
  }
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cores(),
    memoryBytes: totalmem(),
    node: process.version,
    postgres: await postgresVersion(),
    redis: await redisVersion(),
    os: osName,
    date: new Date().toISOString(),
  };
}

/** The command as someone would type it again. */
function commandLine(argv: string[]): string {
  const quote = (arg: string) => (/^[\w./:,=-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`);
  const args = argv.map((arg) => (arg.startsWith(ROOT) ? relative(ROOT, arg) || '.' : arg)).map(quote);
  return args.length ? `npm run bench -- ${args.join(' ')}` : 'npm run bench';
}

export async function runBench(argv: string[], cleanup: Cleanup, aborted: () => boolean): Promise<BenchResult> {
  const options = parseOptions(argv);
  const log = options.quiet ? () => {} : (line: string) => process.stderr.write(`[bench] ${line}\n`);
  const workDir = await mkdtemp(join(tmpdir(), 'jobswipe-bench-'));
  cleanup.add(`remove ${workDir}`, () => rm(workDir, { recursive: true, force: true }));

  const startedAt = Date.now();
  log('measuring the ceilings (RS256, bcrypt)');
  const ceilings = await measureCeilings(options.ceilingSeconds);
  log(`RS256 ${ceilings.rs256PerSecond.toFixed(0)}/s on one core; bcrypt cost 12 ${ceilings.bcryptPerSecond.toFixed(1)}/s at ${ceilings.bcryptConcurrency} at a time`);
  const credentials: Credentials = await createSeed(12);

  const result: BenchResult = {
    command: commandLine(argv),
    machine: await machine(),
    ceilings,
    settings: { duration: options.duration, rounds: options.rounds, connections: options.connections, warmup: options.warmup, short: options.duration < 5 || options.rounds < 3 },
    scenarios: options.scenarios,
    targets: options.targets,
    notRun: {},
    idleRss: {},
    finalRss: {},
    measurements: {},
  };

  const needsUsers = options.scenarios.some((scenario) => ['usage', 'refresh', 'introspection', 'userinfo', 'sign-in'].includes(scenario));
  const states = new Map<TargetName, TargetState>();
  for (const name of options.targets) {
    if (aborted()) throw new Error('interrupted');
    const why = unsupported(name) ?? (name === 'ours-pg-workers2' && !options.scenarios.includes('client-credentials') ? 'not run: WORKERS=2 runs client credentials only' : undefined);
    if (why) {
      result.notRun[name] = why;
      log(`${name}: ${why}`);
      continue;
    }
    const profiling: string[] = [];
    for (const [flag, dir] of [['cpu-prof', options.cpuProf], ['heap-prof', options.heapProf]] as const) {
      if (!dir) continue;
      await mkdir(join(dir, name), { recursive: true });
      profiling.push(`--${flag}`, `--${flag}-dir`, join(dir, name));
    }
    const target = await startTarget(name, {
      seed: credentials.seed,
      workDir,
      cleanup,
      profiling,
      log,
    });
    result.idleRss[name] = target.idleRss;
    const users = needsUsers && name !== 'ours-pg-workers2' ? await signInUsers(target, credentials) : [];
    states.set(name, { target, users });
  }

  // The bare provider has no usage API: the usage scenario is measured against ours' client credentials instead.
  const scenarioTargets = (scenario: ScenarioName) =>
    options.targets.filter((name) => states.has(name) && (name !== 'ours-pg-workers2' || scenario === 'client-credentials') && (!name.startsWith('bare') || scenario !== 'usage'));

  for (const scenario of options.scenarios) {
    for (let round = 1; round <= options.rounds; round += 1) {
      for (const name of scenarioTargets(scenario)) {
        if (aborted()) throw new Error('interrupted');
        const state = states.get(name)!;
        // A sign-in waits for bcrypt: the run lasts long enough for each connection to finish about four.
        const signInSeconds = Math.min(40, Math.ceil((4 * options.connections) / Math.max(0.1, ceilings.bcryptPerSecond)));
        const run = { duration: options.duration, connections: options.connections, signInSeconds };
        if (round === 1 && options.warmup > 0) {
          await runScenario(scenario, state, credentials, { duration: options.warmup, connections: options.connections });
          await repairUsers(state, credentials);
        }
        const before = cpuSnapshot(state.target.pid);
        const measurement = await runScenario(scenario, state, credentials, run);
        measurement.cpu = cpuUse(before, cpuSnapshot(state.target.pid), measurement.requestRate * measurement.seconds);
        const perTarget = (result.measurements[scenario] ??= {});
        (perTarget[name] ??= []).push(measurement);
        const repaired = await repairUsers(state, credentials);
        log(
          `${scenario} round ${round} ${name}: ${measurement.rate.toFixed(1)}/s, p50 ${measurement.p50.toFixed(1)} ms, p99 ${measurement.p99.toFixed(1)} ms, ` +
            `errors ${measurement.errors}${repaired ? ` (${repaired} users signed in again)` : ''}${measurement.errorSample ? ` [${measurement.errorSample}]` : ''}`,
        );
        // Let the target settle (background writes, GC) before the next one is loaded.
        await sleep(300);
      }
    }
  }
  // An interrupted run writes nothing: a partial report must not replace a whole one.
  if (aborted()) throw new Error('interrupted');
  for (const [name, state] of states) result.finalRss[name] = targetRss(state.target);
  log(`measured in ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);

  const markdown = renderMarkdown(result, relative(dirname(options.out), options.svg) || basename(options.svg));
  await mkdir(dirname(options.out), { recursive: true });
  await writeFile(options.out, `${markdown}\n`);
  await writeFile(options.svg, renderSvg(result));
  if (options.json) await writeFile(options.json, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${markdown}\n`);
  log(`wrote ${relative(process.cwd(), options.out)} and ${relative(process.cwd(), options.svg)}`);
  return result;
}

async function main(): Promise<void> {
  const cleanup = new Cleanup();
  let interrupted = false;
  let cleaning: Promise<string[]> | undefined;
  const cleanUp = () => (cleaning ??= cleanup.runAll());
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`[bench] ${signal}: stopping the load and cleaning up\n`);
    stopLoad();
    stopStarting();
    void cleanUp().then((problems) => {
      for (const problem of problems) process.stderr.write(`[bench] clean-up: ${problem}\n`);
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A throw in a load generator's callback would end the process: clean up first.
  const onCrash = (error: unknown) => {
    process.stderr.write(`[bench] failed: ${(error as Error).stack ?? String(error)}\n`);
    stopLoad();
    stopStarting();
    void cleanUp().finally(() => process.exit(1));
  };
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  let status = 0;
  try {
    await runBench(process.argv.slice(2), cleanup, () => interrupted);
  } catch (error) {
    if (interrupted) return;
    status = error instanceof UsageError ? (error.message === USAGE ? 0 : 2) : 1;
    if (status === 0) process.stdout.write(USAGE);
    else process.stderr.write(error instanceof UsageError ? `${error.message}\n` : `[bench] failed: ${(error as Error).stack ?? String(error)}\n`);
  }
  if (interrupted) return;
  for (const problem of await cleanUp()) process.stderr.write(`[bench] clean-up: ${problem}\n`);
  process.exit(status);
}

if (process.argv[1] && resolve(process.argv[1]) === new URL(import.meta.url).pathname) await main();
