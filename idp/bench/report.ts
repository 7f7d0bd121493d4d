/**
 * The benchmark's report: medians per scenario and target, ratios to the bare provider and to the
 * ceilings, the goals of issue 15 as met/missed, the machine; as Markdown (docs/benchmarks.md) and a
 * plain SVG bar chart of ours/bare per scenario (docs/benchmarks.svg).
 */
import type { Ceilings } from './ceilings.ts';
import type { CpuUse } from './cpu.ts';
import { SCENARIO_LABELS, SCENARIOS, type Measurement, type ScenarioName } from './scenarios.ts';
import { TARGET_LABELS, TARGETS, type TargetName } from './targets.ts';

export interface Machine {
  cpu: string;
  cores: number;
  memoryBytes: number;
  node: string;
  postgres: string;
  redis: string;
  os: string;
  date: string;
}

export interface BenchResult {
  command: string;
  machine: Machine;
  ceilings: Ceilings;
  /** `short`: fewer than 3 rounds or under 5 s per run, a check of the harness rather than figures. */
  settings: { duration: number; rounds: number; connections: number; warmup: number; short: boolean };
  scenarios: ScenarioName[];
  targets: TargetName[];
  /** Targets that could not run, and why. */
  notRun: Partial<Record<TargetName, string>>;
  /** RSS of each target's process(es) right after start, and after the whole run (bytes). */
  idleRss: Partial<Record<TargetName, number[]>>;
  finalRss: Partial<Record<TargetName, number[]>>;
  /** Every round's measurement, per scenario and target. */
  measurements: Partial<Record<ScenarioName, Partial<Record<TargetName, Measurement[]>>>>;
}

export interface Summary {
  rate: number;
  requestRate: number;
  p50: number;
  p99: number;
  errors: number;
  errorSample: string | undefined;
  rss: number[];
  rounds: number;
  probe?: { endpoint: string; idleP99: number; loadedP99: number } | undefined;
  cpu?: CpuUse | undefined;
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function summarize(rounds: Measurement[] | undefined): Summary | undefined {
  if (!rounds || rounds.length === 0) return undefined;
  const probes = rounds.flatMap((round) => (round.probe ? [round.probe] : []));
  const cpus = rounds.flatMap((round) => (round.cpu ? [round.cpu] : []));
  return {
    rate: median(rounds.map((round) => round.rate)),
    requestRate: median(rounds.map((round) => round.requestRate)),
    p50: median(rounds.map((round) => round.p50)),
    p99: median(rounds.map((round) => round.p99)),
    errors: rounds.reduce((sum, round) => sum + round.errors, 0),
    errorSample: rounds.map((round) => round.errorSample).find(Boolean),
    // After the run: the last round's reading.
    rss: rounds.at(-1)?.rss ?? [],
    rounds: rounds.length,
    probe: probes.length
      ? { endpoint: probes[0]!.endpoint, idleP99: median(probes.map((p) => p.idleP99)), loadedP99: median(probes.map((p) => p.loadedP99)) }
      : undefined,
    cpu: cpus.length
      ? {
          targetUs: median(cpus.map((cpu) => cpu.targetUs)),
          postgresUs: median(cpus.map((cpu) => cpu.postgresUs)),
          redisUs: median(cpus.map((cpu) => cpu.redisUs)),
          machineBusy: median(cpus.map((cpu) => cpu.machineBusy)),
        }
      : undefined,
  };
}

const MB = 1024 * 1024;
const fmtRate = (value: number) => (Number.isFinite(value) ? (value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1)) : '–');
const fmtMs = (value: number) => (Number.isFinite(value) ? (value >= 10 ? value.toFixed(0) : value.toFixed(1)) : '–');
const fmtRatio = (value: number | undefined) => (value !== undefined && Number.isFinite(value) ? value.toFixed(2) : '–');
const fmtPercent = (value: number) => `${Math.round(value * 100)}%`;
const fmtUs = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–');
const fmtRss = (values: number[] | undefined) => (values && values.length > 0 ? values.map((value) => (value / MB).toFixed(0)).join(' + ') : '–');

/** Which ceiling a scenario is bounded by, and how many of it one operation costs. */
const CEILING: Partial<Record<ScenarioName, { name: string; of: (c: Ceilings) => number }>> = {
  // One RS256 signature per response: the JWT access token; the ID token on refresh.
  'client-credentials': { name: 'RS256', of: (c) => c.rs256PerSecond },
  refresh: { name: 'RS256', of: (c) => c.rs256PerSecond },
  // One bcrypt verification per sign-in.
  'sign-in': { name: 'bcrypt', of: (c) => c.bcryptPerSecond },
};

export interface Goal {
  goal: string;
  measured: string;
  status: 'met' | 'missed' | 'not measured';
}

const judge = (ok: boolean | undefined): Goal['status'] => (ok === undefined ? 'not measured' : ok ? 'met' : 'missed');

/** Issue 15's targets, as ratios in this run. */
export function goals(result: BenchResult): Goal[] {
  const get = (scenario: ScenarioName, target: TargetName) => summarize(result.measurements[scenario]?.[target]);
  const ratio = (scenario: ScenarioName, target: TargetName = 'ours-pg') => {
    const ours = get(scenario, target);
    const bare = get(scenario, 'bare');
    return ours && bare && bare.rate > 0 ? ours.rate / bare.rate : undefined;
  };
  const list: Goal[] = [];
  for (const scenario of ['discovery', 'jwks'] as const) {
    const value = ratio(scenario);
    list.push({ goal: `${SCENARIO_LABELS[scenario]}: ours (Postgres) ≥ 0.85 × bare`, measured: fmtRatio(value), status: judge(value === undefined ? undefined : value >= 0.85) });
  }
  const cc = ratio('client-credentials');
  const ccOurs = get('client-credentials', 'ours-pg');
  const ccBare = get('client-credentials', 'bare');
  const ccP99 = ccOurs && ccBare && ccBare.p99 > 0 ? ccOurs.p99 / ccBare.p99 : undefined;
  list.push({ goal: 'client credentials: ours (Postgres) ≥ 0.70 × bare', measured: fmtRatio(cc), status: judge(cc === undefined ? undefined : cc >= 0.7) });
  list.push({ goal: "client credentials: ours' p99 ≤ 2 × bare's", measured: fmtRatio(ccP99), status: judge(ccP99 === undefined ? undefined : ccP99 <= 2) });
  // Issue 16: recording usage is at least as fast as issuing a client-credentials token, same run, same target.
  const usage = get('usage', 'ours-pg');
  const usageRatio = usage && ccOurs && ccOurs.rate > 0 ? usage.rate / ccOurs.rate : undefined;
  list.push({ goal: "usage recording: ours (Postgres) ≥ 1.0 × ours' client credentials", measured: fmtRatio(usageRatio), status: judge(usageRatio === undefined ? undefined : usageRatio >= 1) });
  const refresh = ratio('refresh');
  list.push({ goal: 'refresh: ours (Postgres) ≥ 0.50 × bare', measured: fmtRatio(refresh), status: judge(refresh === undefined ? undefined : refresh >= 0.5) });
  const signIn = get('sign-in', 'ours-pg');
  const signInCeiling = signIn ? signIn.rate / result.ceilings.bcryptPerSecond : undefined;
  list.push({ goal: 'full sign-in: ours (Postgres) ≥ 0.85 × the bcrypt ceiling', measured: fmtRatio(signInCeiling), status: judge(signInCeiling === undefined ? undefined : signInCeiling >= 0.85) });
  const probe = signIn?.probe;
  const probeRatio = probe && probe.idleP99 > 0 ? probe.loadedP99 / probe.idleP99 : undefined;
  list.push({
    goal: `during sign-ins, p99 of ${probe?.endpoint ?? 'a cheap endpoint'} ≤ 2 × idle (ours, Postgres)`,
    measured: probe ? `${fmtRatio(probeRatio)} (${fmtMs(probe.loadedP99)} ms vs ${fmtMs(probe.idleP99)} ms)` : '–',
    status: judge(probeRatio === undefined ? undefined : probeRatio <= 2),
  });
  const pgRss = [...(result.finalRss['ours-pg'] ?? [])];
  list.push({
    goal: 'RSS per process < 250 MB after the run (ours, Postgres)',
    measured: pgRss.length ? `${fmtRss(pgRss)} MB` : '–',
    status: judge(pgRss.length ? Math.max(...pgRss) < 250 * MB : undefined),
  });
  const workerRss = result.finalRss['ours-pg-workers2'] ?? [];
  if (workerRss.length) {
    list.push({ goal: 'RSS per process < 250 MB after the run (WORKERS=2)', measured: `${fmtRss(workerRss)} MB`, status: judge(Math.max(...workerRss) < 250 * MB) });
  }
  const embeddedIdle = result.idleRss['ours-embedded'] ?? [];
  list.push({
    goal: 'embedded store: idle RSS right after start < 300 MB',
    measured: embeddedIdle.length ? `${fmtRss(embeddedIdle)} MB` : '–',
    status: judge(embeddedIdle.length ? Math.max(...embeddedIdle) < 300 * MB : undefined),
  });
  const workers = workersRatio(result);
  const oneBusy = get('client-credentials', 'ours-pg')?.cpu?.machineBusy;
  const twoBusy = get('client-credentials', 'ours-pg-workers2')?.cpu?.machineBusy;
  const machine =
    oneBusy !== undefined && twoBusy !== undefined
      ? ` (machine ${fmtPercent(oneBusy)} busy with one process, ${fmtPercent(twoBusy)} with two: at most ${fmtRatio(1 / oneBusy)}× was left)`
      : '';
  list.push({
    goal: 'client credentials: WORKERS=2 ≥ 1.3 × one process',
    measured: workers === undefined ? (result.notRun['ours-pg-workers2'] ?? '–') : `${fmtRatio(workers)}${machine}`,
    status: judge(workers === undefined ? undefined : workers >= 1.3),
  });
  return list;
}

function workersRatio(result: BenchResult): number | undefined {
  const two = summarize(result.measurements['client-credentials']?.['ours-pg-workers2']);
  const one = summarize(result.measurements['client-credentials']?.['ours-pg']);
  return two && one && one.rate > 0 ? two.rate / one.rate : undefined;
}

/** The ratio ours/bare (req/s) per scenario and target, for the chart. */
function ratios(result: BenchResult): Array<{ scenario: ScenarioName; values: Array<{ target: TargetName; ratio: number }> }> {
  return result.scenarios.map((scenario) => {
    const bare = summarize(result.measurements[scenario]?.bare);
    const values = result.targets
      .filter((target) => target !== 'bare')
      .flatMap((target) => {
        const ours = summarize(result.measurements[scenario]?.[target]);
        return ours && bare && bare.rate > 0 ? [{ target, ratio: ours.rate / bare.rate }] : [];
      });
    return { scenario, values };
  });
}

export function renderMarkdown(result: BenchResult, svgName: string): string {
  const { machine, ceilings, settings } = result;
  const lines: string[] = [];
  lines.push('# Benchmarks', '');
  lines.push(`> Generated by \`${result.command}\` (idp/bench/); do not edit by hand, run it again.`);
  lines.push('> Figures from a busy or shared machine are noise: compare ratios from one run on a quiet machine.');
  if (settings.short) lines.push('> This was a short run (under 5 s per run or fewer than 3 rounds): it checks the harness; its figures are not for comparison.');
  lines.push('');
  lines.push('## Machine', '');
  lines.push('| | |', '| --- | --- |');
  lines.push(`| Date | ${machine.date} |`);
  lines.push(`| CPU | ${machine.cpu} |`);
  lines.push(`| Cores | ${machine.cores} |`);
  lines.push(`| Memory | ${(machine.memoryBytes / 1024 ** 3).toFixed(1)} GiB |`);
  lines.push(`| OS | ${machine.os} |`);
  lines.push(`| Node | ${machine.node} |`);
  lines.push(`| Postgres | ${machine.postgres} |`);
  lines.push(`| Redis | ${machine.redis} |`);
  lines.push(
    `| Load | autocannon, ${settings.connections} connections, ${settings.duration} s per run, ${settings.rounds} round(s) alternating between targets, medians; ${settings.warmup} s warm-up before each target's first run of a scenario |`,
    '',
  );

  lines.push('## Ceilings (same run)', '');
  lines.push(`- RS256 signatures with node:crypto on one core: **${fmtRate(ceilings.rs256PerSecond)}/s** (2048-bit key, a tight loop).`);
  lines.push(
    `- bcrypt cost-${ceilings.bcryptCost} verifications with the \`bcrypt\` package: **${fmtRate(ceilings.bcryptPerSecond)}/s** (${ceilings.bcryptConcurrency} at a time, the libuv threadpool, on ${machine.cores} cores).`,
    '',
  );

  lines.push('## Results', '');
  lines.push('Medians over the rounds. Rate: successful responses per second (full sign-in: completed sign-ins per second; latency of a whole sign-in). RSS: the process(es) right after the scenario\'s last round. "/ ceiling": the rate over the RS256 ceiling (one signature per response) or the bcrypt ceiling (one verification per sign-in).', '');
  lines.push('| scenario | target | rate /s | p50 ms | p99 ms | errors | RSS MB | rate / bare | p99 / bare | / ceiling |');
  lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const scenario of result.scenarios) {
    const bare = summarize(result.measurements[scenario]?.bare);
    for (const target of result.targets) {
      const label = `| ${SCENARIO_LABELS[scenario]} | ${TARGET_LABELS[target]} |`;
      if (target === 'ours-pg-workers2' && scenario !== 'client-credentials') continue;
      // The bare provider has no usage API (the goal compares usage with ours' client credentials).
      if (target.startsWith('bare') && scenario === 'usage') continue;
      const row = summarize(result.measurements[scenario]?.[target]);
      if (!row) {
        lines.push(`${label} ${result.notRun[target] ?? 'not run'} | | | | | | | |`);
        continue;
      }
      const ceiling = CEILING[scenario];
      const rateRatio = bare && target !== 'bare' && bare.rate > 0 ? row.rate / bare.rate : undefined;
      const p99Ratio = bare && target !== 'bare' && bare.p99 > 0 ? row.p99 / bare.p99 : undefined;
      const ceilingRatio = ceiling ? `${fmtRatio(row.rate / ceiling.of(ceilings))} (${ceiling.name})` : '';
      const rate = scenario === 'sign-in' ? `${fmtRate(row.rate)} (${fmtRate(row.requestRate)} req/s)` : fmtRate(row.rate);
      lines.push(`${label} ${rate} | ${fmtMs(row.p50)} | ${fmtMs(row.p99)} | ${row.errors} | ${fmtRss(row.rss)} | ${fmtRatio(rateRatio)} | ${fmtRatio(p99Ratio)} | ${ceilingRatio} |`);
    }
  }
  lines.push('', `![ours / bare per scenario](${svgName})`, '');

  const durable = result.scenarios.flatMap((scenario) => {
    const [bare, barePg, ours] = (['bare', 'bare-pg', 'ours-pg'] as const).map((target) => summarize(result.measurements[scenario]?.[target]));
    if (!bare || !barePg || !ours || scenario === 'discovery' || scenario === 'jwks') return [];
    return [`| ${SCENARIO_LABELS[scenario]} | ${fmtRate(bare.rate)} | ${fmtRate(barePg.rate)} | ${fmtRate(ours.rate)} | ${fmtRatio(barePg.rate / bare.rate)} | ${fmtRatio(ours.rate / barePg.rate)} |`];
  });
  if (durable.length) {
    lines.push('## What a durable store costs', '');
    lines.push(
      `The same bare oidc-provider with every model in Postgres (a minimal one-table adapter) and one audit row written per token response before it goes out (${TARGET_LABELS['bare-pg']}): the least a durable, audited deployment of the library does here. Its ratio to the in-memory bare provider is what durability alone costs on this machine; ours against it is what the rest of ours costs.`,
      '',
    );
    lines.push('| scenario | bare /s | bare on Postgres /s | ours (Postgres + Redis) /s | bare on Postgres / bare | ours / bare on Postgres |');
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: |', ...durable, '');
  }

  const errors = result.scenarios.flatMap((scenario) =>
    result.targets.flatMap((target) => {
      const row = summarize(result.measurements[scenario]?.[target]);
      return row?.errorSample ? [`- ${SCENARIO_LABELS[scenario]}, ${TARGET_LABELS[target]}: ${row.errorSample}`] : [];
    }),
  );
  if (errors.length) lines.push('Errors seen:', '', ...errors, '');

  lines.push('## Goals (issue 15), as ratios in this run', '');
  lines.push('| goal | measured | status |', '| --- | --- | --- |');
  for (const goal of goals(result)) lines.push(`| ${goal.goal} | ${goal.measured} | ${goal.status} |`);
  lines.push('');

  const probes = result.targets.flatMap((target) => {
    const probe = summarize(result.measurements['sign-in']?.[target])?.probe;
    return probe ? [`| ${TARGET_LABELS[target]} | ${probe.endpoint} | ${fmtMs(probe.idleP99)} | ${fmtMs(probe.loadedP99)} | ${fmtRatio(probe.loadedP99 / probe.idleP99)} |`] : [];
  });
  if (probes.length) {
    lines.push('## Other requests while sign-ins run', '');
    lines.push('A second process sends 50 requests per second to a cheap endpoint, first idle, then while the sign-ins run.', '');
    lines.push('| target | endpoint | idle p99 ms | p99 during sign-ins ms | ratio |', '| --- | --- | ---: | ---: | ---: |', ...probes, '');
  }

  const cpuRows = result.scenarios.flatMap((scenario) =>
    result.targets.flatMap((target) => {
      const cpu = summarize(result.measurements[scenario]?.[target])?.cpu;
      return cpu
        ? [`| ${SCENARIO_LABELS[scenario]} | ${TARGET_LABELS[target]} | ${fmtUs(cpu.targetUs)} | ${fmtUs(cpu.postgresUs)} | ${fmtUs(cpu.redisUs)} | ${fmtPercent(cpu.machineBusy)} |`]
        : [];
    }),
  );
  if (cpuRows.length) {
    lines.push('## CPU per request', '');
    lines.push(
      "Medians over the rounds, from /proc: CPU time (user + system, all threads) of the target's process(es), of every Postgres server process and of Redis, divided by the requests of the run (sign-in: by its requests, not sign-ins); and how busy the whole machine was (its cores, the load generator included). A machine near 100% busy has nothing left to give a second process.",
      '',
    );
    lines.push('| scenario | target | target µs | Postgres µs | Redis µs | machine busy |', '| --- | --- | ---: | ---: | ---: | ---: |', ...cpuRows, '');
  }

  lines.push('## Memory', '');
  lines.push('| target | RSS right after start MB | RSS after the run MB |', '| --- | ---: | ---: |');
  for (const target of result.targets) {
    if (result.notRun[target]) continue;
    lines.push(`| ${TARGET_LABELS[target]} | ${fmtRss(result.idleRss[target])} | ${fmtRss(result.finalRss[target])} |`);
  }
  lines.push('', 'Per process: the process the harness started first, then its children (the cluster workers with WORKERS; on a Node without type stripping, tsx\'s esbuild service, about 16 MB, once a module was compiled on demand).', '');

  lines.push('## How it is measured', '');
  lines.push(
    '- Targets: a bare oidc-provider (the installed version, in-memory adapter, the product\'s token settings: RS256 JWKS, JWT access tokens for `urn:jobswipe:api` on client credentials with a resource indicator, refresh tokens rotated on use, introspection, userinfo; a minimal login form that checks a bcrypt hash) the same bare provider with every model in Postgres through a minimal one-table adapter and one audit row inserted per token response before it goes out (bare on Postgres, its own fresh database), and our provider (`idp/src/main.ts`) on a fresh Postgres database + Redis prefix, on a fresh embedded store, and on Postgres + Redis with `WORKERS=2` (client credentials only). Each is a child process; ours is migrated (`idp migrate`, Postgres) and seeded (`idp import --file`) by the same entry point as `npm run idp`, bare is given the same seed; `TOKEN_RATE_LIMIT_PER_MINUTE` is raised out of the way, the sign-in limits stay.',
    '- discovery, JWKS: GET. client credentials: POST /token with `resource=urn:jobswipe:api`. usage recording (ours only; the bare provider has no usage API): POST /api/usage with a usage:write token, one application for the connection\'s user per request, each with a new idempotency key, on a plan whose limit no run reaches; compared with ours\' client credentials in the same run. refresh: 16 users, one per connection, each sending the refresh token its previous response returned. introspection: each connection introspects its user\'s access token with the web client\'s credentials. userinfo: each connection with its user\'s access token.',
    '- full sign-in: autocannon `requests` with setupRequest/onResponse and the per-connection context, each loop a fresh browser: authorize → login page → login POST (CSRF token and cookies) → redirects → code → token, each sign-in from its own `X-Forwarded-For` (TRUST_PROXY=loopback). The rate is completed sign-ins per second, counted from the first completion (before it, every connection is still in its first sign-in); the latency that of a whole sign-in. A sign-in waits for bcrypt, so this run lasts at least long enough for each connection to finish about four (4 × connections / the bcrypt ceiling, at most 40 s).',
    '- Rounds alternate between targets (per scenario: round 1 every target, then round 2, ...); medians are reported. The load generator shares the machine with the target.',
    '- `--cpu-prof DIR` starts every target (the bare ones too, to compare) under `node --cpu-prof --cpu-prof-dir DIR/<target>`, and `--heap-prof DIR` under `node --heap-prof` (sampled allocations still live when the target stops: what holds memory); the profiles are written when the run ends.',
    '',
  );
  return lines.join('\n');
}

const COLORS: Partial<Record<TargetName, string>> = { 'bare-pg': '#8c8c8c', 'ours-pg': '#2f6db5', 'ours-embedded': '#d9822b', 'ours-pg-workers2': '#3a9e5c' };
const GOAL_LINE: Partial<Record<ScenarioName, number>> = { discovery: 0.85, jwks: 0.85, 'client-credentials': 0.7, refresh: 0.5 };

/** Words in lines of at most `width` characters (a longer word gets a line of its own). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const word of text.split(' ')) {
    const last = lines.at(-1);
    if (last !== undefined && last.length + 1 + word.length <= width) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines;
}

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A plain SVG bar chart: ours / bare (req/s) per scenario, one bar per target of ours, goals marked. */
export function renderSvg(result: BenchResult): string {
  const data = ratios(result).filter((group) => group.values.length > 0);
  const targets = TARGETS.filter((target) => target !== 'bare' && data.some((group) => group.values.some((value) => value.target === target)));
  const width = 820;
  const height = 380;
  const margin = { top: 40, right: 20, bottom: 90, left: 50 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const top = Math.max(1.2, ...data.flatMap((group) => group.values.map((value) => value.ratio))) * 1.05;
  const y = (ratio: number) => margin.top + plotHeight - (ratio / top) * plotHeight;
  const groupWidth = data.length > 0 ? plotWidth / data.length : plotWidth;
  const barWidth = Math.min(36, (groupWidth * 0.8) / Math.max(1, targets.length));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">ours / bare oidc-provider (req/s, medians) — ${escapeXml(result.machine.date.slice(0, 10))}</text>`);
  for (let tick = 0; tick <= top + 1e-9; tick += top > 3 ? 1 : 0.25) {
    parts.push(`<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="${Math.abs(tick - 1) < 1e-9 ? '#444' : '#e3e3e3'}"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${(y(tick) + 4).toFixed(1)}" text-anchor="end">${tick.toFixed(2)}</text>`);
  }
  data.forEach((group, index) => {
    const x0 = margin.left + index * groupWidth + (groupWidth - barWidth * targets.length) / 2;
    targets.forEach((target, position) => {
      const value = group.values.find((entry) => entry.target === target);
      if (!value) return;
      const x = x0 + position * barWidth;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y(value.ratio).toFixed(1)}" width="${(barWidth - 3).toFixed(1)}" height="${(margin.top + plotHeight - y(value.ratio)).toFixed(1)}" fill="${COLORS[target] ?? '#888'}"><title>${escapeXml(`${SCENARIO_LABELS[group.scenario]}, ${TARGET_LABELS[target]}: ${value.ratio.toFixed(2)}`)}</title></rect>`,
      );
      parts.push(`<text x="${(x + (barWidth - 3) / 2).toFixed(1)}" y="${(y(value.ratio) - 3).toFixed(1)}" text-anchor="middle" font-size="10">${value.ratio.toFixed(2)}</text>`);
    });
    const goal = GOAL_LINE[group.scenario];
    if (goal !== undefined) {
      const gx = margin.left + index * groupWidth + groupWidth * 0.08;
      parts.push(`<line x1="${gx.toFixed(1)}" x2="${(gx + groupWidth * 0.84).toFixed(1)}" y1="${y(goal).toFixed(1)}" y2="${y(goal).toFixed(1)}" stroke="#c0392b" stroke-dasharray="4 3"/>`);
    }
    const label = margin.left + index * groupWidth + groupWidth / 2;
    const words = wrap(SCENARIO_LABELS[group.scenario], Math.max(8, Math.floor(groupWidth / 7)));
    const spans = words.map((line, row) => `<tspan x="${label.toFixed(1)}" dy="${row === 0 ? 0 : 14}">${escapeXml(line)}</tspan>`).join('');
    parts.push(`<text x="${label.toFixed(1)}" y="${margin.top + plotHeight + 16}" text-anchor="middle">${spans}</text>`);
  });
  const legendY = height - 30;
  let legendX = margin.left;
  for (const target of targets) {
    parts.push(`<rect x="${legendX}" y="${legendY - 10}" width="12" height="12" fill="${COLORS[target] ?? '#888'}"/>`);
    parts.push(`<text x="${legendX + 18}" y="${legendY}">${escapeXml(TARGET_LABELS[target])}</text>`);
    legendX += 18 + Math.ceil(TARGET_LABELS[target].length * 6.5) + 20;
  }
  parts.push(`<line x1="${legendX}" x2="${legendX + 24}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="#c0392b" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${legendX + 30}" y="${legendY}">goal</text>`);
  parts.push('</svg>', '');
  return parts.join('\n');
}

/** The scenarios in their canonical order (for parsing --scenarios). */
export const ALL_SCENARIOS: readonly ScenarioName[] = SCENARIOS;
