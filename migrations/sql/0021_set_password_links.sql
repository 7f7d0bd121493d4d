-- One more kind of link: a user the admin API created without a password sets one with it (7 days).
-- It names its user, like a reset link.
ALTER TABLE account_tokens DROP CONSTRAINT account_tokens_purpose_check;
ALTER TABLE account_tokens ADD CONSTRAINT account_tokens_purpose_check
  CHECK (purpose IN ('verify_email', 'invitation', 'reset_password', 'change_email', 'set_password'));
