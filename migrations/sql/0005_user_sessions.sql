-- Grants (and the tokens under them) are looked up by the account they belong to: /account's
-- connected apps, an app's revocation, an administrator's revoke-all.
ALTER TABLE oidc_models ADD COLUMN account_id text GENERATED ALWAYS AS (payload ->> 'accountId') STORED;
CREATE INDEX oidc_models_account_id ON oidc_models (model, account_id) WHERE account_id IS NOT NULL;

-- What a user sees of each browser session: the provider's Session object (Redis, or oidc_models
-- without Redis) is the truth about whether it is alive; this row is how it is listed and described.
CREATE TABLE user_sessions (
  session_uid  text        PRIMARY KEY,
  user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  started_at   timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  -- "Chrome on macOS", derived from the user agent when the row is written.
  device       text        NOT NULL,
  user_agent   text        NOT NULL,
  ip           text        NOT NULL,
  ended_at     timestamptz,
  end_reason   text
);

CREATE INDEX user_sessions_active ON user_sessions (user_id, last_seen_at DESC) WHERE ended_at IS NULL;
-- The sweeper deletes rows of sessions that ended or expired long ago.
CREATE INDEX user_sessions_expires_at ON user_sessions (expires_at);
