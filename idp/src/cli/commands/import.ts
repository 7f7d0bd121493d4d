import { readFile } from 'node:fs/promises';
import type { Tables } from '../../store.ts';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { lazyCipher } from '../../clients/secrets.ts';
import { canonicalJson, createClientRegistry, needsSecret, withGeneratedCredentials, type Metadata } from '../../clients/registry.ts';
import { checkAccount, createAccounts, type NewAccount } from '../../users/accounts.ts';
import { createQueries } from '../../composition.ts';
import { planIdSchema } from '../../plans/schemas.ts';
import { checkPlan, planOfRow } from '../../plans/service.ts';
import { checkUpstream } from '../../upstreams/settings.ts';
import { saveUpstream, UpstreamRejected } from '../../upstreams/service.ts';
import type { AuditEvent } from '../../audit/events.ts';
import type { CliContext } from '../context.ts';
import { administratorEvent } from '../../audit/administrator.ts';
import { CommandError, UsageError } from '../errors.ts';

const seedSchema = z.strictObject({
  // Checked one by one (checkUpstream), for its messages; secrets are sealed like client secrets.
  upstreams: z.array(z.unknown()).default([]),
  // Checked one by one with the plans library's own rules (checkPlan), for its messages.
  plans: z.array(z.unknown()).default([]),
  clients: z
    .array(z.looseObject({ client_id: z.string().min(1, 'client_id is required'), client_secret: z.string().min(1).optional() }))
    .default([]),
  users: z
    .array(
      z.strictObject({
        email: z.string(),
        name: z.string().max(200).default(''),
        password: z.string().optional(),
        password_hash: z.string().optional(),
        email_verified: z.boolean().default(false),
        plan: planIdSchema.optional(),
      }),
    )
    .default([]),
});

function describeIssue(issue: z.core.$ZodIssue): string {
  return `${issue.path.length ? issue.path.join('.') : 'seed'}: ${issue.message}`;
}

/**
 * Creates or updates the seed's clients and users. Everything is validated before anything is
 * written, and the writes share one transaction, so a bad file changes nothing.
 */
export async function importSeed(context: CliContext, file: string): Promise<void> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `${file}: no such file` : `${file}: not valid JSON`);
  }
  const parsed = seedSchema.safeParse(raw);
  if (!parsed.success) throw new CommandError(`${file}: ${parsed.error.issues.map(describeIssue).join('; ')}`);
  const seed = parsed.data;

  const ids = seed.clients.map((client) => client.client_id);
  const duplicateClient = ids.find((id, index) => ids.indexOf(id) !== index);
  if (duplicateClient) throw new CommandError(`${file}: client ${duplicateClient} appears twice`);
  const emails = seed.users.map((user) => user.email.toLowerCase());
  const duplicateUser = emails.find((email, index) => emails.indexOf(email) !== index);
  if (duplicateUser) throw new CommandError(`${file}: user ${duplicateUser} appears twice`);

  const plans = seed.plans.map((plan, index) => {
    try {
      return checkPlan(plan);
    } catch (error) {
      throw new CommandError(`${file}: plans.${index}.${(error as Error).message}`);
    }
  });
  const planIds = plans.map((plan) => plan.id);
  const duplicatePlan = planIds.find((id, index) => planIds.indexOf(id) !== index);
  if (duplicatePlan) throw new CommandError(`${file}: plan ${duplicatePlan} appears twice`);

  const upstreams = seed.upstreams.map((upstream, index) => {
    try {
      return checkUpstream(upstream);
    } catch (error) {
      throw new CommandError(`${file}: upstreams.${index}.${(error as Error).message}`);
    }
  });
  const upstreamIds = upstreams.map((upstream) => upstream.id);
  const duplicateUpstream = upstreamIds.find((id, index) => upstreamIds.indexOf(id) !== index);
  if (duplicateUpstream) throw new CommandError(`${file}: upstream ${duplicateUpstream} appears twice`);

  const accounts: NewAccount[] = seed.users.map((user) => ({
    email: user.email,
    name: user.name,
    emailVerified: user.email_verified,
    password: user.password,
    passwordHash: user.password_hash,
  }));

  await context.withStore(async ({ libraries: { clients, hasher, recordEvent }, database, secrets }) => {
    // A secret-based client without a client_secret keeps its stored secret, or gets a generated
    // one (printed once), as `clients create` does; without one the provider refuses the client.
    const generated: Metadata[] = [];
    const wanted: Metadata[] = [];
    for (const client of seed.clients as Metadata[]) {
      let metadata = client;
      if (needsSecret(client) && client['client_secret'] === undefined) {
        const stored = (await clients.find(client.client_id))?.['client_secret'];
        metadata = typeof stored === 'string' ? { ...client, client_secret: stored } : withGeneratedCredentials(client);
        if (typeof stored !== 'string') generated.push(metadata);
      }
      await clients.validate(metadata);
      wanted.push(metadata);
    }
    for (const account of accounts) checkAccount(account);

    // Opened before the transaction: the embedded store has one connection, which the transaction holds.
    // Comparing and saving clients may open or seal secrets; a seed of users only never needs the key.
    const cipher = wanted.length > 0 || upstreams.length > 0 ? await secrets() : lazyCipher(secrets);
    const counts = { plans: 0, clients: 0, users: 0, upstreams: 0, changed: 0 };
    const events: AuditEvent[] = [];
    await database.db.transaction().execute(async (transaction) => {
      // Kysely types a transaction over all tables as unrelated to a Kysely over some of them.
      const trx = transaction as unknown as Kysely<Tables>;
      // Every client was validated above; inside the transaction only writes remain.
      const registry = createClientRegistry(trx, async () => {}, cipher);
      for (const client of wanted) {
        const existing = await registry.find(client.client_id);
        if (!existing) counts.clients += 1;
        else if (canonicalJson(existing) !== canonicalJson(client)) counts.changed += 1;
        else continue;
        await registry.save(client);
      }
      const { users, plans: planQueries, upstreams: upstreamQueries } = createQueries(trx);
      for (const upstream of upstreams) {
        let saved: Awaited<ReturnType<typeof saveUpstream>>;
        try {
          saved = await saveUpstream(upstreamQueries, cipher, upstream);
        } catch (error) {
          if (error instanceof UpstreamRejected) throw new CommandError(`${file}: ${error.message}`);
          throw error;
        }
        if (saved === 'created') counts.upstreams += 1;
        if (saved === 'changed') counts.changed += 1;
        if (saved !== 'unchanged') events.push(administratorEvent('admin.upstream_saved', { details: { upstream: upstream.id, change: saved } }));
      }
      // Plans first: the users below may name them.
      for (const plan of plans) {
        const { before } = await planQueries.upsert(plan);
        if (before && JSON.stringify(planOfRow(before)) === JSON.stringify(plan)) continue;
        if (before) counts.changed += 1;
        else counts.plans += 1;
        events.push(administratorEvent('plan.saved', { details: { plan: plan.id, change: before ? 'changed' : 'created' } }));
      }
      const writer = createAccounts(users, hasher);
      for (const [index, account] of accounts.entries()) {
        const existing = await users.findByEmail(account.email);
        let userId = existing?.id;
        let changed = false;
        if (!existing) {
          userId = (await writer.create(account)).id;
          counts.users += 1;
        } else {
          changed = await writer.reconcile(existing, account);
        }
        const planId = seed.users[index]?.plan;
        if (planId !== undefined && userId !== undefined) {
          if (!(await planQueries.find(planId))) throw new CommandError(`${file}: user ${account.email}: no plan "${planId}" in the file or the store`);
          const before = await planQueries.planOfUser(userId, context.config.defaultPlan);
          const subscribedBefore = await planQueries.subscribe(userId, planId);
          if (subscribedBefore !== planId) {
            if (existing) changed = true;
            events.push(administratorEvent('plan.changed', { userId, details: { from: before?.plan?.id ?? context.config.defaultPlan, to: planId } }));
          }
        }
        if (changed) counts.changed += 1;
      }
    });
    for (const client of generated) context.io.out(`client ${client.client_id}: client_secret: ${String(client['client_secret'])}`);
    if (generated.length > 0) context.io.out('Generated secrets are shown only this once: store them now.');
    // A seed with plans says how many were new; the summary of one without stays as it always was.
    const planCount = seed.plans.length > 0 ? `${counts.plans} plans, ` : '';
    const upstreamCount = seed.upstreams.length > 0 ? `${counts.upstreams} upstreams, ` : '';
    context.io.out(`${upstreamCount}${planCount}${counts.clients} clients, ${counts.users} users imported, ${counts.changed} changed`);
    for (const event of events) await recordEvent(event);
    await recordEvent(administratorEvent('admin.import', { details: { plans: counts.plans, clients: counts.clients, users: counts.users, ...(seed.upstreams.length > 0 ? { upstreams: counts.upstreams } : {}), changed: counts.changed } }));
  }, { migrate: true });
}
