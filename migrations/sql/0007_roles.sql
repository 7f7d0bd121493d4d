-- The server never runs queries as the owner of these tables. It uses two roles without login,
-- which the connecting user switches to:
--   jobswipe_system  the explicit path for work that is not scoped to one user: token and session
--                    lookups by id, sign-in by email, key rotation, sweeping, administrator commands.
--   jobswipe_user    user-facing queries (account pages, user APIs). Each such transaction sets
--                    jobswipe.user_id, and row-level security shows it only that user's rows.
-- Roles belong to the whole cluster, so another database of the same cluster may have created them.
-- Creating a role needs CREATEROLE; when an administrator has created them already, it is not needed.
-- (Two databases migrating at the same moment may both try: the loser's duplicate is ignored.)
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jobswipe_system') THEN
    CREATE ROLE jobswipe_system NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jobswipe_user') THEN
    CREATE ROLE jobswipe_user NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
-- The connecting user (the owner, who runs migrations) may switch to either role.
-- (An administrator who created the roles may have granted them already; then this is skipped.)
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'jobswipe_system', 'MEMBER') THEN
    EXECUTE format('GRANT jobswipe_system TO %I', current_user);
  END IF;
  IF NOT pg_has_role(current_user, 'jobswipe_user', 'MEMBER') THEN
    EXECUTE format('GRANT jobswipe_user TO %I', current_user);
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO jobswipe_system, jobswipe_user;

-- Each table is granted explicitly, in the migration that creates it; nothing by default.
GRANT SELECT, INSERT, UPDATE, DELETE ON oidc_models, users, signing_keys, keystore_settings, user_sessions, rate_limits TO jobswipe_system;
