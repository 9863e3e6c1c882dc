-- Change of email for SQLite: mailed single-use tokens (only their SHA-256 is stored),
-- each bound to one user, the address they had when they asked and the address they
-- asked for.
--
-- Issuing a token retires its user's earlier unused ones. Using one, in one transaction,
-- sets `users.email` and `passwords.email` of its user to the new address (the unique
-- constraints on both refuse an address taken meanwhile), writes the user's row of
-- `verified_emails`, and sets `used_at` on it and its user's other unused tokens. Times
-- are INTEGER Unix microseconds and ids 16-byte BLOBs, as in the other identity tables.

CREATE TABLE email_changes (
    token_hash  BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     BLOB    NOT NULL CHECK (length(user_id) = 16),
    old_email   TEXT    NOT NULL,
    new_email   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;

-- Retiring a user's other tokens reads this index.
CREATE INDEX email_changes_user_idx ON email_changes (user_id);
