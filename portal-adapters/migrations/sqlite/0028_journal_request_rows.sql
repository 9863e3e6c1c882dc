-- The diagnostics journal keeps a row per request and org instead of one per event:
-- the events a request records together (a read's `auth.session`, `access.check` and
-- `workflow.view`) are one row, written to five B-trees (the table, the request, org and
-- actor indexes and the second actor's), where each event was a row in four.
--
-- A row holds the events of one request that share an org, appended in one batch, their
-- times at most a minute apart (`SqliteJournal` starts a new row past that, so a timeline
-- can seek to a minute before its window), with at most two actors (`actor`,
-- `other_actor`) and one real actor among them, each indexed. `at` and `id` are
-- the row's first event's (its place in journal order, and the duplicate check of
-- appends), `last_at` its last event's time; `kinds` lists the row's event kinds between
-- spaces (` authentication permission_decision query `) for timeline filters; `events` counts them; `body` is
-- their JSON array, in journal order.

CREATE TABLE diagnostic_event_rows (
    at          INTEGER NOT NULL,
    id          BLOB    NOT NULL CHECK (length(id) = 16),
    last_at     INTEGER NOT NULL CHECK (last_at >= at),
    request_id  BLOB    NOT NULL CHECK (length(request_id) = 16),
    org_id      BLOB    CHECK (org_id IS NULL OR length(org_id) = 16),
    actor       TEXT,
    other_actor TEXT,
    real_actor  TEXT,
    kinds       TEXT    NOT NULL,
    events      INTEGER NOT NULL CHECK (events > 0),
    body        TEXT    NOT NULL
) STRICT;

-- Each stored event becomes a row of its own (its JSON already is the event's).
INSERT INTO diagnostic_event_rows (at, id, last_at, request_id, org_id, actor, other_actor, real_actor, kinds, events, body)
    SELECT at, id, at, request_id, org_id, actor, NULL, real_actor, ' ' || kind || ' ', 1, '[' || event || ']'
    FROM diagnostic_events;

DROP TABLE diagnostic_events;

-- Everything under one request id; the duplicate check of appends.
CREATE UNIQUE INDEX diagnostic_event_rows_request_idx ON diagnostic_event_rows (request_id, at, id);
-- An org's timeline, and its purge.
CREATE INDEX diagnostic_event_rows_org_idx ON diagnostic_event_rows (org_id, at, id);
-- A user's timeline: as an actor, or as the real actor behind support work.
CREATE INDEX diagnostic_event_rows_actor_idx ON diagnostic_event_rows (actor, at, id);
CREATE INDEX diagnostic_event_rows_other_actor_idx ON diagnostic_event_rows (other_actor, at, id) WHERE other_actor IS NOT NULL;
CREATE INDEX diagnostic_event_rows_real_actor_idx ON diagnostic_event_rows (real_actor, at, id) WHERE real_actor IS NOT NULL;
