-- The diagnostics journal for SQLite: append-only events, one row each.
--
-- The whole event is kept as JSON in `event` (what reads decode); the columns beside it
-- are what the journal filters and orders on. Ids are 16-byte BLOBs and times INTEGER
-- Unix microseconds, as in the other tables; principals are their stable string form.
-- Rows are never updated; `purge` deletes an org's rows older than its retention window.

CREATE TABLE diagnostic_events (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    at          INTEGER NOT NULL,
    request_id  BLOB    NOT NULL CHECK (length(request_id) = 16),
    org_id      BLOB    CHECK (org_id IS NULL OR length(org_id) = 16),
    actor       TEXT,
    real_actor  TEXT,
    kind        TEXT    NOT NULL,
    event       TEXT    NOT NULL
) STRICT;

-- Everything under one request id.
CREATE INDEX diagnostic_events_request_idx ON diagnostic_events (request_id, at, id);
-- An org's timeline, and its purge.
CREATE INDEX diagnostic_events_org_idx ON diagnostic_events (org_id, at, id);
-- A user's timeline: as the actor, or as the real actor behind support work.
CREATE INDEX diagnostic_events_actor_idx ON diagnostic_events (actor, at, id);
CREATE INDEX diagnostic_events_real_actor_idx ON diagnostic_events (real_actor, at, id) WHERE real_actor IS NOT NULL;
