-- How long each org keeps its audit events (docs/audit-and-webhooks.md, "Retention"); an
-- org without a row keeps them for ever. `AuditLog::purge_expired` deletes older events.
CREATE TABLE audit_retention (
    org_id UUID PRIMARY KEY,
    days   INTEGER NOT NULL CHECK (days > 0)
);
CREATE INDEX audit_events_by_org_time ON audit_events (org_id, occurred_at);
