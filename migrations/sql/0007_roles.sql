-- The server never runs queries as the owner of these tables. It uses two roles without login,
-- which the connecting user switches to:
--   jobswipe_system  the explicit path for work that is not scoped to one user: token and session
--                    lookups by id, sign-in by email, key rotation, sweeping, administrator commands.
--   jobswipe_user    user-facing queries (account pages, user APIs). Each such transaction sets
--                    jobswipe.user_id, and row-level security shows it only that user's rows.
-- Roles belong to the whole cluster, so another database of the same cluster may have created them.
DO $$
BEGIN
  CREATE ROLE jobswipe_system NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
DO $$
BEGIN
  CREATE ROLE jobswipe_user NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
-- The connecting user (the owner, who runs migrations) may switch to either role.
DO $$
BEGIN
  EXECUTE format('GRANT jobswipe_system, jobswipe_user TO %I', current_user);
END
$$;

GRANT USAGE ON SCHEMA public TO jobswipe_system, jobswipe_user;

-- Each table is granted explicitly, in the migration that creates it; nothing by default.
GRANT SELECT, INSERT, UPDATE, DELETE ON oidc_models, users, signing_keys, keystore_settings, user_sessions, rate_limits TO jobswipe_system;
