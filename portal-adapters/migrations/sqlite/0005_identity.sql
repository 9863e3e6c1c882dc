-- Identity for SQLite: password hashes, sessions, API keys and failed sign-ins.
--
-- Ids are 16-byte BLOBs and times INTEGER Unix microseconds, as in the tenancy tables.
-- Tokens and keys are never stored: only their SHA-256 (`token_hash`, 32 bytes), which
-- is unique so a lookup finds one row. Password hashes are PHC strings (argon2id).
-- There are no foreign keys to users or organizations: the stores stand alone, as the
-- support grants do.

CREATE TABLE passwords (
    user_id     BLOB    NOT NULL PRIMARY KEY CHECK (length(user_id) = 16),
    -- The normalized login email; one account per email.
    email       TEXT    NOT NULL UNIQUE,
    hash        TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    id                   BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id              BLOB    NOT NULL CHECK (length(user_id) = 16),
    token_hash           BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    active_org           BLOB    CHECK (active_org IS NULL OR length(active_org) = 16),
    created_at           INTEGER NOT NULL,
    last_seen_at         INTEGER NOT NULL,
    absolute_expires_at  INTEGER NOT NULL,
    revoked_at           INTEGER
) STRICT;

-- Listing and revoking a user's sessions reads this index.
CREATE INDEX sessions_user_idx ON sessions (user_id, id);

CREATE TABLE api_keys (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    org_id        BLOB    NOT NULL CHECK (length(org_id) = 16),
    name          TEXT    NOT NULL,
    prefix        TEXT    NOT NULL,
    token_hash    BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    -- A JSON array of `object action` strings.
    scopes        TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    expires_at    INTEGER,
    revoked_at    INTEGER
) STRICT;

-- Listing an org's keys in id order reads this index.
CREATE INDEX api_keys_org_idx ON api_keys (org_id, id);

-- One row per failed sign-in, per throttle key (`account:<email>` or `source:<ip>`):
-- a sliding window is a count of the rows since a time.
CREATE TABLE login_failures (
    throttle_key  TEXT    NOT NULL,
    at            INTEGER NOT NULL
) STRICT;

CREATE INDEX login_failures_key_idx ON login_failures (throttle_key, at);
-- Pruning old failures reads this one.
CREATE INDEX login_failures_at_idx ON login_failures (at);
