-- The diagnostics journal's rows, one B-tree fewer each: the `id` primary key's index
-- was only the duplicate check of `INSERT OR IGNORE` (no read finds an event by its id
-- alone), and the request index now makes that check, unique on (request_id, at, id):
-- an event's id fixes its request and time, so an event appended twice still meets itself.
-- A row is now written to the table, the request, org and actor indexes (and the real
-- actor's, for support work), not five B-trees.

CREATE TABLE diagnostic_events_lean (
    at          INTEGER NOT NULL,
    request_id  BLOB    NOT NULL CHECK (length(request_id) = 16),
    id          BLOB    NOT NULL CHECK (length(id) = 16),
    org_id      BLOB    CHECK (org_id IS NULL OR length(org_id) = 16),
    actor       TEXT,
    real_actor  TEXT,
    kind        TEXT    NOT NULL,
    event       TEXT    NOT NULL
) STRICT;

INSERT OR IGNORE INTO diagnostic_events_lean (at, request_id, id, org_id, actor, real_actor, kind, event)
    SELECT at, request_id, id, org_id, actor, real_actor, kind, event FROM diagnostic_events;

DROP TABLE diagnostic_events;
ALTER TABLE diagnostic_events_lean RENAME TO diagnostic_events;

-- Everything under one request id; the duplicate check of appends.
CREATE UNIQUE INDEX diagnostic_events_request_idx ON diagnostic_events (request_id, at, id);
-- An org's timeline, and its purge.
CREATE INDEX diagnostic_events_org_idx ON diagnostic_events (org_id, at, id);
-- A user's timeline: as the actor, or as the real actor behind support work.
CREATE INDEX diagnostic_events_actor_idx ON diagnostic_events (actor, at, id);
CREATE INDEX diagnostic_events_real_actor_idx ON diagnostic_events (real_actor, at, id) WHERE real_actor IS NOT NULL;
