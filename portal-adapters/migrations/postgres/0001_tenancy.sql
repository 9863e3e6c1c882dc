-- Tenancy for Postgres: organizations, users, memberships with their roles, invitations.
--
-- Ids are UUIDs (the value behind each typed id), which Postgres orders byte by byte, as
-- the ids themselves sort. Times are TIMESTAMPTZ: microsecond precision, which is what
-- portal-core's `Clock` produces, so every value reads back equal to the value written.
--
-- Unique constraints are named because the store maps a violation to a semantic
-- conflict by the constraint's name.

CREATE TABLE organizations (
    id         UUID        NOT NULL,
    slug       TEXT        NOT NULL,
    name       TEXT        NOT NULL,
    -- A JSON object of string values (the org's `Metadata`).
    metadata   JSONB       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT organizations_pkey PRIMARY KEY (id),
    CONSTRAINT organizations_slug_key UNIQUE (slug)
);

CREATE TABLE users (
    id           UUID        NOT NULL,
    -- Normalized (trimmed, lowercased) by `Email::new` before it gets here.
    email        TEXT        NOT NULL,
    display_name TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE memberships (
    org_id     UUID        NOT NULL REFERENCES organizations (id),
    user_id    UUID        NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT memberships_pkey PRIMARY KEY (org_id, user_id)
);

-- "Which orgs does this user belong to" reads this index.
CREATE INDEX memberships_user_id_idx ON memberships (user_id, org_id);

-- Roles live in their own table, one row per role, so that "who holds role X in this
-- org" (the last-owner rule asks it on every demotion) is an index lookup rather than
-- a scan of every membership. They go with their membership when it is deleted.
CREATE TABLE membership_roles (
    org_id  UUID NOT NULL,
    user_id UUID NOT NULL,
    role    TEXT NOT NULL,
    CONSTRAINT membership_roles_pkey PRIMARY KEY (org_id, user_id, role),
    CONSTRAINT membership_roles_membership_fkey FOREIGN KEY (org_id, user_id)
        REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);

CREATE INDEX membership_roles_role_idx ON membership_roles (org_id, role);

CREATE TABLE invitations (
    id          UUID        NOT NULL,
    org_id      UUID        NOT NULL REFERENCES organizations (id),
    email       TEXT        NOT NULL,
    -- The invited roles. They are only ever read with the invitation, never searched.
    roles       TEXT[]      NOT NULL,
    -- The inviter's `Principal` in its stable string form (`usr_…`, `key_…@org_…`, `svc:…`).
    invited_by  TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    state       TEXT        NOT NULL CHECK (state IN ('pending', 'accepted', 'revoked')),
    -- Who accepted it. No foreign key: the column records history, and the user's
    -- membership, written in the same transaction, already references them.
    accepted_by UUID,
    accepted_at TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ,
    -- The SHA-256 of the invitation's token; the token itself is never stored.
    token_hash  BYTEA       NOT NULL CHECK (octet_length(token_hash) = 32),
    CONSTRAINT invitations_pkey PRIMARY KEY (id),
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    -- Each state carries exactly the columns that describe it.
    CONSTRAINT invitations_state_columns_check CHECK (
        (state = 'pending' AND accepted_by IS NULL AND accepted_at IS NULL AND revoked_at IS NULL)
        OR (state = 'accepted' AND accepted_by IS NOT NULL AND accepted_at IS NOT NULL AND revoked_at IS NULL)
        OR (state = 'revoked' AND accepted_by IS NULL AND accepted_at IS NULL AND revoked_at IS NOT NULL)
    )
);

-- Listing an org's invitations in id order reads this index.
CREATE INDEX invitations_org_id_idx ON invitations (org_id, id);
