-- SCIM provisioning for Postgres: the users and groups an org's directory provisions, the
-- groups' members, and the roles each group maps to.
--
-- Ids are UUIDs and times TIMESTAMPTZ, as in the tenancy tables. `user_name_key` and
-- `display_name_key` hold the lowercased name (lowercased by the store, so every backend
-- agrees), which is what is unique per org: SCIM compares them ignoring case. There is no
-- foreign key to tenancy: the store stands alone. A group's members reference the org's
-- SCIM users, so a member must be provisioned in the same org and leaves every group
-- when deleted.

CREATE TABLE scim_users (
    org_id        UUID             NOT NULL,
    user_id       UUID             NOT NULL,
    user_name     TEXT             NOT NULL,
    user_name_key TEXT COLLATE "C" NOT NULL,
    external_id   TEXT COLLATE "C",
    active        BOOLEAN          NOT NULL,
    -- The name, display name and emails, as a JSON object (kept as written).
    profile       JSON             NOT NULL,
    version       BIGINT           NOT NULL CHECK (version >= 1),
    created_at    TIMESTAMPTZ      NOT NULL,
    updated_at    TIMESTAMPTZ      NOT NULL,
    CONSTRAINT scim_users_pkey PRIMARY KEY (org_id, user_id),
    -- `userName eq …` and `externalId eq …` filters read these indexes.
    CONSTRAINT scim_users_user_name_key UNIQUE (org_id, user_name_key),
    CONSTRAINT scim_users_external_id_key UNIQUE (org_id, external_id)
);

CREATE TABLE scim_groups (
    org_id           UUID             NOT NULL,
    id               UUID             NOT NULL,
    display_name     TEXT             NOT NULL,
    display_name_key TEXT COLLATE "C" NOT NULL,
    external_id      TEXT COLLATE "C",
    -- The roles the org maps the group to, space-separated (role names hold no spaces).
    roles            TEXT             NOT NULL,
    version          BIGINT           NOT NULL CHECK (version >= 1),
    created_at       TIMESTAMPTZ      NOT NULL,
    updated_at       TIMESTAMPTZ      NOT NULL,
    CONSTRAINT scim_groups_pkey PRIMARY KEY (org_id, id),
    CONSTRAINT scim_groups_display_name_key UNIQUE (org_id, display_name_key),
    CONSTRAINT scim_groups_external_id_key UNIQUE (org_id, external_id)
);

CREATE TABLE scim_group_members (
    org_id   UUID NOT NULL,
    group_id UUID NOT NULL,
    user_id  UUID NOT NULL,
    CONSTRAINT scim_group_members_pkey PRIMARY KEY (org_id, group_id, user_id),
    CONSTRAINT scim_group_members_group_fkey FOREIGN KEY (org_id, group_id)
        REFERENCES scim_groups (org_id, id) ON DELETE CASCADE,
    CONSTRAINT scim_group_members_user_fkey FOREIGN KEY (org_id, user_id)
        REFERENCES scim_users (org_id, user_id) ON DELETE CASCADE
);

-- "Which groups is this user in" (roles are recomputed from it) reads this index.
CREATE INDEX scim_group_members_user_idx ON scim_group_members (org_id, user_id, group_id);
