-- Every process keeps the clients it has looked up (adapters/src/client-cache.ts). A write to a client
-- row, by any process or by hand, announces the client's id on the channel `jobswipe_clients` once the
-- transaction commits (NOTIFY), and each process forgets that client; TRUNCATE announces `*` (all).
CREATE FUNCTION oidc_client_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('jobswipe_clients', '*');
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('jobswipe_clients', OLD.id);
  ELSE
    PERFORM pg_notify('jobswipe_clients', NEW.id);
    IF TG_OP = 'UPDATE' AND OLD.id <> NEW.id THEN
      PERFORM pg_notify('jobswipe_clients', OLD.id);
    END IF;
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER oidc_client_written AFTER INSERT OR UPDATE ON oidc_models
  FOR EACH ROW WHEN (NEW.model = 'Client') EXECUTE FUNCTION oidc_client_changed();
CREATE TRIGGER oidc_client_deleted AFTER DELETE ON oidc_models
  FOR EACH ROW WHEN (OLD.model = 'Client') EXECUTE FUNCTION oidc_client_changed();
CREATE TRIGGER oidc_clients_truncated AFTER TRUNCATE ON oidc_models
  FOR EACH STATEMENT EXECUTE FUNCTION oidc_client_changed();
