-- Workflows for SQLite: instances, their history, their audit records, the idempotency
-- records of transitions and votes, and vote delegations.
--
-- Ids are 16-byte BLOBs and times INTEGER Unix microseconds, as in the tenancy tables.
-- Principals are kept in their stable string form (`usr_…`, `key_…@org_…`, `svc:…`).
-- Payloads, votes, inputs and whole records are JSON text, checked with `json_valid`.
-- There are no foreign keys to organizations or users: the workflow store is usable
-- without the tenancy tables, and its rows record history.

CREATE TABLE workflow_instances (
    -- Ids are unique across orgs; every read also matches `org_id`.
    id                 BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    org_id             BLOB    NOT NULL CHECK (length(org_id) = 16),
    definition         TEXT    NOT NULL,
    definition_version INTEGER NOT NULL CHECK (definition_version >= 0),
    state              TEXT    NOT NULL,
    -- The optimistic concurrency token: `apply` updates the row only at the version its
    -- caller read.
    version            INTEGER NOT NULL CHECK (version >= 1),
    assignee           BLOB    CHECK (assignee IS NULL OR length(assignee) = 16),
    payload            TEXT    NOT NULL CHECK (json_valid(payload)),
    created_by         TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    state_entered_at   INTEGER NOT NULL,
    due_at             INTEGER,
    -- The votes cast in the current state, oldest first: a JSON array of `Vote`.
    votes              TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(votes) AND json_type(votes) = 'array')
) STRICT;

-- Listing an org's instances in id order reads this index.
CREATE INDEX workflow_instances_org_id_idx ON workflow_instances (org_id, id);
-- Listing an org's overdue instances (`due_at <= now`) reads this one.
CREATE INDEX workflow_instances_due_at_idx ON workflow_instances (org_id, due_at) WHERE due_at IS NOT NULL;
-- Listing what is assigned to a user reads this one.
CREATE INDEX workflow_instances_assignee_idx ON workflow_instances (org_id, assignee, id) WHERE assignee IS NOT NULL;

-- One row per version of an instance: its creation, then every transition and vote.
CREATE TABLE workflow_history (
    instance_id     BLOB    NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    org_id          BLOB    NOT NULL,
    -- `EntryKind` in its serde form, such as `{"kind":"transition"}`.
    kind            TEXT    NOT NULL CHECK (json_valid(kind)),
    transition      TEXT    NOT NULL,
    from_state      TEXT    NOT NULL,
    to_state        TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    input           TEXT    NOT NULL CHECK (json_valid(input)),
    request_id      BLOB    NOT NULL CHECK (length(request_id) = 16),
    idempotency_key TEXT,
    PRIMARY KEY (instance_id, version)
) STRICT, WITHOUT ROWID;

-- The audit records of instances, in the order they were written (`seq`). The record
-- is the whole `DiagnosticEvent` in its serde form.
CREATE TABLE workflow_audit (
    seq         INTEGER NOT NULL PRIMARY KEY,
    instance_id BLOB    NOT NULL,
    org_id      BLOB    NOT NULL,
    at          INTEGER NOT NULL,
    event       TEXT    NOT NULL CHECK (json_valid(event))
) STRICT;

CREATE INDEX workflow_audit_instance_idx ON workflow_audit (instance_id, seq);

-- The committed result of each request that came with an idempotency key. Keys are
-- scoped to the org and the principal; the primary key is what makes two racing
-- duplicates commit once.
CREATE TABLE workflow_idempotency (
    org_id          BLOB    NOT NULL,
    principal       TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    -- SHA-256 of the canonical request.
    fingerprint     BLOB    NOT NULL CHECK (length(fingerprint) = 32),
    -- The instance as the request left it (`Instance` in its serde form).
    response        TEXT    NOT NULL CHECK (json_valid(response)),
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (org_id, principal, idempotency_key)
) STRICT, WITHOUT ROWID;

-- At most one delegation from a member to a member in an org; a new one replaces it.
CREATE TABLE workflow_delegations (
    org_id     BLOB    NOT NULL,
    from_user  BLOB    NOT NULL,
    to_user    BLOB    NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, from_user, to_user)
) STRICT, WITHOUT ROWID;
