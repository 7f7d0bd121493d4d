import { randomBytes, randomUUID } from 'node:crypto';
import { clientCacheOf, createOidcAdapter, type OidcTables, type ValueCipher } from '@jobswipe/adapters';
import { sql, type Kysely } from 'kysely';
import type { ClientMetadata } from 'oidc-provider';
import { ACCOUNT_CLIENT_ID } from './account-client.ts';

export type Metadata = Record<string, unknown> & { client_id: string };

/** Client metadata is checked by the provider's own validation, so the CLI accepts exactly what the provider serves. */
export type ValidateClient = (metadata: Metadata) => Promise<void>;

export class ClientRejected extends Error {
  readonly code: string = 'ERR_CLIENT_REJECTED';
}

const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'client_secret_jwt']);

export function needsSecret(metadata: Record<string, unknown>): boolean {
  const method = metadata['token_endpoint_auth_method'] ?? 'client_secret_basic';
  return SECRET_METHODS.has(String(method));
}

/** Fills in a generated client_id and (for secret-based authentication) a generated secret. */
export function withGeneratedCredentials(metadata: Record<string, unknown>): Metadata {
  const filled: Record<string, unknown> = { ...metadata };
  if (typeof filled['client_id'] !== 'string' || filled['client_id'] === '') filled['client_id'] = randomUUID();
  if (needsSecret(filled) && filled['client_secret'] === undefined) {
    filled['client_secret'] = randomBytes(32).toString('base64url');
  }
  return filled as Metadata;
}

/** Stable JSON: equal metadata compares equal whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A disabled client's row keeps its metadata under this model: the provider, which looks up `Client`, no longer finds it. */
export const DISABLED_CLIENT_MODEL = 'DisabledClient';

/** A client as an administrator sees it: its metadata without any secret, and whether it is disabled. */
export type StoredClient = Metadata & { disabled: boolean };

function withoutSecret(payload: unknown, model: string): StoredClient {
  const { client_secret_sealed: _sealed, client_secret: _secret, ...metadata } = payload as Metadata;
  return { ...(metadata as Metadata), disabled: model === DISABLED_CLIENT_MODEL };
}

export function createClientRegistry(db: Kysely<OidcTables>, validate: ValidateClient, secrets: ValueCipher) {
  const clients = new (createOidcAdapter(db, { secrets }))('Client');
  const rows = () => db.selectFrom('oidc_models').select(['id', 'payload']).where('model', '=', 'Client').orderBy('id');
  return {
    async validate(metadata: Metadata): Promise<void> {
      if (metadata.client_id === ACCOUNT_CLIENT_ID) {
        throw new ClientRejected(`client ${ACCOUNT_CLIENT_ID}: this client_id is reserved for the provider's account pages`);
      }
      try {
        await validate(metadata as ClientMetadata & Metadata);
      } catch (error) {
        const { error: code, error_description: description } = error as { error?: string; error_description?: string };
        throw new ClientRejected(`client ${metadata.client_id}: ${description ?? code ?? (error as Error).message}`);
      }
    },
    async find(clientId: string): Promise<Metadata | undefined> {
      return (await clients.find(clientId)) as Metadata | undefined;
    },
    async save(metadata: Metadata): Promise<void> {
      await clients.upsert(metadata.client_id, metadata, 0);
    },
    /** Every client's metadata, without its secret. */
    async list(): Promise<Metadata[]> {
      return (await rows().execute()).map((row) => {
        const { client_secret_sealed: _sealed, client_secret: _secret, ...metadata } = row.payload as Metadata;
        return metadata as Metadata;
      });
    },
    /** A client, enabled or disabled, without its secret. */
    async stored(clientId: string): Promise<StoredClient | undefined> {
      if (clientId.includes('\u0000')) return undefined;
      const row = await db
        .selectFrom('oidc_models')
        .select(['model', 'payload'])
        .where('model', 'in', ['Client', DISABLED_CLIENT_MODEL])
        .where('id', '=', clientId)
        .executeTakeFirst();
      return row ? withoutSecret(row.payload, row.model) : undefined;
    },
    /** One page of clients, enabled and disabled, by client_id: up to `limit` after `after`. */
    async page(options: { after?: string | undefined; limit: number }): Promise<StoredClient[]> {
      let query = db
        .selectFrom('oidc_models')
        .select(['model', 'payload'])
        .where('model', 'in', ['Client', DISABLED_CLIENT_MODEL])
        .orderBy('id')
        .limit(options.limit);
      if (options.after !== undefined) query = query.where('id', '>', options.after);
      return (await query.execute()).map((row) => withoutSecret(row.payload, row.model));
    },
    /**
     * Moves an enabled client's row aside (sealed secret and all): the provider stops finding it, and
     * every process forgets its cached copy. Returns false when there is no enabled client by that id.
     */
    async disable(clientId: string): Promise<boolean> {
      const moved = await db.transaction().execute(async (trx) => {
        const removed = await trx.deleteFrom('oidc_models').where('model', '=', 'Client').where('id', '=', clientId).returning(['payload']).executeTakeFirst();
        if (!removed) return false;
        await trx
          .insertInto('oidc_models')
          .values({ model: DISABLED_CLIENT_MODEL, id: clientId, payload: JSON.stringify(removed.payload), expires_at: null, consumed_at: null })
          .onConflict((conflict) => conflict.columns(['model', 'id']).doUpdateSet({ payload: JSON.stringify(removed.payload) }))
          .execute();
        return true;
      });
      if (moved) clientCacheOf(db).changed(clientId);
      return moved;
    },
    /** The ids of the grants users gave a client (the oidc_models_grant_client index). */
    async grantIdsOf(clientId: string): Promise<string[]> {
      const rows = await db
        .selectFrom('oidc_models')
        .select('id')
        .where('model', '=', 'Grant')
        .where(sql<string>`payload ->> 'clientId'`, '=', clientId)
        .execute();
      return rows.map((row) => row.id);
    },
    /**
     * Seals secrets still stored in the clear (written before secrets were sealed) under the
     * configured key; returns how many it sealed.
     */
    async sealStored(): Promise<number> {
      const plain = await rows().where(sql<boolean>`payload ->> 'client_secret' is not null`).execute();
      for (const row of plain) await clients.upsert(row.id, row.payload as Metadata, 0);
      return plain.length;
    },
  };
}

export type ClientRegistry = ReturnType<typeof createClientRegistry>;
