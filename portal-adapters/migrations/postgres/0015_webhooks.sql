-- Webhooks (docs/audit-and-webhooks.md): an org's endpoints, one delivery per (endpoint,
-- audit event) that the outbox insert fans out in the event's transaction, and the
-- attempt log.
CREATE TABLE webhook_endpoints (
    id              UUID PRIMARY KEY,
    org_id          UUID NOT NULL,
    url             TEXT NOT NULL,
    description     TEXT NOT NULL,
    event_types     TEXT[] NOT NULL,    -- actions, sorted; empty takes every event
    enabled         BOOLEAN NOT NULL,
    secret          TEXT NOT NULL,      -- whsec_…: kept, not hashed, so the server can sign
    previous_secret TEXT,
    previous_until  TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    failing_since   TIMESTAMPTZ
);
CREATE INDEX webhook_endpoints_by_org ON webhook_endpoints (org_id, id);

CREATE TABLE webhook_deliveries (
    endpoint_id UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id    UUID NOT NULL,
    org_id      UUID NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts    INTEGER NOT NULL,
    due_at      TIMESTAMPTZ NOT NULL,   -- the next attempt, or the end of a claim's lease
    PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (endpoint_id, occurred_at);

CREATE TABLE webhook_attempts (
    id           UUID PRIMARY KEY,
    org_id       UUID NOT NULL,
    endpoint_id  UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id     UUID NOT NULL,
    attempt      INTEGER NOT NULL,
    attempted_at TIMESTAMPTZ NOT NULL,
    status       TEXT NOT NULL,
    http_status  INTEGER,
    latency_ms   INTEGER NOT NULL,
    excerpt      TEXT NOT NULL
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id);

-- Wakes the delivery workers (LISTEN portal_webhooks) when a transaction that fanned out
-- deliveries commits; one notification per statement, merged per transaction.
CREATE FUNCTION portal_webhooks_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted) THEN
        PERFORM pg_notify('portal_webhooks', '');
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_deliveries_notify AFTER INSERT ON webhook_deliveries
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION portal_webhooks_notify();
