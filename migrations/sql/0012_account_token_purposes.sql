-- Two more kinds of mailed link: a password reset (1 hour) and the confirmation of a new email address
-- (it names its user, and in `email` the new address, which takes effect only when the link is used).
ALTER TABLE account_tokens DROP CONSTRAINT account_tokens_purpose_check;
ALTER TABLE account_tokens ADD CONSTRAINT account_tokens_purpose_check
  CHECK (purpose IN ('verify_email', 'invitation', 'reset_password', 'change_email'));
ALTER TABLE account_tokens ADD CONSTRAINT account_tokens_change_email_address
  CHECK (purpose <> 'change_email' OR email IS NOT NULL);
