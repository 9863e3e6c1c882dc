-- Email verification for Postgres: mailed single-use tokens (only their SHA-256 is
-- stored), each bound to one user and the address it was sent to, and each user's
-- verified address.
--
-- Using a token sets `used_at` on it and on its user's other unused tokens (they are
-- retired) and writes the user's row of `verified_emails`, in one transaction that locks
-- the token's row. Ids are UUIDs and times TIMESTAMPTZ, as in the other identity tables.

CREATE TABLE email_tokens (
    token_hash  BYTEA       NOT NULL CHECK (octet_length(token_hash) = 32),
    user_id     UUID        NOT NULL,
    email       TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    CONSTRAINT email_tokens_pkey PRIMARY KEY (token_hash)
);

-- Retiring a user's other tokens reads this index.
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id);

CREATE TABLE verified_emails (
    user_id     UUID        NOT NULL,
    email       TEXT        NOT NULL,
    verified_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT verified_emails_pkey PRIMARY KEY (user_id)
);
