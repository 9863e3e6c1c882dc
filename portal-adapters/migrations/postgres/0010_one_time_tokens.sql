-- Single-use tokens for Postgres (password-reset links): only their SHA-256 is stored.
--
-- A token is used once: `used_at` is set when it is used, and on the other unused tokens
-- of its user and purpose in the same transaction (they are retired). Ids are UUIDs and
-- times TIMESTAMPTZ, as in the other identity tables.

CREATE TABLE one_time_tokens (
    token_hash  BYTEA       NOT NULL CHECK (octet_length(token_hash) = 32),
    user_id     UUID        NOT NULL,
    purpose     TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    CONSTRAINT one_time_tokens_pkey PRIMARY KEY (token_hash)
);

-- Retiring a user's other tokens reads this index.
CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id, purpose);
