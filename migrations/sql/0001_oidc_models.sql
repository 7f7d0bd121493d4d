-- Every oidc-provider model (sessions, codes, grants, tokens, clients...) in one generic table.
CREATE TABLE oidc_models (
  model       text        NOT NULL,
  id          text        NOT NULL,
  payload     jsonb       NOT NULL,
  grant_id    text        GENERATED ALWAYS AS (payload ->> 'grantId') STORED,
  user_code   text        GENERATED ALWAYS AS (payload ->> 'userCode') STORED,
  uid         text        GENERATED ALWAYS AS (payload ->> 'uid') STORED,
  expires_at  timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (model, id)
);

CREATE INDEX oidc_models_grant_id ON oidc_models (model, grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_models_user_code ON oidc_models (model, user_code) WHERE user_code IS NOT NULL;
CREATE INDEX oidc_models_uid ON oidc_models (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX oidc_models_expires_at ON oidc_models (expires_at) WHERE expires_at IS NOT NULL;
