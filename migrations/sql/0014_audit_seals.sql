-- The audit log's hash chain leaves the request path (docs/audit.md, "The chain").
--
-- Before: every writer took a cluster-wide advisory lock, read the last row and inserted id + 1 with
-- its prev_hash and hash, one event at a time across all processes.
-- Now: writers insert events with an id from a sequence, no lock and no hash. A sealer (one at a time,
-- any process, chosen by pg_try_advisory_xact_lock) chains the committed events shortly after, in
-- event-id order, into audit_seals: chain position `seq` 1, 2, 3... with no gaps, each seal naming one
-- event. A seal's hash = SHA-256(prev_hash, canonical encoding of its event, the event's id included),
-- the same function as before, so the existing chain becomes the first seals unchanged (seq = event id).
--
-- Finding what to seal without scanning the table: each event records the transaction that inserted it
-- (`tx`, set by a trigger, so no writer can choose it), and the last seal of every pass that sealed all
-- it could see records that pass's snapshot (`horizon`). Every event committed before the horizon is
-- sealed; an event still unsealed belongs to a transaction in the horizon's in-progress list or to a
-- later one (tx >= its xmax): an index lookup on `tx`. A late commit (a low id committing after higher
-- ids were sealed) is such an event and is sealed by the next pass.

CREATE SEQUENCE audit_events_id_seq AS bigint OWNED BY audit_events.id;
SELECT setval('audit_events_id_seq', coalesce((SELECT max(id) FROM audit_events), 0) + 1, false);
ALTER TABLE audit_events ALTER COLUMN id SET DEFAULT nextval('audit_events_id_seq');

ALTER TABLE audit_events ADD COLUMN tx xid8;
CREATE FUNCTION audit_events_stamp_tx() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.tx := pg_current_xact_id();
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_events_stamp_tx BEFORE INSERT ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_stamp_tx();
CREATE INDEX audit_events_tx ON audit_events (tx);

CREATE TABLE audit_seals (
  seq        bigint      PRIMARY KEY CHECK (seq > 0),
  event_id   bigint      NOT NULL UNIQUE,
  prev_hash  text        NOT NULL UNIQUE CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash       text        NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$'),
  sealed_at  timestamptz NOT NULL DEFAULT now(),
  -- On the last seal of a pass that sealed every event its snapshot showed: that snapshot.
  horizon    pg_snapshot
);
CREATE INDEX audit_seals_horizon ON audit_seals (seq) WHERE horizon IS NOT NULL;

-- The existing chain, as it is (a changed or missing row stays visible to `idp audit verify`). The
-- table is locked by the ALTERs above, so every event is committed and visible here: the snapshot
-- of this statement is a valid horizon.
INSERT INTO audit_seals (seq, event_id, prev_hash, hash, sealed_at, horizon)
SELECT id, id, prev_hash, hash, occurred_at, CASE WHEN id = max(id) OVER () THEN pg_current_snapshot() END
FROM audit_events
ORDER BY id;

ALTER TABLE audit_events DROP COLUMN prev_hash, DROP COLUMN hash;

-- Append-only, like audit_events: no UPDATE, DELETE or TRUNCATE, even for the owner with the triggers on.
CREATE FUNCTION audit_seals_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_seals is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON audit_seals
  FOR EACH ROW EXECUTE FUNCTION audit_seals_append_only();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals
  FOR EACH STATEMENT EXECUTE FUNCTION audit_seals_append_only();

-- The server's role inserts and reads, nothing else. Like audit_events, audit_seals has no row-level
-- security (0009_row_level_security.sql): its rows belong to no user, and jobswipe_user has no right on
-- either table.
GRANT SELECT, INSERT ON audit_seals TO jobswipe_system;
GRANT USAGE ON SEQUENCE audit_events_id_seq TO jobswipe_system;
