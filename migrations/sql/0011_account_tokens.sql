-- Single-use tokens for links: email verification (mailed to a user) and sign-up invitations (printed by
-- `idp users invite`, for an address that has no account yet). Only a SHA-256 of the token is stored:
-- a copy of the table does not give working links.
CREATE TABLE account_tokens (
  token_hash text PRIMARY KEY,
  purpose text NOT NULL CHECK (purpose IN ('verify_email', 'invitation')),
  user_id uuid REFERENCES users (id) ON DELETE CASCADE,
  -- The invited address (invitations only; a verification token names its user instead).
  email text,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  CHECK ((purpose = 'invitation') = (user_id IS NULL AND email IS NOT NULL))
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);

-- Tokens are redeemed by their hash before anyone is signed in, so only the system path reads them:
-- row-level security with a system policy, and nothing at all for jobswipe_user (docs/database.md).
ALTER TABLE account_tokens ENABLE ROW LEVEL SECURITY;
CREATE POLICY system_all ON account_tokens TO jobswipe_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON account_tokens TO jobswipe_system;
