-- Workflow changes no longer write a per-instance audit record. Each record repeated
-- the step its history entry holds (version, kind, transition, from, to, actor, time,
-- request id), and the customer audit log's event (`workflow.*` in `audit_events`,
-- written in the same transaction) names the instance as its target; so dropping the
-- table loses no fact, and every transition writes one row and one index entry fewer.
DROP TABLE workflow_audit;
