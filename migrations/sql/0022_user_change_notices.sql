-- Every server process keeps the accounts the provider looks up on token requests (the claims of a
-- user: idp/src/users/queries.ts). A change to a user row, by any process or by hand, announces the
-- user's id on the channel `jobswipe_users` once the transaction commits (NOTIFY), and each process
-- forgets that user; TRUNCATE announces `*` (all). An insert needs no notice: nothing absent is kept.
CREATE FUNCTION user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('jobswipe_users', '*');
  ELSE
    PERFORM pg_notify('jobswipe_users', OLD.id::text);
    IF TG_OP = 'UPDATE' AND OLD.id <> NEW.id THEN
      PERFORM pg_notify('jobswipe_users', NEW.id::text);
    END IF;
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER user_written AFTER UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION user_changed();
CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION user_changed();
