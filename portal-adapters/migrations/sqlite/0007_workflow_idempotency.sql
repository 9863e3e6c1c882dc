-- Reservations of idempotency keys (SQLite): a row per key whose request is being worked
-- on, written before the work by `reserve` and removed by the commit that stores the
-- key's `workflow_idempotency` record, or by `release` when the request fails. A row
-- older than the lock timeout (its holder crashed) is taken over by the next `reserve`.
CREATE TABLE workflow_idempotency_locks (
    org_id          BLOB    NOT NULL CHECK (length(org_id) = 16),
    principal       TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    -- SHA-256 of the canonical request holding the key.
    fingerprint     BLOB    NOT NULL CHECK (length(fingerprint) = 32),
    -- Unique to one hold, so a holder releases only its own.
    token           BLOB    NOT NULL CHECK (length(token) = 16),
    -- Unix microseconds.
    locked_at       INTEGER NOT NULL,
    PRIMARY KEY (org_id, principal, idempotency_key)
) STRICT, WITHOUT ROWID;
