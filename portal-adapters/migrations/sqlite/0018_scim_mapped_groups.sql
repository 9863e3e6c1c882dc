-- The groups of an org that map roles: every membership change reads the roles SCIM
-- manages in the org (`ScimStore::mapped_roles`), which this partial index finds without
-- reading the org's other groups or any member.
CREATE INDEX scim_groups_mapped_idx ON scim_groups (org_id) WHERE roles <> '';
