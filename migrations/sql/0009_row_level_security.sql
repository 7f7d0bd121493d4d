-- Row-level security on the tables whose rows belong to one user: users, their browser sessions, and
-- oidc_models (grants, tokens and sessions carry the owner in the generated column account_id; clients
-- and interactions have none). The roles are those of 0007_roles.sql:
--   jobswipe_system  sees and writes every row (USING (true)): the explicit path for work that is not
--                    scoped to one user. Policies still apply to it, so the "true" is a decision, and a
--                    table without a policy for it would be closed to the server, not open.
--   jobswipe_user    sees and writes only rows whose owner is current_setting('jobswipe.user_id'), set
--                    per transaction by withUser() (adapters/src/row-level-security.ts).
-- The owner of the tables (the migrating user) bypasses these policies (no FORCE): it runs migrations
-- and nothing else; the server and the CLI switch to jobswipe_system as soon as migrations are done.
--
-- A transaction as jobswipe_user that never set jobswipe.user_id (or set it to '') compares the owner
-- column with NULL, which is never true: it sees no rows and WITH CHECK refuses every row it writes.
-- A value that is not a uuid makes the cast, and so the query, fail.

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_models ENABLE ROW LEVEL SECURITY;

CREATE POLICY system_all ON users TO jobswipe_system USING (true) WITH CHECK (true);
CREATE POLICY own_row ON users TO jobswipe_user
  USING (id = nullif(current_setting('jobswipe.user_id', true), '')::uuid)
  WITH CHECK (id = nullif(current_setting('jobswipe.user_id', true), '')::uuid);

CREATE POLICY system_all ON user_sessions TO jobswipe_system USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON user_sessions TO jobswipe_user
  USING (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid)
  WITH CHECK (user_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid);

-- account_id is text (oidc-provider's accountId, which is users.id); the round trip through uuid makes
-- the comparison use the canonical lower-case form.
CREATE POLICY system_all ON oidc_models TO jobswipe_system USING (true) WITH CHECK (true);
CREATE POLICY own_rows ON oidc_models TO jobswipe_user
  USING (account_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid::text)
  WITH CHECK (account_id = nullif(current_setting('jobswipe.user_id', true), '')::uuid::text);

-- What user-facing queries need, and no more: the account page reads its user, sessions and grants,
-- and ends the user's own sessions in the list. A user-path query cannot insert or delete rows, nor
-- change a user's email, password or disabled state. Nothing at all on signing_keys,
-- keystore_settings, rate_limits or the migration bookkeeping.
GRANT SELECT ON users, user_sessions, oidc_models TO jobswipe_user;
GRANT UPDATE (name, updated_at) ON users TO jobswipe_user;
GRANT UPDATE (ended_at, end_reason) ON user_sessions TO jobswipe_user;

-- A user-owned table added later (account data, usage) gets the same: ENABLE ROW LEVEL SECURITY, a
-- system_all policy, an own_rows policy on its user id column, and the grants its user-facing queries need.
