import type { ColumnType } from 'kysely';

/** jsonb columns: parsed on the way out, written as JSON text. */
type Json<T> = ColumnType<T, string, string>;

/** What an upstream's row keeps besides its id, name, type and client (see settings.ts). */
export interface StoredUpstreamSettings {
  issuer?: string | undefined;
  scopes: string;
  authorization_endpoint?: string | undefined;
  token_endpoint?: string | undefined;
  userinfo_endpoint?: string | undefined;
  emails_endpoint?: string | undefined;
  claims?: { sub: string; email?: string | undefined; email_verified?: string | undefined; name?: string | undefined } | undefined;
}

export interface UpstreamsTable {
  id: string;
  name: string;
  type: 'oidc' | 'oauth2';
  settings: Json<StoredUpstreamSettings>;
  client_id: string;
  client_secret_sealed: string;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface UpstreamIdentitiesTable {
  upstream_id: string;
  subject: string;
  user_id: string;
  email: string | null;
  linked_at: ColumnType<Date, never, never>;
  last_used_at: ColumnType<Date, Date | undefined, Date>;
}

export interface UpstreamTables {
  upstreams: UpstreamsTable;
  upstream_identities: UpstreamIdentitiesTable;
}
