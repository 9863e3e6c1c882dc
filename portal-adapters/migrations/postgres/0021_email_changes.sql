-- Change of email for Postgres: mailed single-use tokens (only their SHA-256 is stored),
-- each bound to one user, the address they had when they asked and the address they
-- asked for.
--
-- Issuing a token retires its user's earlier unused ones. Using one, in one transaction
-- that locks the token's row and the user's row, sets `users.email` and
-- `passwords.email` of its user to the new address (the unique constraints on both
-- refuse an address taken meanwhile, also by a concurrent sign-up), writes the user's row
-- of `verified_emails`, and sets `used_at` on it and its user's other unused tokens. Ids
-- are UUIDs and times TIMESTAMPTZ, as in the other identity tables.

CREATE TABLE email_changes (
    token_hash  BYTEA       NOT NULL CHECK (octet_length(token_hash) = 32),
    user_id     UUID        NOT NULL,
    old_email   TEXT        NOT NULL,
    new_email   TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    CONSTRAINT email_changes_pkey PRIMARY KEY (token_hash)
);

-- Retiring a user's other tokens reads this index.
CREATE INDEX email_changes_user_idx ON email_changes (user_id);
