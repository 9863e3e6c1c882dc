-- The customer audit log: the transactional outbox. A store writes each event in the
-- transaction of the change it describes (docs/audit-and-webhooks.md).
CREATE TABLE audit_events (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL,
    action      TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,   -- Unix microseconds
    targets     TEXT NOT NULL,      -- JSON array of the target ids, for the target filter
    event       TEXT NOT NULL       -- the whole event, JSON
);

-- One org's log in id (time) order, the cursor of every read.
CREATE INDEX audit_events_by_org ON audit_events (org_id, id);
