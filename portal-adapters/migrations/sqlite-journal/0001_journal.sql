-- A SQLite database holding the diagnostics journal alone (`sqlite::migrate_journal`):
-- the `diagnostic_events` table as `migrations/sqlite` leaves it (0006, then 0025).
--
-- The whole event is kept as JSON in `event` (what reads decode); the columns beside it
-- are what the journal filters and orders on. Ids are 16-byte BLOBs and times INTEGER
-- Unix microseconds; principals are their stable string form. Rows are never updated;
-- `purge` deletes an org's rows older than its retention window.

CREATE TABLE diagnostic_events (
    at          INTEGER NOT NULL,
    request_id  BLOB    NOT NULL CHECK (length(request_id) = 16),
    id          BLOB    NOT NULL CHECK (length(id) = 16),
    org_id      BLOB    CHECK (org_id IS NULL OR length(org_id) = 16),
    actor       TEXT,
    real_actor  TEXT,
    kind        TEXT    NOT NULL,
    event       TEXT    NOT NULL
) STRICT;

-- Everything under one request id; the duplicate check of appends.
CREATE UNIQUE INDEX diagnostic_events_request_idx ON diagnostic_events (request_id, at, id);
-- An org's timeline, and its purge.
CREATE INDEX diagnostic_events_org_idx ON diagnostic_events (org_id, at, id);
-- A user's timeline: as the actor, or as the real actor behind support work.
CREATE INDEX diagnostic_events_actor_idx ON diagnostic_events (actor, at, id);
CREATE INDEX diagnostic_events_real_actor_idx ON diagnostic_events (real_actor, at, id) WHERE real_actor IS NOT NULL;
