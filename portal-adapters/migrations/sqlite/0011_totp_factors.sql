-- TOTP second factors for SQLite: one per user, pending until confirmed with a first code,
-- with the last accepted time step (a code of that step or an earlier one is a replay).
-- Recovery codes are kept only as their SHA-256; a used one keeps its `used_at`.
-- Times are INTEGER Unix microseconds and ids 16-byte BLOBs, as in the other identity tables.

CREATE TABLE totp_factors (
    user_id      BLOB    NOT NULL PRIMARY KEY CHECK (length(user_id) = 16),
    secret       BLOB    NOT NULL CHECK (length(secret) = 20),
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    last_step    INTEGER CHECK (last_step >= 0)
) STRICT;

CREATE TABLE totp_recovery_codes (
    user_id    BLOB    NOT NULL CHECK (length(user_id) = 16),
    code_hash  BLOB    NOT NULL CHECK (length(code_hash) = 32),
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
) STRICT;
