-- Plans, the plan each user is on, and metered usage (docs/usage.md).
--
-- plans           the catalogue: per-period limits by meter, desktop devices, features. Read by everyone
--                 who can sign in (it is not personal data), written by administrators.
-- subscriptions   the plan of a user; a user without a row is on DEFAULT_PLAN (config).
-- usage_counters  the roll-up: one row per user, meter and period (calendar month, UTC). The limit check
--                 reads and moves only this row, in one conditional upsert (record_usage, below); rows
--                 are kept for good.
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
-- A user's events of a period (their history, personal data).
CREATE INDEX usage_events_user ON usage_events (user_id, period_start, meter);
-- Rows arrive in period order: a BRIN index finds a period's blocks for the sweeper at almost no cost per insert.
CREATE INDEX usage_events_period ON usage_events USING brin (period_start);

-- Records usage if it fits, in one statement (one round trip; the statement is its own transaction):
--  1. the plan's limit for the meter (the subscription's plan, else p_default_plan); no such user: unknown_user;
--  2. ONE conditional upsert of the counter: it moves only while it stays within the limit. Concurrent
--     calls queue on the counter row and each sees the one before it, so the limit holds exactly;
--  3. the event row, whose primary key is the idempotency key: a second call with the same key (also
--     a concurrent one, which waits for the first to commit) conflicts, gives back its increment (the
--     row is still locked by this statement, so nobody saw it) and answers the first call's answer;
--  4. nothing fitted: the first call's answer if the key was used (the counter may be full because of
--     it), else over_limit with the counter as it is. Nothing is written then.
CREATE FUNCTION record_usage(
  p_client_id text, p_key text, p_user_id uuid, p_meter text, p_quantity integer,
  p_period_start timestamptz, p_default_plan text, p_recorded_at timestamptz
) RETURNS TABLE (outcome text, r_used integer, r_limit integer, r_period_start timestamptz, r_user_id uuid, r_meter text, r_quantity integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_plan text;
  v_limit integer;
  v_used integer;
BEGIN
  SELECT p.id, coalesce((p.limits ->> p_meter)::integer, 0) INTO v_plan, v_limit
  FROM users u
  LEFT JOIN subscriptions s ON s.user_id = u.id
  LEFT JOIN plans p ON p.id = coalesce(s.plan_id, p_default_plan)
  WHERE u.id = p_user_id;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'unknown_user'::text, NULL::integer, NULL::integer, NULL::timestamptz, NULL::uuid, NULL::text, NULL::integer;
    RETURN;
  END IF;
  IF v_plan IS NULL THEN
    RETURN QUERY SELECT 'no_plan'::text, NULL::integer, NULL::integer, NULL::timestamptz, NULL::uuid, NULL::text, NULL::integer;
    RETURN;
  END IF;

  INSERT INTO usage_counters AS c (user_id, meter, period_start, used)
  SELECT p_user_id, p_meter, p_period_start, p_quantity WHERE p_quantity <= v_limit
  ON CONFLICT (user_id, period_start, meter) DO UPDATE SET used = c.used + excluded.used, updated_at = now()
    WHERE c.used + excluded.used <= v_limit
  RETURNING c.used INTO v_used;

  IF v_used IS NOT NULL THEN
    INSERT INTO usage_events (client_id, idempotency_key, user_id, meter, quantity, period_start, used_after, limit_at, recorded_at)
    VALUES (p_client_id, p_key, p_user_id, p_meter, p_quantity, p_period_start, v_used, v_limit, p_recorded_at)
    ON CONFLICT (client_id, idempotency_key) DO NOTHING;
    IF FOUND THEN
      RETURN QUERY SELECT 'recorded'::text, v_used, v_limit, p_period_start, p_user_id, p_meter, p_quantity;
      RETURN;
    END IF;
    UPDATE usage_counters AS c SET used = c.used - p_quantity
    WHERE c.user_id = p_user_id AND c.period_start = p_period_start AND c.meter = p_meter;
  END IF;

  RETURN QUERY SELECT 'repeated'::text, e.used_after, e.limit_at, e.period_start, e.user_id, e.meter, e.quantity
  FROM usage_events AS e WHERE e.client_id = p_client_id AND e.idempotency_key = p_key;
  IF FOUND THEN
    RETURN;
  END IF;
  RETURN QUERY SELECT 'over_limit'::text,
    coalesce((SELECT c.used FROM usage_counters AS c WHERE c.user_id = p_user_id AND c.period_start = p_period_start AND c.meter = p_meter), 0),
    v_limit, p_period_start, p_user_id, p_meter, p_quantity;
END
$$;

REVOKE ALL ON FUNCTION record_usage(text, text, uuid, text, integer, timestamptz, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_usage(text, text, uuid, text, integer, timestamptz, text, timestamptz) TO jobswipe_system;

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
