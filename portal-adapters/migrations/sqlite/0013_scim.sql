-- SCIM provisioning for SQLite: the users and groups an org's directory provisions, the
-- groups' members, and the roles each group maps to.
--
-- Ids are 16-byte BLOBs and times INTEGER Unix microseconds, as in the tenancy tables.
-- `user_name_key` and `display_name_key` hold the lowercased name (lowercased by the
-- store), which is what is unique per org: SCIM compares them ignoring case. There is no
-- foreign key to tenancy: the store stands alone. A group's members reference the org's
-- SCIM users, so a member must be provisioned in the same org and leaves every group
-- when deleted.

CREATE TABLE scim_users (
    org_id        BLOB    NOT NULL CHECK (length(org_id) = 16),
    user_id       BLOB    NOT NULL CHECK (length(user_id) = 16),
    user_name     TEXT    NOT NULL,
    user_name_key TEXT    NOT NULL,
    external_id   TEXT,
    active        INTEGER NOT NULL CHECK (active IN (0, 1)),
    -- The name, display name and emails, as a JSON object.
    profile       TEXT    NOT NULL CHECK (json_valid(profile)),
    version       INTEGER NOT NULL CHECK (version >= 1),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id),
    -- `userName eq …` and `externalId eq …` filters read these indexes.
    CONSTRAINT scim_users_user_name_key UNIQUE (org_id, user_name_key),
    CONSTRAINT scim_users_external_id_key UNIQUE (org_id, external_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE scim_groups (
    org_id           BLOB    NOT NULL CHECK (length(org_id) = 16),
    id               BLOB    NOT NULL CHECK (length(id) = 16),
    display_name     TEXT    NOT NULL,
    display_name_key TEXT    NOT NULL,
    external_id      TEXT,
    -- The roles the org maps the group to, space-separated (role names hold no spaces).
    roles            TEXT    NOT NULL,
    version          INTEGER NOT NULL CHECK (version >= 1),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT scim_groups_display_name_key UNIQUE (org_id, display_name_key),
    CONSTRAINT scim_groups_external_id_key UNIQUE (org_id, external_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE scim_group_members (
    org_id   BLOB NOT NULL,
    group_id BLOB NOT NULL,
    user_id  BLOB NOT NULL,
    PRIMARY KEY (org_id, group_id, user_id),
    FOREIGN KEY (org_id, group_id) REFERENCES scim_groups (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES scim_users (org_id, user_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- "Which groups is this user in" (roles are recomputed from it) reads this index.
CREATE INDEX scim_group_members_user_idx ON scim_group_members (org_id, user_id, group_id);
