import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { UsageError } from './errors.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * `--name VALUE` becomes `--name=VALUE` for options that take a value, so a value starting with "-"
 * (a base64url session id or kid can) is read as the value, not refused as an ambiguous option.
 */
function attachValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index]!;
    const next = args[index + 1];
    if (arg === '--') {
      out.push(...args.slice(index));
      break;
    }
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined) {
      out.push(`${arg}=${next}`);
      index += 1;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/**
 * Every argument value: bounded, and free of control characters other than tab and newline (which a
 * --json value may hold), so nothing a command echoes can drive the terminal.
 */
const argumentValue = z
  .string()
  .max(65_536, 'is longer than 64 KiB')
  .refine((value) => !/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(value), 'contains a control character');

export function parseWithPositionals<O extends Options>(args: string[], options: O, positionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args: attachValues(args, options), options, strict: true, allowPositionals: positionals > 0 });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'invalid arguments');
  }
  if (parsed.positionals.length > positionals) throw new UsageError(`unexpected argument "${parsed.positionals[positionals]}"`);
  const named = Object.entries(parsed.values).flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((one) => [`--${name}`, one] as const));
  for (const [name, value] of [...named, ...parsed.positionals.map((one) => ['argument', one] as const)]) {
    if (typeof value !== 'string') continue;
    const checked = argumentValue.safeParse(value);
    if (!checked.success) throw new UsageError(`${name} ${checked.error.issues[0]?.message ?? 'is invalid'}`);
  }
  return parsed;
}

export function parse<O extends Options>(args: string[], options: O) {
  return parseWithPositionals(args, options, 0).values;
}

export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`);
  return value;
}
