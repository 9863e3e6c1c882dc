-- An audit event is written to three B-trees, not four: the table, its (org, id) key
-- and its (org, time) index. An event's id is now unique within its org's log (the log
-- every read is scoped to, and what a delivery names beside the event), so the key on
-- `id` alone, which only the duplicate check and two reads by id used, is gone, and the
-- (org, id) index that every read pages through is that check.
CREATE TABLE audit_events_rebuilt (
    id          BLOB NOT NULL,
    org_id      BLOB NOT NULL,
    action      TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,   -- Unix microseconds
    targets     TEXT NOT NULL,      -- JSON array of the target ids, for the target filter
    event       TEXT NOT NULL       -- the whole event, JSON
);

INSERT INTO audit_events_rebuilt (id, org_id, action, actor_id, occurred_at, targets, event)
    SELECT id, org_id, action, actor_id, occurred_at, targets, event FROM audit_events ORDER BY rowid;
DROP TABLE audit_events;
ALTER TABLE audit_events_rebuilt RENAME TO audit_events;

-- One org's log in id (time) order, the cursor of every read; an id appears once in it.
CREATE UNIQUE INDEX audit_events_by_org ON audit_events (org_id, id);
-- Retention's purge and the time filters.
CREATE INDEX audit_events_by_org_time ON audit_events (org_id, occurred_at);
