-- Policy for Postgres: the lines roles are granted by, the ordered log of changes to
-- them, and the revision counter that orders those changes.
--
-- A line is stored as casbin writes it: `p` lines keep the rule's subject, domain,
-- object, action and effect (`allow` or `deny`); `g` lines keep the inheriting role in
-- `subject`, the parent role in `object`, and empty strings in `action` and `effect`, so
-- every column is NOT NULL and the primary key covers a line's whole identity. The
-- domain is its string form: `platform`, `*` (every org) or the org's id (`org_…`).

CREATE TABLE policy_lines (
    domain  TEXT NOT NULL,
    ptype   TEXT NOT NULL CHECK (ptype IN ('p', 'g')),
    subject TEXT NOT NULL,
    object  TEXT NOT NULL,
    action  TEXT NOT NULL,
    effect  TEXT NOT NULL,
    -- The key leads with the domain, so it is also the index `load_domain` reads.
    CONSTRAINT policy_lines_pkey PRIMARY KEY (domain, ptype, subject, object, action, effect),
    CONSTRAINT policy_lines_shape_check CHECK (
        (ptype = 'p' AND effect IN ('allow', 'deny'))
        OR (ptype = 'g' AND action = '' AND effect = '')
    )
);

-- One row per change that changed a line, in revision order. `added` and `removed` are
-- JSON arrays of the lines (portal-core's `PolicyLine` in its serde form). Rows up to
-- `policy_revision.trimmed_through` may have been deleted.
CREATE TABLE policy_changes (
    revision BIGINT NOT NULL CHECK (revision > 0),
    added    JSONB  NOT NULL CHECK (jsonb_typeof(added) = 'array'),
    removed  JSONB  NOT NULL CHECK (jsonb_typeof(removed) = 'array'),
    CONSTRAINT policy_changes_pkey PRIMARY KEY (revision)
);

-- The single row holding the current revision and how far the change log was trimmed.
-- Every `apply` locks it first (`SELECT … FOR UPDATE`) and updates it in the same
-- transaction, so writers on every replica take turns and revisions commit in order.
CREATE TABLE policy_revision (
    id              BOOLEAN NOT NULL DEFAULT TRUE CHECK (id),
    value           BIGINT  NOT NULL CHECK (value >= 0),
    trimmed_through BIGINT  NOT NULL CHECK (trimmed_through >= 0 AND trimmed_through <= value),
    CONSTRAINT policy_revision_pkey PRIMARY KEY (id)
);

INSERT INTO policy_revision (id, value, trimmed_through) VALUES (TRUE, 0, 0);
