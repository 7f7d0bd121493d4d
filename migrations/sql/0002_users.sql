CREATE TABLE users (
  id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  email          text        NOT NULL CHECK (email <> ''),
  email_verified boolean     NOT NULL DEFAULT false,
  name           text        NOT NULL DEFAULT '',
  password_hash  text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  disabled_at    timestamptz
);

-- Emails are unique regardless of case; lookups go through lower(email).
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));
