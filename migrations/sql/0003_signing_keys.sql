CREATE TABLE signing_keys (
  kid          text        PRIMARY KEY,
  alg          text        NOT NULL,
  state        text        NOT NULL CHECK (state IN ('next', 'current', 'retired')),
  public_jwk   jsonb       NOT NULL,
  private_jwk  jsonb       NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  activates_at timestamptz,
  retires_at   timestamptz
);

-- At most one key signs at a time.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (state) WHERE state = 'current';
