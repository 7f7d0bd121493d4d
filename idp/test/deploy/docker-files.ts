import { execFile } from 'node:child_process';
import { access, constants, cp, lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, posix, relative } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';

/**
 * Readers of the deployment files (Dockerfile, .dockerignore, docker-compose.yml, .env.example) for
 * checking them without a Docker engine: the subset of each format those files use, strictly (anything
 * else is an error here rather than silently misread).
 */

const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------------
// .env files (docker compose's format: KEY=VALUE, # comments, optional quotes)

export function parseDotenv(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!match) throw new Error(`.env line ${index + 1} is not KEY=VALUE: ${line}`);
    let value = match[2]!;
    const quoted = /^(["'])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2]!;
    else value = value.replace(/\s+#.*$/, '');
    values.set(match[1]!, value);
  }
  return values;
}

// ---------------------------------------------------------------------------------------------------
// Compose interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}

export class InterpolationError extends Error {}

const VARIABLE = /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

export function interpolate(text: string, variables: ReadonlyMap<string, string>): string {
  return text.replace(VARIABLE, (whole, braced: string | undefined, operator: string | undefined, argument: string | undefined, bare: string | undefined) => {
    if (whole === '$$') return '$';
    const name = (braced ?? bare)!;
    const value = variables.get(name);
    const unsetOrEmpty = value === undefined || value === '';
    switch (operator) {
      case undefined:
        return value ?? '';
      case ':-':
        return unsetOrEmpty ? interpolate(argument ?? '', variables) : value;
      case '-':
        return value === undefined ? interpolate(argument ?? '', variables) : value;
      case ':?':
        if (unsetOrEmpty) throw new InterpolationError(`required variable ${name} is missing a value: ${argument ?? ''}`);
        return value;
      case '?':
        if (value === undefined) throw new InterpolationError(`required variable ${name} is missing a value: ${argument ?? ''}`);
        return value;
      default:
        throw new Error(`unsupported interpolation ${whole}`);
    }
  });
}

/** Every variable a compose file refers to ($$ escapes excluded). */
export function referencedVariables(text: string): Set<string> {
  const names = new Set<string>();
  for (const match of text.matchAll(VARIABLE)) {
    const name = match[1] ?? match[4];
    if (name) names.add(name);
  }
  return names;
}

// ---------------------------------------------------------------------------------------------------
// docker-compose.yml, as the normalised model `docker compose config --format json` prints

export interface ComposeService {
  image?: string;
  build?: { context: string };
  command?: string[];
  environment: Record<string, string>;
  depends_on: Record<string, { condition: string }>;
  ports: Array<{ host_ip?: string; published?: string; target: number }>;
  healthcheck?: { test: string[] };
  restart?: string;
  read_only?: boolean;
}

export interface ComposeModel {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}

function interpolateTree(node: unknown, variables: ReadonlyMap<string, string>): unknown {
  if (typeof node === 'string') return interpolate(node, variables);
  if (Array.isArray(node)) return node.map((item) => interpolateTree(item, variables));
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, interpolateTree(value, variables)]));
  }
  return node;
}

/** "[host_ip:]published:target[/tcp]" or a long-syntax entry, as the compose model has them. */
function normalisePort(port: unknown): { host_ip?: string; published?: string; target: number } {
  if (typeof port === 'object' && port !== null) {
    const long = port as { host_ip?: string; published?: string | number; target: number };
    return {
      target: Number(long.target),
      ...(long.published !== undefined ? { published: String(long.published) } : {}),
      ...(long.host_ip ? { host_ip: long.host_ip } : {}),
    };
  }
  const parts = String(port).replace(/\/tcp$/, '').split(':');
  const target = Number(parts.pop());
  const published = parts.pop();
  const hostIp = parts.join(':');
  return { target, ...(published !== undefined ? { published } : {}), ...(hostIp ? { host_ip: hostIp } : {}) };
}

function normaliseService(raw: Record<string, unknown>): ComposeService {
  const environment: Record<string, string> = {};
  const env = raw['environment'];
  if (Array.isArray(env)) {
    for (const entry of env as string[]) {
      const [name, ...value] = entry.split('=');
      environment[name!] = value.join('=');
    }
  } else if (env && typeof env === 'object') {
    for (const [name, value] of Object.entries(env)) environment[name] = value === null ? '' : String(value);
  }
  const depends: Record<string, { condition: string }> = {};
  const dependsOn = raw['depends_on'];
  if (Array.isArray(dependsOn)) for (const name of dependsOn as string[]) depends[name] = { condition: 'service_started' };
  else if (dependsOn && typeof dependsOn === 'object') {
    for (const [name, value] of Object.entries(dependsOn as Record<string, { condition?: string }>)) {
      depends[name] = { condition: value?.condition ?? 'service_started' };
    }
  }
  const command = raw['command'];
  const build = raw['build'];
  return {
    ...(typeof raw['image'] === 'string' ? { image: raw['image'] } : {}),
    ...(build !== undefined ? { build: typeof build === 'string' ? { context: build } : (build as { context: string }) } : {}),
    ...(command !== undefined ? { command: Array.isArray(command) ? (command as string[]).map(String) : String(command).split(/\s+/) } : {}),
    environment,
    depends_on: depends,
    ports: Array.isArray(raw['ports']) ? (raw['ports'] as unknown[]).map(normalisePort) : [],
    ...(raw['healthcheck'] ? { healthcheck: raw['healthcheck'] as { test: string[] } } : {}),
    ...(raw['restart'] !== undefined ? { restart: String(raw['restart']) } : {}),
    ...(raw['read_only'] !== undefined ? { read_only: raw['read_only'] === true } : {}),
  };
}

/** docker-compose.yml read the way `docker compose config` reads it: YAML with merge keys, then interpolation. */
export function readCompose(text: string, variables: ReadonlyMap<string, string>): ComposeModel {
  const document = parseYaml(text, { merge: true, strict: true, uniqueKeys: true }) as Record<string, unknown>;
  const interpolated = interpolateTree(document, variables) as Record<string, unknown>;
  const services = interpolated['services'] as Record<string, Record<string, unknown>>;
  return {
    services: Object.fromEntries(Object.entries(services).map(([name, service]) => [name, normaliseService(service)])),
    volumes: (interpolated['volumes'] as Record<string, unknown> | undefined) ?? {},
  };
}

/** Whether the `docker compose` plugin answers here (the docker CLI alone is not enough). */
export async function composeCliAvailable(): Promise<boolean> {
  return run('docker', ['compose', 'version'], { timeout: 10_000 }).then(
    () => true,
    () => false,
  );
}

/** `docker compose config --format json` on the file with exactly these variables (no shell, no .env). */
export async function composeConfigByCli(root: string, variables: ReadonlyMap<string, string>, env: NodeJS.ProcessEnv, envFile: string): Promise<ComposeModel> {
  await writeFile(envFile, [...variables].map(([name, value]) => `${name}=${JSON.stringify(value)}`).join('\n') + '\n', { mode: 0o600 });
  const { stdout } = await run('docker', ['compose', '--project-directory', root, '-f', join(root, 'docker-compose.yml'), '--env-file', envFile, 'config', '--format', 'json'], {
    env,
    timeout: 30_000,
  });
  const model = JSON.parse(stdout) as { services: Record<string, Record<string, unknown>>; volumes?: Record<string, unknown> };
  return {
    services: Object.fromEntries(Object.entries(model.services).map(([name, service]) => [name, normaliseService(service)])),
    volumes: model.volumes ?? {},
  };
}

// ---------------------------------------------------------------------------------------------------
// Dockerfile

export interface Instruction {
  keyword: string;
  /** The text after the keyword, continuation lines joined. */
  args: string;
}

export interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (pending === '' && /^\s*#/.test(line)) continue;
    if (pending !== '' && /^\s*#/.test(line)) continue; // comments inside a continued instruction
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const joined = (pending + line.trim()).trim();
    pending = '';
    if (joined !== '') logical.push(joined);
  }
  const stages: Stage[] = [];
  for (const line of logical) {
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(line)!;
    const upper = keyword!.toUpperCase();
    if (upper === 'FROM') {
      const from = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args!);
      if (!from) throw new Error(`cannot read FROM ${args}`);
      stages.push({ image: from[1]!, name: from[2], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) {
      if (upper === 'ARG') continue;
      throw new Error(`${upper} before the first FROM`);
    }
    stage.instructions.push({ keyword: upper, args: args! });
  }
  return stages;
}

/** An exec-form (JSON array) argument, as CMD, ENTRYPOINT and HEALTHCHECK CMD take it. */
export function execForm(text: string): string[] {
  const value: unknown = JSON.parse(text);
  if (!Array.isArray(value) || !value.every((part) => typeof part === 'string')) throw new Error(`not an exec-form array: ${text}`);
  return value as string[];
}

export function healthcheckCommand(stage: Stage): string[] | undefined {
  const health = stage.instructions.findLast((instruction) => instruction.keyword === 'HEALTHCHECK');
  if (!health) return undefined;
  const match = /^(?:--\S+=\S+\s+)*CMD\s+(\[.*\])$/.exec(health.args);
  if (!match) throw new Error(`HEALTHCHECK must use the exec form: ${health.args}`);
  return execForm(match[1]!);
}

/** ENV KEY=VALUE pairs ($VAR expanded from the earlier ones and `outer`). */
export function stageEnvironment(stage: Stage, outer: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { keyword, args } of stage.instructions) {
    if (keyword !== 'ENV') continue;
    for (const pair of args.match(/[A-Za-z_][A-Za-z0-9_]*=(?:"[^"]*"|\S+)/g) ?? []) {
      const [name, ...rest] = pair.split('=');
      const value = rest.join('=').replace(/^"(.*)"$/, '$1');
      env[name!] = value.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, ref: string) => env[ref] ?? outer[ref] ?? '');
    }
  }
  return env;
}

// ---------------------------------------------------------------------------------------------------
// .dockerignore (patterns relative to the context root; `**`, `*`, `?`; no `!` exceptions used here)

export function dockerignoreMatcher(text: string): (path: string) => boolean {
  const patterns = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (patterns.some((pattern) => pattern.startsWith('!'))) throw new Error('.dockerignore exceptions (!) are not read here');
  const regexes = patterns.map((pattern) => {
    const clean = posix.normalize(pattern.replace(/^\/+/, '')).replace(/\/+$/, '');
    let source = '';
    for (let index = 0; index < clean.length; index++) {
      const char = clean[index]!;
      if (clean.startsWith('**/', index)) {
        source += '(?:.*/)?';
        index += 2;
      } else if (clean.startsWith('**', index)) {
        source += '.*';
        index += 1;
      } else if (char === '*') source += '[^/]*';
      else if (char === '?') source += '[^/]';
      else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return new RegExp(`^${source}$`);
  });
  // A path is left out when it, or a folder it is in, matches.
  return (path: string) => {
    const parts = path.split('/');
    for (let length = 1; length <= parts.length; length++) {
      const prefix = parts.slice(0, length).join('/');
      if (regexes.some((regex) => regex.test(prefix))) return true;
    }
    return false;
  };
}

// ---------------------------------------------------------------------------------------------------
// A stage's file layout, rebuilt outside Docker: COPY from the build context (minus .dockerignore) or
// from an earlier stage, into a directory that stands for the stage's WORKDIR.

export interface StageTree {
  /** The stage's WORKDIR inside the image (e.g. /app). */
  workdir: string;
  /** The directory that stands for it here. */
  dir: string;
}

/** Resolves an image path under the stage's WORKDIR to a path in its directory; other paths are refused. */
export function hostPath(tree: StageTree, imagePath: string): string {
  const absolute = posix.resolve(tree.workdir, imagePath);
  if (absolute !== tree.workdir && !absolute.startsWith(`${tree.workdir}/`)) {
    throw new Error(`${imagePath} is outside WORKDIR ${tree.workdir}: not reproducible in the layout test`);
  }
  return join(tree.dir, posix.relative(tree.workdir, absolute));
}

async function copyFiltered(context: string, source: string, target: string, ignored: (path: string) => boolean): Promise<number> {
  const stats = await lstat(source);
  const rel = relative(context, source);
  if (rel !== '' && ignored(rel)) return 0;
  if (!stats.isDirectory()) {
    await mkdir(dirname(target), { recursive: true });
    await cp(source, target, { verbatimSymlinks: true, preserveTimestamps: true });
    return 1;
  }
  await mkdir(target, { recursive: true });
  let count = 0;
  for (const entry of await readdir(source)) count += await copyFiltered(context, join(source, entry), join(target, entry), ignored);
  return count;
}

export interface CopyOptions {
  context: string;
  ignored: (path: string) => boolean;
  stages: Map<string, StageTree>;
}

/** Applies one COPY instruction the way Docker does for the forms the Dockerfile uses. */
export async function applyCopy(tree: StageTree, args: string, options: CopyOptions): Promise<void> {
  const words = args.split(/\s+/);
  let from: StageTree | undefined;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift()!;
    const match = /^--from=(.+)$/.exec(flag);
    if (match) {
      from = options.stages.get(match[1]!);
      if (!from) throw new Error(`COPY ${args}: no earlier stage ${match[1]}`);
    } else if (!/^--(chown|chmod|link)(=|$)/.test(flag)) throw new Error(`COPY flag ${flag} is not read here`);
  }
  const destination = words.pop()!;
  if (words.length === 0) throw new Error(`COPY ${args}: no source`);
  if (words.some((word) => /[*?[]/.test(word) || word.startsWith('['))) throw new Error(`COPY ${args}: wildcards and the JSON form are not read here`);
  const intoFolder = destination.endsWith('/') || words.length > 1;
  for (const source of words) {
    const sourcePath = from ? hostPath(from, source) : join(options.context, posix.normalize(source));
    if (!from && relative(options.context, sourcePath).startsWith('..')) throw new Error(`COPY ${source} leaves the build context`);
    // Docker fails the build when a source is missing or left out of the context.
    if (!from && options.ignored(relative(options.context, sourcePath))) throw new Error(`COPY ${source}: excluded by .dockerignore`);
    const stats = await lstat(sourcePath).catch(() => undefined);
    if (!stats) throw new Error(`COPY ${source}: not found`);
    const target = stats.isDirectory() ? hostPath(tree, destination) : hostPath(tree, intoFolder ? posix.join(destination, basename(source)) : destination);
    const copied = from
      ? await cp(sourcePath, target, { recursive: true, verbatimSymlinks: true }).then(() => 1)
      : await copyFiltered(options.context, sourcePath, target, options.ignored);
    if (copied === 0) throw new Error(`COPY ${source}: nothing left after .dockerignore`);
  }
}

/** The path `command` would run from PATH (as the image's shell or entrypoint finds it). */
export async function whichIn(path: string, command: string): Promise<string | undefined> {
  for (const folder of path.split(':')) {
    const candidate = join(folder, command);
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  return undefined;
}

export async function readText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}
