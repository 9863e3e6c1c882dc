-- Passkeys (WebAuthn credentials) for SQLite, and the state of passkey ceremonies.
--
-- A passkey belongs to one user; its credential id (chosen by the authenticator) is
-- unique across every user, so one credential never signs two accounts in. `credential`
-- is the relying party's serialized credential (public key, flags), opaque here;
-- `sign_count` only moves forward, in one conditional UPDATE, so a cloned authenticator
-- is refused even when two replicas race.
--
-- A ceremony (a registration, or a sign-in that names no account) keeps the relying
-- party's state between its two steps, found by the SHA-256 of the token the client
-- holds; taking it sets `used_at` in one conditional UPDATE, so it is used once.
-- Times are INTEGER Unix microseconds and ids 16-byte BLOBs, as in the other identity tables.

CREATE TABLE passkeys (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id       BLOB    NOT NULL CHECK (length(user_id) = 16),
    credential_id BLOB    NOT NULL UNIQUE CHECK (length(credential_id) BETWEEN 1 AND 1023),
    name          TEXT    NOT NULL,
    credential    TEXT    NOT NULL,
    sign_count    INTEGER NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
) STRICT;

-- A user's passkeys, oldest first.
CREATE INDEX passkeys_user_idx ON passkeys (user_id, created_at);

CREATE TABLE passkey_ceremonies (
    token_hash BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    purpose    TEXT    NOT NULL,
    user_id    BLOB    CHECK (user_id IS NULL OR length(user_id) = 16),
    state      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;

-- Pruning deletes by expiry.
CREATE INDEX passkey_ceremonies_expiry_idx ON passkey_ceremonies (expires_at);
