-- The server never runs queries as the owner of these tables. It uses two roles without login,
-- which the connecting user switches to:
--   jobswipe_system  the explicit path for work that is not scoped to one user: token and session
--                    lookups by id, sign-in by email, key rotation, sweeping, administrator commands.
--   jobswipe_user    user-facing queries (account pages, user APIs). Each such transaction sets
--                    jobswipe.user_id, and row-level security shows it only that user's rows.
-- Roles belong to the whole cluster, so another database of the same cluster may have created them.
-- Creating a role needs CREATEROLE; when an administrator has created them already, it is not needed.
-- (Two databases migrating at the same moment may both try: the loser's duplicate is ignored.) The
-- connecting user (the owner, who runs migrations) is then made a member, so it may switch to either;
-- an administrator who created the roles may have granted them already.
DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['jobswipe_system', 'jobswipe_user'] LOOP
    BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
      END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    IF NOT pg_has_role(current_user, role_name, 'MEMBER') THEN
      EXECUTE format('GRANT %I TO %I', role_name, current_user);
    END IF;
  END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO jobswipe_system, jobswipe_user;

-- Each table is granted explicitly, in the migration that creates it; nothing by default.
GRANT SELECT, INSERT, UPDATE, DELETE ON oidc_models, users, signing_keys, keystore_settings, user_sessions, rate_limits TO jobswipe_system;
