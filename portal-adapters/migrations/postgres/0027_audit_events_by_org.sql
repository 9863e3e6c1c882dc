-- An audit event is written to the table and two indexes, not three: its key is now
-- (org, id), so the separate (org, id) index that every read paged through is gone. An
-- event's id is unique within its org's log (the log every read is scoped to, and what a
-- delivery names beside the event). The key keeps its name, `audit_events_pkey`.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (org_id, id);
DROP INDEX audit_events_by_org;
