-- Reservations of idempotency keys (Postgres): a row per key whose request is being
-- worked on, written before the work by `reserve` and removed by the commit that stores
-- the key's `workflow_idempotency` record, or by `release` when the request fails. A row
-- older than the lock timeout (its holder crashed) is taken over by the next `reserve`.
CREATE TABLE workflow_idempotency_locks (
    org_id          UUID        NOT NULL,
    principal       TEXT        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    -- SHA-256 of the canonical request holding the key.
    fingerprint     BYTEA       NOT NULL CHECK (octet_length(fingerprint) = 32),
    -- Unique to one hold, so a holder releases only its own.
    token           UUID        NOT NULL,
    locked_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT workflow_idempotency_locks_pkey PRIMARY KEY (org_id, principal, idempotency_key)
);
