-- The first use of a support grant, for SQLite: when its staff member first entered the
-- org through it (INTEGER Unix microseconds, as the table's other times), NULL until then.
--
-- Set once, in the transaction that writes the grant's `support_grant.used` audit event,
-- by an UPDATE that matches only a NULL `first_used_at`: of two concurrent first uses one
-- sets it (and writes the event) and the other changes nothing. The grant is read with
-- it on every request its staff member makes, so a later request writes nothing.

ALTER TABLE support_grants ADD COLUMN first_used_at INTEGER;
