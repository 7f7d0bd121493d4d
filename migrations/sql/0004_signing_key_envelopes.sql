-- Private signing keys are stored only as JWE envelopes (A256GCMKW + A256GCM) under the configured
-- key-encryption key. Rows written before this migration hold private_jwk in the clear until the
-- keystore's next start seals them and clears the column.
ALTER TABLE signing_keys ADD COLUMN private_key_jwe text;
ALTER TABLE signing_keys ALTER COLUMN private_jwk DROP NOT NULL;
ALTER TABLE signing_keys ADD COLUMN revoked_at timestamptz;
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_state_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_state_check CHECK (state IN ('next', 'current', 'retired', 'revoked'));

-- At most one key waits to become current.
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

-- Which key-encryption key seals the envelopes, so a process with another one refuses to start.
CREATE TABLE keystore_settings (
  singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  kek_id     text        NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- A revoked key keeps its row (for the record) but no private material.
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_private_key_stored
  CHECK (state = 'revoked' OR private_key_jwe IS NOT NULL OR private_jwk IS NOT NULL);
