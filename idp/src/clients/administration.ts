import { administratorEvent } from '../audit/administrator.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import { ClientRejected, withGeneratedCredentials, type createClientRegistry, type Metadata } from './registry.ts';

export interface ClientAdministrationDependencies {
  clients: ReturnType<typeof createClientRegistry>;
  recordEvent: RecordEvent;
}

/** What an administrator does to clients (the CLI today, the admin API tomorrow), recorded with who ran it. */
export function createClientAdministration(deps: ClientAdministrationDependencies) {
  return {
    /**
     * Registers a client from the metadata given: a generated client_id and secret where none was
     * given, validated as the provider would serve it. Returns what was stored, secret included (shown
     * once). A refusal is a ClientRejected whose message names the problem.
     */
    async create(given: Record<string, unknown>): Promise<Metadata> {
      const filled = { ...given };
      // A service client (client_credentials only) has no redirects and no authorization responses.
      const grants = filled['grant_types'];
      if (Array.isArray(grants) && grants.length > 0 && grants.every((grant) => grant === 'client_credentials')) {
        filled['redirect_uris'] ??= [];
        filled['response_types'] ??= [];
      }
      const metadata = withGeneratedCredentials(filled);
      await deps.clients.validate(metadata);
      if (await deps.clients.find(metadata.client_id)) throw new ClientRejected(`client ${metadata.client_id} already exists`);
      await deps.clients.save(metadata);
      await deps.recordEvent(administratorEvent('admin.client_created', { clientId: metadata.client_id }));
      return metadata;
    },
  };
}

export type ClientAdministration = ReturnType<typeof createClientAdministration>;
