-- Webhooks (docs/audit-and-webhooks.md): an org's endpoints, one delivery per (endpoint,
-- audit event) that the outbox insert fans out in the event's transaction, and the
-- attempt log.
CREATE TABLE webhook_endpoints (
    id              BLOB PRIMARY KEY,
    org_id          BLOB NOT NULL,
    url             TEXT NOT NULL,
    description     TEXT NOT NULL,
    event_types     TEXT NOT NULL,      -- JSON array of actions, sorted; [] takes every event
    enabled         INTEGER NOT NULL,
    secret          TEXT NOT NULL,      -- whsec_…: kept, not hashed, so the server can sign
    previous_secret TEXT,               -- the secret before the last rotation, while it still signs
    previous_until  INTEGER,            -- Unix microseconds
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    failing_since   INTEGER
);
CREATE INDEX webhook_endpoints_by_org ON webhook_endpoints (org_id, id);

CREATE TABLE webhook_deliveries (
    endpoint_id BLOB NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id    BLOB NOT NULL,
    org_id      BLOB NOT NULL,
    occurred_at INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts    INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,       -- the next attempt, or the end of a claim's lease
    PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (endpoint_id, occurred_at);

CREATE TABLE webhook_attempts (
    id           BLOB PRIMARY KEY,
    org_id       BLOB NOT NULL,
    endpoint_id  BLOB NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id     BLOB NOT NULL,
    attempt      INTEGER NOT NULL,
    attempted_at INTEGER NOT NULL,
    status       TEXT NOT NULL,
    http_status  INTEGER,
    latency_ms   INTEGER NOT NULL,
    excerpt      TEXT NOT NULL
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id);
