-- Idempotency-Key records of the HTTP operations (Postgres), shared by every server on
-- this database. One row per (org, principal, operation, key): held by one request while
-- `hold` is set (until `expires_at`, its deadline), then its kept answer until
-- `expires_at` (24 h). A claim takes over a row past `expires_at` in the same statement.
CREATE TABLE idempotency_records (
    -- The org's id text, or '' for an operation about no org.
    org_id          TEXT        NOT NULL,
    principal       TEXT        NOT NULL,
    operation       TEXT        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    -- SHA-256 of the request that claimed the key.
    fingerprint     BYTEA       NOT NULL CHECK (octet_length(fingerprint) = 32),
    -- The token of the request holding the key; NULL once it completed.
    hold            BYTEA       CHECK (hold IS NULL OR octet_length(hold) = 16),
    -- The kept answer: all NULL while held, or when the answer showed a secret once.
    status          INTEGER     CHECK (status IS NULL OR status BETWEEN 100 AND 599),
    -- A JSON array of [name, value] pairs.
    headers         TEXT,
    body            BYTEA,
    expires_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT idempotency_records_pkey PRIMARY KEY (org_id, principal, operation, idempotency_key)
);
CREATE INDEX idempotency_records_expiry ON idempotency_records (expires_at);
