-- The customer audit log: the transactional outbox. A store writes each event in the
-- transaction of the change it describes (docs/audit-and-webhooks.md).
CREATE TABLE audit_events (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL,
    action      TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    targets     TEXT[] NOT NULL,    -- the target ids, for the target filter
    event       TEXT NOT NULL       -- the whole event, JSON
);

-- One org's log in id (time) order, the cursor of every read.
CREATE INDEX audit_events_by_org ON audit_events (org_id, id);
