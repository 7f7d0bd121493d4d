-- Plans, the plan each user is on, and metered usage (docs/usage.md).
--
-- plans           the catalogue: per-period limits by meter, desktop devices, features. Read by everyone
--                 who can sign in (it is not personal data), written by administrators.
-- subscriptions   the plan of a user; a user without a row is on DEFAULT_PLAN (config).
-- usage_counters  the roll-up: one row per user, meter and period (calendar month, UTC). The limit check
--                 reads and moves only this row, in one conditional upsert; rows are kept for good.
-- usage_events    one row per recorded usage, which is also the idempotency record of
--                 (client_id, idempotency_key) and holds the answer a retry gets again. Events are
--                 rolled up into usage_counters as they are recorded and kept for the current and the
--                 previous period only (the sweeper deletes older ones), so the table stays bounded
--                 however many events a month brings; see docs/usage.md for why not partitions.

CREATE TABLE plans (
  id              text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  -- {"applications": 500}: a meter's limit per period; a meter a plan does not name has limit 0.
  limits          jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(limits) = 'object'),
  desktop_devices integer     NOT NULL CHECK (desktop_devices >= 0),
  features        jsonb       NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(features) = 'array'),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

INSERT INTO plans (id, name, limits, desktop_devices, features)
VALUES ('free', 'Free', '{"applications": 20}', 1, '[]')
ON CONFLICT (id) DO NOTHING;

-- A plan that users are on cannot be deleted (RESTRICT): move them first.
CREATE TABLE subscriptions (
  user_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  plan_id    text        NOT NULL REFERENCES plans (id) ON DELETE RESTRICT,
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Who is on a plan (an administrator's question, and the RESTRICT check above).
CREATE INDEX subscriptions_plan ON subscriptions (plan_id);

CREATE TABLE usage_counters (
  user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  meter        text        NOT NULL CHECK (meter ~ '^[a-z][a-z0-9_]{0,63}$'),
  -- The first instant of the period (a calendar month in UTC).
  period_start timestamptz NOT NULL CHECK (period_start = date_trunc('month', period_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
  used         integer     NOT NULL CHECK (used >= 0),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  -- The limit check's row, and a user's usage of a period (user_id, then period_start via the key).
  PRIMARY KEY (user_id, period_start, meter)
);

CREATE TABLE usage_events (
  client_id       text        NOT NULL,
  idempotency_key text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
  user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  meter           text        NOT NULL,
  quantity        integer     NOT NULL CHECK (quantity > 0),
  period_start    timestamptz NOT NULL,
  -- The answer the first request got: the counter after it, and the limit it was checked against.
  used_after      integer     NOT NULL,
  limit_at        integer     NOT NULL,
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  -- Idempotency: a second insert of the same key waits for the first transaction, then conflicts.
  PRIMARY KEY (client_id, idempotency_key)
);
-- A user's events of a period (their history, personal data); the sweeper deletes by period.
CREATE INDEX usage_events_user ON usage_events (user_id, period_start, meter);
CREATE INDEX usage_events_period ON usage_events (period_start);

-- Row-level security as for sessions (0009_row_level_security.sql): the system role sees every row,
-- a user-path transaction only the rows of jobswipe.user_id. plans is a catalogue, without owners.
ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_events ENABLE ROW LEVEL SECURITY;

CREATE POLICY system_all ON subscriptions TO jobswipe_system USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON subscriptions TO jobswipe_user
  USING (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid)
  WITH CHECK (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid);

CREATE POLICY system_all ON usage_counters TO jobswipe_system USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON usage_counters TO jobswipe_user
  USING (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid)
  WITH CHECK (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid);

CREATE POLICY system_all ON usage_events TO jobswipe_system USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON usage_events TO jobswipe_user
  USING (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid)
  WITH CHECK (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid);

-- Usage is recorded and plans are changed on the system path (services, administrators); a user only
-- reads their own plan and usage (/account). Events are never updated.
GRANT SELECT, INSERT, UPDATE, DELETE ON plans, subscriptions, usage_counters TO jobswipe_system;
GRANT SELECT, INSERT, DELETE ON usage_events TO jobswipe_system;
GRANT SELECT ON plans, subscriptions, usage_counters, usage_events TO jobswipe_user;
