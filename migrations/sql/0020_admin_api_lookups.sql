-- Lookups the admin API adds (docs/admin-api.md):
-- a client's grants, revoked when the client is disabled (DELETE /admin/api/clients/{client_id});
CREATE INDEX oidc_models_grant_client ON oidc_models ((payload ->> 'clientId')) WHERE model = 'Grant';
-- users by the start of their address, any case (GET /admin/api/users?email=);
CREATE INDEX users_email_prefix ON users (lower(email) text_pattern_ops);
-- audit events of one type, in id order (GET /admin/api/audit?type=).
CREATE INDEX audit_events_type ON audit_events (event_type, id);
