import type { ValueCipher } from '@jobswipe/adapters';
import type { Kysely } from 'kysely';
import { canonicalJson } from '../clients/registry.ts';
import { emailSchema, nameSchema } from '../users/accounts.ts';
import { createUserQueries, isAddressTaken, type User, type UserQueries } from '../users/queries.ts';
import type { UserTables } from '../users/tables.ts';
import { createUpstreamQueries, type LinkedMethod, type UnlinkOutcome, type UpstreamQueries, type UpstreamRow } from './queries.ts';
import { storedSettingsOf, type Upstream, type UpstreamEntry } from './settings.ts';
import type { UpstreamTables } from './tables.ts';

/** Where an upstream's sealed secret is bound: a sealed secret copied to another upstream does not open. */
export const upstreamSecretContext = (upstreamId: string) => `upstream_secret:${upstreamId}`;

/** Who the upstream says signed in, after its answer was validated (client.ts). */
export interface UpstreamIdentity {
  upstreamId: string;
  subject: string;
  email: string | undefined;
  /** Only when the upstream asserts it. */
  emailVerified: boolean;
  name: string;
}

/**
 * What a validated upstream identity leads to:
 * - `linked`: the identity is linked to this user (found by upstream and subject, never by email);
 * - `link_needed`: its email belongs to an account it is not linked to: linking needs that account's password;
 * - `new`: nobody has its email (or it gave none): a first sign-in, which may create the user.
 */
export type SignInDecision = { kind: 'linked'; user: User } | { kind: 'link_needed'; user: User } | { kind: 'new' };

/** The upstream as the login page and the CLI show it: never its secret. */
export interface UpstreamSummary {
  id: string;
  name: string;
  type: 'oidc' | 'oauth2';
  clientId: string;
  /** The issuer (oidc) or the authorization endpoint (oauth2). */
  location: string;
  scopes: string;
}

export class UpstreamRejected extends Error {
  readonly code = 'ERR_UPSTREAM_REJECTED';
}

interface UpstreamServiceDependencies {
  db: Kysely<UpstreamTables & UserTables>;
  queries: UpstreamQueries;
  users: UserQueries;
  secrets: ValueCipher;
}

function summaryOf(row: UpstreamRow): UpstreamSummary {
  return {
    id: row.id,
    name: row.name,
    type: row.type,
    clientId: row.client_id,
    location: row.settings.issuer ?? row.settings.authorization_endpoint ?? '',
    scopes: row.settings.scopes,
  };
}

/** Seals an entry's secret (or keeps the stored one) and writes it; returns whether it was new or changed. */
export async function saveUpstream(queries: UpstreamQueries, secrets: ValueCipher, entry: UpstreamEntry): Promise<'created' | 'changed' | 'unchanged'> {
  const stored = await queries.find(entry.id);
  if (!stored && entry.client_secret === undefined) throw new UpstreamRejected(`upstream ${entry.id}: client_secret is required`);
  const settings = storedSettingsOf(entry);
  const secretUnchanged = entry.client_secret === undefined || (stored !== undefined && (await secrets.open(stored.client_secret_sealed, upstreamSecretContext(entry.id))) === entry.client_secret);
  if (
    stored &&
    secretUnchanged &&
    stored.name === entry.name &&
    stored.type === entry.type &&
    stored.client_id === entry.client_id &&
    // jsonb keeps its own key order: compared canonically.
    canonicalJson(stored.settings) === canonicalJson(settings)
  ) {
    return 'unchanged';
  }
  const sealed = entry.client_secret === undefined ? stored!.client_secret_sealed : await secrets.seal(entry.client_secret, upstreamSecretContext(entry.id));
  const { before } = await queries.upsert({ id: entry.id, name: entry.name, type: entry.type, settings, clientId: entry.client_id, clientSecretSealed: sealed });
  return before ? 'changed' : 'created';
}

/** The upstreams and the identities linked through them: the rules the sign-in pages, /account and the CLI share. */
export function createUpstreamService(deps: UpstreamServiceDependencies) {
  const { queries } = deps;
  return {
    async list(): Promise<UpstreamSummary[]> {
      return (await queries.list()).map(summaryOf);
    },

    /** Creates or changes one upstream from a checked seed entry (import.ts does the same inside its transaction). */
    async save(entry: UpstreamEntry): Promise<'created' | 'changed' | 'unchanged'> {
      return saveUpstream(queries, deps.secrets, entry);
    },

    /** An upstream as pages show it (its name), without opening its secret. */
    async summary(id: string): Promise<UpstreamSummary | undefined> {
      const row = await queries.find(id);
      return row ? summaryOf(row) : undefined;
    },

    /** An upstream with its secret opened, to talk to it; undefined for an unknown id. */
    async find(id: string): Promise<Upstream | undefined> {
      const row = await queries.find(id);
      if (!row) return undefined;
      return {
        id: row.id,
        name: row.name,
        type: row.type,
        settings: row.settings,
        clientId: row.client_id,
        clientSecret: await deps.secrets.open(row.client_secret_sealed, upstreamSecretContext(row.id)),
      };
    },

    async decide(identity: UpstreamIdentity): Promise<SignInDecision> {
      const linked = await queries.useIdentity(identity.upstreamId, identity.subject);
      if (linked) {
        const user = await deps.users.findById(linked.user_id);
        if (user) return { kind: 'linked', user };
      }
      const owner = identity.email ? await deps.users.findByEmail(identity.email) : undefined;
      return owner ? { kind: 'link_needed', user: owner } : { kind: 'new' };
    },

    /**
     * A first sign-in: the user (name and email from the upstream; verified only if it says so) and
     * the link, in one transaction. An address taken meanwhile is a link to prove instead.
     */
    async createUser(identity: UpstreamIdentity): Promise<{ created: User } | { taken: User }> {
      const email = emailSchema.safeParse(identity.email);
      if (!email.success) throw new UpstreamRejected('the upstream gave no usable email address');
      const name = nameSchema.safeParse(identity.name.slice(0, 200));
      try {
        const created = await deps.db.transaction().execute(async (transaction) => {
          // Kysely types a transaction over all tables as unrelated to a Kysely over some of them.
          const trx = transaction as unknown as Kysely<UpstreamTables & UserTables>;
          const user = await createUserQueries(trx).insert({ email: email.data, name: name.success ? name.data : '', passwordHash: null, emailVerified: identity.emailVerified });
          await createUpstreamQueries(trx).link({ upstreamId: identity.upstreamId, subject: identity.subject, userId: user.id, email: email.data });
          return user;
        });
        return { created };
      } catch (error) {
        if (!isAddressTaken(error)) throw error;
        const owner = await deps.users.findByEmail(email.data);
        if (!owner) throw error;
        return { taken: owner };
      }
    },

    /**
     * Links an identity to a user who proved the account is theirs (its password). An upstream that
     * asserts the same address verified verifies it here too.
     */
    async link(identity: UpstreamIdentity, user: User): Promise<boolean> {
      const linked = await queries.link({ upstreamId: identity.upstreamId, subject: identity.subject, userId: user.id, email: identity.email ?? null });
      if (linked && identity.emailVerified && !user.email_verified && identity.email?.toLowerCase() === user.email.toLowerCase()) {
        await deps.users.update(user.id, { emailVerified: true });
      }
      return linked;
    },

    async methodsOf(userId: string): Promise<LinkedMethod[]> {
      return queries.methodsOf(userId);
    },

    async unlink(userId: string, upstreamId: string): Promise<UnlinkOutcome> {
      return queries.unlink(userId, upstreamId);
    },
  };
}

export type UpstreamService = ReturnType<typeof createUpstreamService>;
