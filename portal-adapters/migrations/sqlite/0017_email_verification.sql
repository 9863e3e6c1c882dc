-- Email verification for SQLite: mailed single-use tokens (only their SHA-256 is stored),
-- each bound to one user and the address it was sent to, and each user's verified address.
--
-- Using a token sets `used_at` on it and on its user's other unused tokens (they are
-- retired) and writes the user's row of `verified_emails`, in one transaction. Times are
-- INTEGER Unix microseconds and ids 16-byte BLOBs, as in the other identity tables.

CREATE TABLE email_tokens (
    token_hash  BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     BLOB    NOT NULL CHECK (length(user_id) = 16),
    email       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;

-- Retiring a user's other tokens reads this index.
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id);

CREATE TABLE verified_emails (
    user_id     BLOB    NOT NULL PRIMARY KEY CHECK (length(user_id) = 16),
    email       TEXT    NOT NULL,
    verified_at INTEGER NOT NULL
) STRICT;
