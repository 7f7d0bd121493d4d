import { randomBytes } from 'node:crypto';
import type { Adapter } from 'oidc-provider';
import { actorEvent, ADMINISTRATOR, type Actor } from '../audit/administrator.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import { revokeGrant } from '../sessions/revoke-grant.ts';
import { ClientRejected, needsSecret, withGeneratedCredentials, type createClientRegistry, type Metadata, type StoredClient } from './registry.ts';

export interface ClientAdministrationDependencies {
  clients: ReturnType<typeof createClientRegistry>;
  /** The provider's storage adapter: a disabled client's grants and their tokens are revoked through it. */
  adapter: new (name: string) => Adapter;
  recordEvent: RecordEvent;
}

/** No client has this client_id (the admin API answers 404). */
export class UnknownClient extends ClientRejected {
  override readonly code = 'ERR_UNKNOWN_CLIENT';
}

/** The client exists but is in no state for this change: taken id, disabled, no secret (the admin API answers 409). */
export class ClientConflict extends ClientRejected {
  override readonly code = 'ERR_CLIENT_CONFLICT';
}

/** What an administrator may change on a registered client (PATCH /admin/api/clients/{client_id}). */
export interface ClientChanges {
  client_name?: string | undefined;
  redirect_uris?: string[] | undefined;
  post_logout_redirect_uris?: string[] | undefined;
  /** null removes it. */
  backchannel_logout_uri?: string | null | undefined;
  scope?: string | undefined;
}

const newSecret = () => randomBytes(32).toString('base64url');

/** What an administrator does to clients, from the CLI or the admin API, recorded with who ran it. */
export function createClientAdministration(deps: ClientAdministrationDependencies) {
  /** The enabled client with its secret; UnknownClient when there is none, ClientConflict when it is disabled. */
  async function enabled(clientId: string): Promise<Metadata> {
    const found = await deps.clients.find(clientId);
    if (found) return found;
    if (await deps.clients.stored(clientId)) throw new ClientConflict(`client ${clientId} is disabled`);
    throw new UnknownClient(`no client ${clientId}`);
  }

  return {
    /**
     * Registers a client from the metadata given: a generated client_id and secret where none was
     * given, validated as the provider would serve it. Returns what was stored, secret included (shown
     * once). A refusal is a ClientRejected whose message names the problem.
     */
    async create(given: Record<string, unknown>, actor: Actor = ADMINISTRATOR): Promise<Metadata> {
      const filled = { ...given };
      // A service client (client_credentials only) has no redirects and no authorization responses.
      const grants = filled['grant_types'];
      if (Array.isArray(grants) && grants.length > 0 && grants.every((grant) => grant === 'client_credentials')) {
        filled['redirect_uris'] ??= [];
        filled['response_types'] ??= [];
      }
      const metadata = withGeneratedCredentials(filled);
      await deps.clients.validate(metadata);
      // A disabled client keeps its id: reusing it would hand its history to someone else.
      if (await deps.clients.stored(metadata.client_id)) throw new ClientConflict(`client ${metadata.client_id} already exists`);
      await deps.clients.save(metadata);
      await deps.recordEvent(actorEvent(actor, 'admin.client_created', { clientId: metadata.client_id }));
      return metadata;
    },

    /** One page of clients, enabled and disabled, by client_id, never with their secrets. */
    page(options: { after?: string | undefined; limit: number }): Promise<StoredClient[]> {
      return deps.clients.page(options);
    },

    /** A client, enabled or disabled, never with its secret. */
    async find(clientId: string): Promise<StoredClient> {
      const found = await deps.clients.stored(clientId);
      if (!found) throw new UnknownClient(`no client ${clientId}`);
      return found;
    },

    /** Changes the redirect and logout URIs, name or scopes, validated as the provider would serve the result. */
    async update(clientId: string, changes: ClientChanges, actor: Actor = ADMINISTRATOR): Promise<StoredClient> {
      const current = await enabled(clientId);
      const next: Metadata = { ...current };
      for (const [field, value] of Object.entries(changes)) {
        if (value === undefined) continue;
        if (value === null) delete next[field];
        else next[field] = value;
      }
      await deps.clients.validate(next);
      await deps.clients.save(next);
      const fields = Object.keys(changes).filter((field) => changes[field as keyof ClientChanges] !== undefined).sort();
      await deps.recordEvent(actorEvent(actor, 'admin.client_updated', { clientId, details: { fields: fields.join(' ') } }));
      return deps.clients.stored(clientId) as Promise<StoredClient>;
    },

    /** A new secret, returned once; the old one stops working on every server at once. */
    async rotateSecret(clientId: string, actor: Actor = ADMINISTRATOR): Promise<string> {
      const current = await enabled(clientId);
      if (!needsSecret(current)) throw new ClientConflict(`client ${clientId} authenticates with ${String(current['token_endpoint_auth_method'])}, not a client secret`);
      const secret = newSecret();
      await deps.clients.save({ ...current, client_secret: secret });
      await deps.recordEvent(actorEvent(actor, 'admin.client_secret_rotated', { clientId }));
      return secret;
    },

    /**
     * Disables a client: the provider no longer knows it (no sign-in, no token, no refresh), and every
     * grant users gave it is revoked with its tokens. The metadata stays, so the id is never reused.
     */
    async disable(clientId: string, actor: Actor = ADMINISTRATOR): Promise<{ grantsRevoked: number }> {
      await enabled(clientId);
      if (!(await deps.clients.disable(clientId))) throw new ClientConflict(`client ${clientId} is disabled`);
      const grants = await deps.clients.grantIdsOf(clientId);
      for (const grantId of grants) await revokeGrant(deps.adapter, grantId);
      await deps.recordEvent(actorEvent(actor, 'admin.client_disabled', { clientId, details: { grants: grants.length } }));
      return { grantsRevoked: grants.length };
    },
  };
}

export type ClientAdministration = ReturnType<typeof createClientAdministration>;
