-- Multi-factor authentication (docs/mfa.md): an authenticator app (TOTP) per user, its recovery codes,
-- and passkeys (WebAuthn credentials).
--
-- totp_factors    one row per user who set up an authenticator app. The secret is sealed like client
--                 secrets (AES-256-GCM under the column data key, keystore/src/column-key.ts) with the
--                 user id as its context, so a sealed value copied to another user's row does not open.
--                 enabled_at is null while the set-up waits for its first code (a pending set-up is
--                 replaced by the next one). last_time_step is the 30-second step of the last code
--                 accepted: a code of that step or an earlier one is refused, so a code works once.
-- recovery_codes  ten per user, made when the app is turned on. Only a SHA-256 of each code is kept:
--                 the codes are 80 random bits each, so a hash cannot be reversed, and a code is found by
--                 its hash in one indexed lookup (a salted slow hash would need one check per code).
--                 used_at: spent.
-- passkeys        WebAuthn credentials: the id (base64url), the COSE public key (base64url), the
--                 authenticator's signature counter, the transports it reported, a name the user gave.

CREATE TABLE totp_factors (
  user_id        uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  secret_sealed  text        NOT NULL,
  enabled_at     timestamptz,
  last_time_step integer,
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE recovery_codes (
  user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_hash  text        NOT NULL CHECK (code_hash ~ '^[0-9a-f]{64}$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  used_at    timestamptz,
  PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE passkeys (
  credential_id text        PRIMARY KEY CHECK (credential_id ~ '^[A-Za-z0-9_-]+$' AND length(credential_id) <= 1400),
  user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  public_key    text        NOT NULL,
  counter       bigint      NOT NULL DEFAULT 0 CHECK (counter >= 0),
  transports    jsonb       NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(transports) = 'array'),
  name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- Row-level security as for sessions (0009_row_level_security.sql).
ALTER TABLE totp_factors ENABLE ROW LEVEL SECURITY;
ALTER TABLE recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE passkeys ENABLE ROW LEVEL SECURITY;

CREATE POLICY system_all ON totp_factors TO jobswipe_system USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON totp_factors TO jobswipe_user
  USING (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid)
  WITH CHECK (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid);

CREATE POLICY system_all ON recovery_codes TO jobswipe_system USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON recovery_codes TO jobswipe_user
  USING (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid)
  WITH CHECK (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid);

CREATE POLICY system_all ON passkeys TO jobswipe_system USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON passkeys TO jobswipe_user
  USING (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid)
  WITH CHECK (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid);

-- Factors are checked and changed on the system path (sign-in happens before anyone is a user; every
-- change needs the password or a code, checked there). A user-path query may list its own passkeys
-- (names and last use, never a secret); the sealed TOTP secret and the code hashes are not readable
-- from the user path at all.
GRANT SELECT, INSERT, UPDATE, DELETE ON totp_factors, recovery_codes, passkeys TO jobswipe_system;
GRANT SELECT (credential_id, user_id, name, created_at, last_used_at) ON passkeys TO jobswipe_user;
