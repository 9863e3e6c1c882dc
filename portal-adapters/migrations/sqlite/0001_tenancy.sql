-- Tenancy for SQLite: organizations, users, memberships with their roles, invitations.
--
-- Ids are 16-byte BLOBs holding the UUID behind each typed id, so rows sort exactly as
-- the ids do. Times are INTEGER Unix microseconds, so every value reads back equal to
-- the value written. Tables are STRICT, so a value of the wrong type is refused on write.
--
-- Unique constraints are named because the store maps a violation to a semantic
-- conflict by what was violated (SQLite reports the columns, Postgres the name).

CREATE TABLE organizations (
    id         BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    slug       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    -- A JSON object of string values (the org's `Metadata`).
    metadata   TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    created_at INTEGER NOT NULL,
    CONSTRAINT organizations_slug_key UNIQUE (slug)
) STRICT;

CREATE TABLE users (
    id           BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    -- Normalized (trimmed, lowercased) by `Email::new` before it gets here.
    email        TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
) STRICT;

CREATE TABLE memberships (
    org_id     BLOB    NOT NULL REFERENCES organizations (id),
    user_id    BLOB    NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
) STRICT, WITHOUT ROWID;

-- "Which orgs does this user belong to" reads this index.
CREATE INDEX memberships_user_id_idx ON memberships (user_id, org_id);

-- Roles live in their own table, one row per role, so that "who holds role X in this
-- org" (the last-owner rule asks it on every demotion) is an index lookup rather than
-- a scan of every membership. They go with their membership when it is deleted.
CREATE TABLE membership_roles (
    org_id  BLOB NOT NULL,
    user_id BLOB NOT NULL,
    role    TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id, role),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE INDEX membership_roles_role_idx ON membership_roles (org_id, role);

CREATE TABLE invitations (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    org_id      BLOB    NOT NULL REFERENCES organizations (id),
    email       TEXT    NOT NULL,
    -- The invited roles, space-separated (role names hold no spaces). They are only
    -- ever read with the invitation, never searched.
    roles       TEXT    NOT NULL,
    -- The inviter's `Principal` in its stable string form (`usr_…`, `key_…@org_…`, `svc:…`).
    invited_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'accepted', 'revoked')),
    -- Who accepted it. No foreign key: the column records history, and the user's
    -- membership, written in the same transaction, already references them.
    accepted_by BLOB,
    accepted_at INTEGER,
    revoked_at  INTEGER,
    -- The SHA-256 of the invitation's token; the token itself is never stored.
    token_hash  BLOB    NOT NULL CHECK (length(token_hash) = 32),
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    -- Each state carries exactly the columns that describe it.
    CONSTRAINT invitations_state_columns_check CHECK (
        (state = 'pending' AND accepted_by IS NULL AND accepted_at IS NULL AND revoked_at IS NULL)
        OR (state = 'accepted' AND accepted_by IS NOT NULL AND accepted_at IS NOT NULL AND revoked_at IS NULL)
        OR (state = 'revoked' AND accepted_by IS NULL AND accepted_at IS NULL AND revoked_at IS NOT NULL)
    )
) STRICT;

-- Listing an org's invitations in id order reads this index.
CREATE INDEX invitations_org_id_idx ON invitations (org_id, id);
