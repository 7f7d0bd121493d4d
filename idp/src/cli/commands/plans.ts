import { withUser, type Command } from '../context.ts';
import { UsageError } from '../errors.ts';
import { date } from '../output.ts';
import { parse, required } from '../parse-args.ts';
import { planIdSchema } from '../../plans/schemas.ts';
import type { Plan } from '../../plans/service.ts';

const listed = (values: string[]) => (values.length === 0 ? '-' : values.join(','));

/** One plan on one line: id first, then name, limits, desktop devices, features. */
export function planLine(plan: Plan): string {
  const limits = listed(Object.entries(plan.limits).map(([meter, limit]) => `${meter}:${limit}`));
  return [plan.id, `name=${JSON.stringify(plan.name)}`, `limits=${limits}`, `devices=${plan.desktop_devices}`, `features=${listed(plan.features)}`].join('  ');
}

export const PLANS_COMMANDS: Record<string, Command> = {
  'plans list': {
    usage: 'plans list                    one line per plan: id, name, limits per month, desktop devices, features',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ libraries: { plans } }) => {
        const all = await plans.list();
        all.forEach((plan) => context.io.out(planLine(plan)));
        if (all.length === 0) context.io.err('no plans (import some with `idp import --file F`)');
      });
    },
  },

  'plans set': {
    usage: 'plans set --email E --plan ID  put a user on a plan, at once (audited as plan.changed)',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' }, plan: { type: 'string' } });
      const email = required(values.email, '--email');
      const planId = required(values.plan, '--plan');
      if (!planIdSchema.safeParse(planId).success) throw new UsageError(`--plan: "${planId}" is not a plan id`);
      await withUser(context, email, async ({ libraries: { plans } }, user) => {
        const { before, after, changed } = await plans.setPlan(user.id, planId, { kind: 'administrator' });
        context.io.out(changed ? `${user.email}: plan ${before} -> ${after}` : `${user.email}: already on plan ${after}`);
      });
    },
  },
};

export const USAGE_COMMANDS: Record<string, Command> = {
  'usage show': {
    usage: 'usage show --email E          one line per meter this month: meter, used, limit, period end',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' } });
      const email = required(values.email, '--email');
      await withUser(context, email, async ({ libraries: { plans } }, user) => {
        const meters = await plans.usageOf(user.id);
        for (const meter of meters) {
          context.io.out([meter.meter, `used=${meter.used}`, `limit=${meter.limit}`, `period_end=${date(new Date(meter.period_end))}`].join('  '));
        }
        if (meters.length === 0) context.io.err(`no meters for ${user.email}: their plan limits none and nothing was recorded this month`);
      });
    },
  },
};
