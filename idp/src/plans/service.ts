import { actorEvent, type Actor } from '../audit/administrator.ts';
import type { AuditEvent } from '../audit/events.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import { periodOf, secondsUntil } from './period.ts';
import type { PlanQueries, PlanRow } from './queries.ts';
import { planSchema, type PlanDefinition, type PlanInput } from './schemas.ts';

/** A plan as the library hands it out (and as the CLI and APIs show it). */
export interface Plan {
  id: string;
  name: string;
  /** Per-period limit by meter; a meter not named has limit 0. */
  limits: Record<string, number>;
  desktop_devices: number;
  features: string[];
}

/** What a token's `plan` and `entitlements` claims carry. */
export interface Entitlements {
  plan: string;
  entitlements: { limits: Record<string, number>; desktop_devices: number; features: string[] };
}

/** One meter's usage in the current period: the fields of the usage API's answers. */
export interface MeterUsage {
  meter: string;
  used: number;
  limit: number;
  remaining: number;
  period_start: string;
  period_end: string;
}

/** The answer to a recording: 201 recorded, 200 the same key again (the first answer), 429 over the limit. */
export type RecordingResult =
  | { outcome: 'recorded' | 'repeated'; usage: Omit<MeterUsage, 'period_start'> }
  | { outcome: 'over_limit'; usage: Omit<MeterUsage, 'period_start'>; retryAfterSeconds: number };

/** Who changes a plan or a subscription: an administrator at the CLI, or a client of the admin API. */
export type { Actor };

export class PlanRejected extends Error {
  readonly code: string = 'ERR_PLAN_REJECTED';
}

/** No plan has the id named (the admin API answers 422). */
export class UnknownPlan extends PlanRejected {
  override readonly code = 'ERR_UNKNOWN_PLAN';
}

/** The user named does not exist (the usage API answers 404). */
export class UnknownUser extends Error {
  readonly code = 'ERR_UNKNOWN_USER';
}

/** The idempotency key was used before by this client for another user, meter or quantity. */
export class IdempotencyKeyReused extends Error {
  readonly code = 'ERR_IDEMPOTENCY_KEY_REUSED';
}

export interface PlanServiceDependencies {
  queries: PlanQueries;
  /** DEFAULT_PLAN: the plan of a user without a subscription. */
  defaultPlan: string;
  recordEvent: RecordEvent;
  /** The clock periods are read from; tests set it. */
  now: () => Date;
  /** Told each recording that counted (not a repeat or a refusal): the usage metric. */
  onRecorded?: ((meter: string, quantity: number) => void) | undefined;
}

export function planOfRow(row: PlanRow): Plan {
  return { id: row.id, name: row.name, limits: { ...row.limits }, desktop_devices: row.desktop_devices, features: [...row.features] };
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function sortedLimits(limits: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(limits).sort(([a], [b]) => a.localeCompare(b)));
}

/** Validates a plan (limits in meter order); PlanRejected names the first problem. */
export function checkPlan(input: unknown): PlanDefinition {
  const parsed = planSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'plan';
    throw new PlanRejected(`${where}: ${issue?.message ?? 'is invalid'}`);
  }
  return { ...parsed.data, limits: sortedLimits(parsed.data.limits) };
}

function eventOf(actor: Actor, type: AuditEvent['type'], fields: { userId?: string; details: Record<string, string | number | boolean | null> }): AuditEvent {
  return actorEvent(actor, type, fields);
}

/**
 * Plans, subscriptions and metered usage: the business rules behind `idp plans`, `idp usage`, the
 * seed import, the usage API and (later) the admin API, the token claims and /account.
 */
export function createPlanService(deps: PlanServiceDependencies) {
  const { queries } = deps;

  /** The plan that applies to a user; UnknownUser when there is no such user. */
  async function planOf(userId: string): Promise<Plan> {
    const found = await queries.planOfUser(userId, deps.defaultPlan);
    if (!found) throw new UnknownUser('no such user');
    // Only DEFAULT_PLAN can be missing (a subscription's plan cannot be deleted): a deployment fault.
    if (!found.plan) throw new PlanRejected(`DEFAULT_PLAN names the plan "${deps.defaultPlan}", which does not exist (see \`idp plans list\`)`);
    return planOfRow(found.plan);
  }

  function meterUsage(plan: Plan, meter: string, used: number, now: Date): MeterUsage {
    const period = periodOf(now);
    const limit = plan.limits[meter] ?? 0;
    return { meter, used, limit, remaining: Math.max(0, limit - used), period_start: period.start.toISOString(), period_end: period.end.toISOString() };
  }

  return {
    /** Every plan, by id. */
    async list(): Promise<Plan[]> {
      return (await queries.list()).map(planOfRow);
    },

    async find(id: string): Promise<Plan | undefined> {
      const row = await queries.find(id);
      return row ? planOfRow(row) : undefined;
    },

    check: checkPlan,

    /**
     * Creates or replaces a plan (audited as plan.saved when something changed). Users on it get the
     * new limits at once; tokens issued before show the old ones until they expire.
     */
    async save(input: PlanInput, actor: Actor): Promise<{ plan: Plan; change: 'created' | 'changed' | 'unchanged' }> {
      const plan = checkPlan(input);
      const { before } = await queries.upsert(plan);
      const change = !before ? 'created' : sameJson(planOfRow(before), plan) ? 'unchanged' : 'changed';
      if (change !== 'unchanged') await deps.recordEvent(eventOf(actor, 'plan.saved', { details: { plan: plan.id, change } }));
      return { plan, change };
    },

    planOf,

    /** The `plan` and `entitlements` claims of a user's tokens. */
    async entitlementsOf(userId: string): Promise<Entitlements> {
      const plan = await planOf(userId);
      return { plan: plan.id, entitlements: { limits: plan.limits, desktop_devices: plan.desktop_devices, features: plan.features } };
    },

    /**
     * Puts a user on a plan, at once (audited as plan.changed with the plan before). The next token
     * issued to the user carries it; the limit check uses it from the next request.
     */
    async setPlan(userId: string, planId: string, actor: Actor): Promise<{ before: string; after: string; changed: boolean }> {
      const current = await planOf(userId);
      if (!(await queries.find(planId))) throw new UnknownPlan(`no plan "${planId}" (see \`idp plans list\`)`);
      const subscribedBefore = await queries.subscribe(userId, planId);
      const changed = current.id !== planId;
      if (changed || subscribedBefore === undefined) {
        await deps.recordEvent(eventOf(actor, 'plan.changed', { userId, details: { from: current.id, to: planId } }));
      }
      return { before: current.id, after: planId, changed };
    },

    /**
     * Every meter of the user this period: those their plan limits and those with usage, with limits.
     * Read as the user (row-level security), as /account reads it.
     */
    async usageOf(userId: string): Promise<MeterUsage[]> {
      const now = deps.now();
      const plan = await planOf(userId);
      const counters = new Map((await queries.ownCounters(userId, periodOf(now).start)).map((row) => [row.meter, row.used]));
      const meters = [...new Set([...Object.keys(plan.limits), ...counters.keys()])].sort();
      return meters.map((meter) => meterUsage(plan, meter, counters.get(meter) ?? 0, now));
    },

    /** One meter of a user this period (GET /api/usage). */
    async meterOf(userId: string, meter: string): Promise<MeterUsage> {
      const now = deps.now();
      const plan = await planOf(userId);
      return meterUsage(plan, meter, await queries.used(userId, meter, periodOf(now).start), now);
    },

    /**
     * Records `quantity` of `meter` for a user if it fits their plan this period, once per
     * (client, idempotency key): a repeat, concurrent or not, gets the first answer and counts nothing.
     */
    async record(request: { clientId: string; userId: string; meter: string; quantity: number; idempotencyKey: string }): Promise<RecordingResult> {
      const now = deps.now();
      const period = periodOf(now);
      if (!UUID.test(request.userId)) throw new UnknownUser('no such user');
      const result = await queries.record({ ...request, userId: request.userId.toLowerCase(), periodStart: period.start, defaultPlan: deps.defaultPlan, now }).catch((error: unknown) => {
        // The user was deleted while the statement ran.
        throw (error as { code?: string }).code === '23503' ? new UnknownUser('no such user') : error;
      });
      if (result.outcome === 'unknown_user') throw new UnknownUser('no such user');
      if (result.outcome === 'no_plan') throw new PlanRejected(`DEFAULT_PLAN names the plan "${deps.defaultPlan}", which does not exist (see \`idp plans list\`)`);
      const usage = {
        meter: result.meter,
        used: result.used,
        limit: result.limit,
        remaining: result.outcome === 'over_limit' ? 0 : Math.max(0, result.limit - result.used),
        period_end: periodOf(result.periodStart).end.toISOString(),
      };
      if (result.outcome === 'over_limit') return { outcome: 'over_limit', usage, retryAfterSeconds: secondsUntil(period.end, now) };
      if (result.outcome === 'repeated' && (result.userId !== request.userId.toLowerCase() || result.meter !== request.meter || result.quantity !== request.quantity)) {
        throw new IdempotencyKeyReused('this idempotency_key was used before with another sub, meter or quantity');
      }
      if (result.outcome === 'recorded') deps.onRecorded?.(result.meter, request.quantity);
      return { outcome: result.outcome, usage };
    },
  };
}

export type PlanService = ReturnType<typeof createPlanService>;
