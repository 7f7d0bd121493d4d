import { spawn } from 'node:child_process';
import { expect } from 'vitest';

/** promtool from Debian's `prometheus` package (.ci/run installs it). */
export const PROMTOOL = process.env['PROMTOOL'] ?? '/usr/bin/promtool';

/** GET a metrics URL; the text of a 200 answer. */
export async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  expect(response.status, `GET ${url}`).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

/**
 * The value of one series in a scrape: the metric name and exactly these labels (label order as
 * written by prom-client does not matter). Undefined when the series is absent.
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!] as const).sort(([a], [b]) => a.localeCompare(b));
    if (found.length === wanted.length && found.every(([key, value], index) => wanted[index]![0] === key && wanted[index]![1] === value)) return Number(match[3]);
  }
  return undefined;
}

/** Every value a label takes in a metric's series. */
export function labelValues(text: string, name: string, label: string): string[] {
  const values = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const match = new RegExp(`[{,]${label}="((?:[^"\\\\]|\\\\.)*)"`).exec(line);
    if (match) values.add(match[1]!);
  }
  return [...values].sort();
}

/** Runs promtool with `stdin`; its exit code and output. */
export function promtool(args: string[], stdin = ''): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(stdin);
  });
}
