/**
 * Where the CPU of a measured run went, from /proc (Linux): the target's own processes, every
 * Postgres and Redis server process, and the machine as a whole. Per request, it is what each
 * response costs whatever the machine's speed that day; the machine's busy share says how much of
 * the machine was left (the load generator runs on it too).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { descendants } from './targets.ts';

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on every Linux build in use). */
const TICKS_PER_SECOND = 100;

export interface CpuSnapshot {
  target: number;
  postgres: number;
  redis: number;
  machineBusy: number;
  machineAll: number;
}

/** CPU per request in µs, by where it was spent, and the machine's busy share (0-1) during the run. */
export interface CpuUse {
  targetUs: number;
  postgresUs: number;
  redisUs: number;
  machineBusy: number;
}

/** user + system ticks of one process (0 if it is gone). */
function processTicks(pid: number | string): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Ticks of every process whose command name matches. */
function ticksOf(name: RegExp): number {
  let sum = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (name.test(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')))) sum += processTicks(entry);
    } catch {
      // gone meanwhile
    }
  }
  return sum;
}

/** Now, or undefined where there is no /proc. */
export function cpuSnapshot(pid: number): CpuSnapshot | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const all = fields.reduce((sum, value) => sum + value, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return {
      target: [pid, ...descendants(pid)].reduce((sum, each) => sum + processTicks(each), 0),
      postgres: ticksOf(/^postgres/),
      redis: ticksOf(/^redis-server/),
      machineBusy: all - idle,
      machineAll: all,
    };
  } catch {
    return undefined;
  }
}

/** The CPU between two snapshots, per request of the run. */
export function cpuUse(before: CpuSnapshot | undefined, after: CpuSnapshot | undefined, requests: number): CpuUse | undefined {
  if (!before || !after || requests <= 0 || after.machineAll <= before.machineAll) return undefined;
  const perRequest = (ticks: number) => (Math.max(ticks, 0) * (1_000_000 / TICKS_PER_SECOND)) / requests;
  return {
    targetUs: perRequest(after.target - before.target),
    postgresUs: perRequest(after.postgres - before.postgres),
    redisUs: perRequest(after.redis - before.redis),
    machineBusy: (after.machineBusy - before.machineBusy) / (after.machineAll - before.machineAll),
  };
}
