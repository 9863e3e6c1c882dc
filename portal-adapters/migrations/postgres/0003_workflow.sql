-- Workflows for Postgres: instances, their history, their audit records, the
-- idempotency records of transitions and votes, and vote delegations.
--
-- Ids are UUIDs and times TIMESTAMPTZ, as in the tenancy tables. Principals are kept in
-- their stable string form (`usr_…`, `key_…@org_…`, `svc:…`). Payloads, votes, inputs
-- and whole records are JSONB. There are no foreign keys to organizations or users: the
-- workflow store is usable without the tenancy tables, and its rows record history.

CREATE TABLE workflow_instances (
    -- Ids are unique across orgs; every read also matches `org_id`.
    id                 UUID        NOT NULL,
    org_id             UUID        NOT NULL,
    definition         TEXT        NOT NULL,
    definition_version BIGINT      NOT NULL CHECK (definition_version >= 0),
    state              TEXT        NOT NULL,
    -- The optimistic concurrency token: `apply` updates the row only at the version its
    -- caller read.
    version            BIGINT      NOT NULL CHECK (version >= 1),
    assignee           UUID,
    payload            JSONB       NOT NULL,
    created_by         TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    state_entered_at   TIMESTAMPTZ NOT NULL,
    due_at             TIMESTAMPTZ,
    -- The votes cast in the current state, oldest first: a JSON array of `Vote`.
    votes              JSONB       NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(votes) = 'array'),
    CONSTRAINT workflow_instances_pkey PRIMARY KEY (id)
);

-- Listing an org's instances in id order reads this index.
CREATE INDEX workflow_instances_org_id_idx ON workflow_instances (org_id, id);
-- Listing an org's overdue instances (`due_at <= now`) reads this one.
CREATE INDEX workflow_instances_due_at_idx ON workflow_instances (org_id, due_at) WHERE due_at IS NOT NULL;
-- Listing what is assigned to a user reads this one.
CREATE INDEX workflow_instances_assignee_idx ON workflow_instances (org_id, assignee, id) WHERE assignee IS NOT NULL;

-- One row per version of an instance: its creation, then every transition and vote.
CREATE TABLE workflow_history (
    instance_id     UUID        NOT NULL,
    version         BIGINT      NOT NULL CHECK (version >= 1),
    org_id          UUID        NOT NULL,
    -- `EntryKind` in its serde form, such as `{"kind":"transition"}`.
    kind            JSONB       NOT NULL,
    transition      TEXT        NOT NULL,
    from_state      TEXT        NOT NULL,
    to_state        TEXT        NOT NULL,
    actor           TEXT        NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    input           JSONB       NOT NULL,
    request_id      UUID        NOT NULL,
    idempotency_key TEXT,
    CONSTRAINT workflow_history_pkey PRIMARY KEY (instance_id, version)
);

-- The audit records of instances, in the order they were written (`seq`). The record
-- is the whole `DiagnosticEvent` in its serde form.
CREATE TABLE workflow_audit (
    seq         BIGINT      GENERATED ALWAYS AS IDENTITY,
    instance_id UUID        NOT NULL,
    org_id      UUID        NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    event       JSONB       NOT NULL,
    CONSTRAINT workflow_audit_pkey PRIMARY KEY (seq)
);

CREATE INDEX workflow_audit_instance_idx ON workflow_audit (instance_id, seq);

-- The committed result of each request that came with an idempotency key. Keys are
-- scoped to the org and the principal; the primary key is what makes two racing
-- duplicates commit once (the second insert waits for the first and then conflicts).
CREATE TABLE workflow_idempotency (
    org_id          UUID        NOT NULL,
    principal       TEXT        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    -- SHA-256 of the canonical request.
    fingerprint     BYTEA       NOT NULL CHECK (octet_length(fingerprint) = 32),
    -- The instance as the request left it (`Instance` in its serde form).
    response        JSONB       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT workflow_idempotency_pkey PRIMARY KEY (org_id, principal, idempotency_key)
);

-- At most one delegation from a member to a member in an org; a new one replaces it.
CREATE TABLE workflow_delegations (
    org_id     UUID        NOT NULL,
    from_user  UUID        NOT NULL,
    to_user    UUID        NOT NULL,
    starts_at  TIMESTAMPTZ NOT NULL,
    ends_at    TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT workflow_delegations_pkey PRIMARY KEY (org_id, from_user, to_user)
);
