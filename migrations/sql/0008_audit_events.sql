-- The audit log: one row per authentication event, appended and never changed (docs/audit.md).
-- Rows form a hash chain: `hash` is SHA-256 over `prev_hash` and a canonical encoding of the row
-- (its id and time included), so a changed row no longer matches its hash or its successor's
-- `prev_hash`. Ids are assigned by the writer as the previous id + 1 while it holds the chain's
-- advisory lock (no sequence), so a deleted row leaves a gap that `idp audit verify` names.
-- The primary key and the unique prev_hash make a fork impossible even for a writer without the lock.
-- Rows name users by uuid only (no foreign key: the rows outlive the account), never by email.
CREATE TABLE audit_events (
  id          bigint      PRIMARY KEY CHECK (id > 0),
  occurred_at timestamptz NOT NULL,
  event_type  text        NOT NULL CHECK (event_type ~ '^[a-z_]+(\.[a-z_]+)+$'),
  outcome     text        NOT NULL CHECK (outcome IN ('success', 'failure')),
  user_id     uuid,
  client_id   text,
  session_id  text,
  ip          text,
  user_agent  text,
  details     jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
  prev_hash   text        NOT NULL UNIQUE CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash        text        NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$')
);

-- Lookups: the chain and `audit tail` walk the primary key; a user's history goes through this index.
CREATE INDEX audit_events_user ON audit_events (user_id, id) WHERE user_id IS NOT NULL;

-- Defence in depth: the server's role has no UPDATE, DELETE or TRUNCATE right on the table, and
-- even the owner is refused them unless it first disables these triggers.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

GRANT SELECT, INSERT ON audit_events TO jobswipe_system;
