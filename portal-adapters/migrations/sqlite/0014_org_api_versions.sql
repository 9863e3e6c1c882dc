-- The API version each org is pinned to, for SQLite: a `YYYY-MM-DD` name that the HTTP
-- layer answers the org's requests in when they name no version. An org without a row
-- was created before pins existed and is on the oldest version. Ids are 16-byte BLOBs, as in
-- the tenancy tables.

CREATE TABLE org_api_versions (
    org_id    BLOB NOT NULL PRIMARY KEY REFERENCES organizations (id),
    version   TEXT NOT NULL CHECK (length(version) = 10)
) STRICT;
