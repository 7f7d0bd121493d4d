-- Upstream identity providers (social login, docs/social-login.md) and the identities linked to users.
--
-- upstreams            one row per upstream (Google, GitHub...): configuration from the seed file's
--                      `upstreams` array. The client secret is sealed like client secrets
--                      (AES-256-GCM under the keystore's column key, bound to the upstream's id); the
--                      clear secret is never stored. A catalogue, without owners: the system path only.
-- upstream_identities  an upstream's subject linked to one of our users. A returning user is found by
--                      (upstream_id, subject), never by email.

CREATE TABLE upstreams (
  id                   text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  name                 text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  type                 text        NOT NULL CHECK (type IN ('oidc', 'oauth2')),
  -- issuer and scopes (oidc); endpoints, scopes and the claims mapping (oauth2). No secret in here.
  settings             jsonb       NOT NULL CHECK (jsonb_typeof(settings) = 'object'),
  client_id            text        NOT NULL CHECK (client_id <> ''),
  client_secret_sealed text        NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);

-- An upstream taken out of the seed with users linked to it is refused (RESTRICT): unlink them first.
CREATE TABLE upstream_identities (
  upstream_id text        NOT NULL REFERENCES upstreams (id) ON DELETE RESTRICT,
  subject     text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
  user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- The address the upstream gave when the identity was linked (shown on /account; never used to find it).
  email       text,
  linked_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (upstream_id, subject)
);
-- A user's sign-in methods (/account, and the last-way-in check before an unlink).
CREATE INDEX upstream_identities_user ON upstream_identities (user_id);

-- Row-level security as for sessions (0009_row_level_security.sql): the system role sees every row,
-- a user-path transaction only the rows of jobswipe.user_id. upstreams is a catalogue, without owners.
ALTER TABLE upstream_identities ENABLE ROW LEVEL SECURITY;

CREATE POLICY system_all ON upstream_identities TO jobswipe_system USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON upstream_identities TO jobswipe_user
  USING (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid)
  WITH CHECK (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid);

-- Sign-in links and reads on the system path; a user lists and unlinks their own on /account. The user
-- path reads only what /account shows of an upstream (its name), never its secret.
GRANT SELECT, INSERT, UPDATE, DELETE ON upstreams, upstream_identities TO jobswipe_system;
GRANT SELECT, DELETE ON upstream_identities TO jobswipe_user;
GRANT SELECT (id, name) ON upstreams TO jobswipe_user;
