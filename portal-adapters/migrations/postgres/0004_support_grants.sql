-- Support access grants for Postgres: a vendor staff member let into a customer org, for
-- a reason, until an expiry, read only or read and write.
--
-- Ids are UUIDs and times TIMESTAMPTZ, as in the tenancy tables. `granted_by` is a
-- principal's stable string form (`usr_…`, `key_…@org_…`, `svc:…`). There are no foreign
-- keys to organizations or users: the store stands alone, and a grant is history once it
-- ends.

CREATE TABLE support_grants (
    -- Ids are unique across orgs; every read also matches `org_id`.
    id          UUID        NOT NULL,
    org_id      UUID        NOT NULL,
    staff_id    UUID        NOT NULL,
    reason      TEXT        NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    access      TEXT        NOT NULL CHECK (access IN ('read_only', 'read_write')),
    granted_by  TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL CHECK (expires_at > created_at),
    revoked_at  TIMESTAMPTZ,
    CONSTRAINT support_grants_pkey PRIMARY KEY (id)
);

-- Listing an org's grants in id order reads this index.
CREATE INDEX support_grants_org_id_idx ON support_grants (org_id, id);
-- Finding a staff member's active grant in an org (on every request they make there)
-- reads this one.
CREATE INDEX support_grants_staff_idx ON support_grants (staff_id, org_id, expires_at);
