-- The first use of a support grant, for Postgres: when its staff member first entered the
-- org through it, NULL until then.
--
-- Set once, in the transaction that writes the grant's `support_grant.used` audit event,
-- by an UPDATE that matches only a NULL `first_used_at`: of two concurrent first uses the
-- second waits for the first's row lock, then finds the column set and changes nothing
-- (so it writes no event). The grant is read with it on every request its staff member
-- makes, so a later request writes nothing.

ALTER TABLE support_grants ADD COLUMN first_used_at TIMESTAMPTZ;
