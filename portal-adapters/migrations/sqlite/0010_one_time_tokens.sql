-- Single-use tokens for SQLite (password-reset links): only their SHA-256 is stored.
--
-- A token is used once: `used_at` is set when it is used, and on the other unused tokens
-- of its user and purpose at the same time (they are retired). Times are INTEGER Unix
-- microseconds and ids 16-byte BLOBs, as in the other identity tables.

CREATE TABLE one_time_tokens (
    token_hash  BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     BLOB    NOT NULL CHECK (length(user_id) = 16),
    purpose     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;

-- Retiring a user's other tokens reads this index.
CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id, purpose);
