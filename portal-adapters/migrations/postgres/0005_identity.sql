-- Identity for Postgres: password hashes, sessions, API keys and failed sign-ins.
--
-- Ids are UUIDs and times TIMESTAMPTZ, as in the tenancy tables. Tokens and keys are
-- never stored: only their SHA-256 (`token_hash`, 32 bytes), which is unique so a
-- lookup finds one row. Password hashes are PHC strings (argon2id). There are no
-- foreign keys to users or organizations: the stores stand alone, as the support grants
-- do. Failed sign-ins live here, not in a replica's memory, so throttling holds across
-- replicas.

CREATE TABLE passwords (
    user_id     UUID        NOT NULL,
    -- The normalized login email; one account per email.
    email       TEXT        NOT NULL,
    hash        TEXT        NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT passwords_pkey PRIMARY KEY (user_id),
    CONSTRAINT passwords_email_key UNIQUE (email)
);

CREATE TABLE sessions (
    id                   UUID        NOT NULL,
    user_id              UUID        NOT NULL,
    token_hash           BYTEA       NOT NULL CHECK (octet_length(token_hash) = 32),
    active_org           UUID,
    created_at           TIMESTAMPTZ NOT NULL,
    last_seen_at         TIMESTAMPTZ NOT NULL,
    absolute_expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at           TIMESTAMPTZ,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);

-- Listing and revoking a user's sessions reads this index.
CREATE INDEX sessions_user_idx ON sessions (user_id, id);

CREATE TABLE api_keys (
    id            UUID        NOT NULL,
    org_id        UUID        NOT NULL,
    name          TEXT        NOT NULL,
    prefix        TEXT        NOT NULL,
    token_hash    BYTEA       NOT NULL CHECK (octet_length(token_hash) = 32),
    -- `object action` strings, in the order given.
    scopes        TEXT[]      NOT NULL,
    created_by    TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_token_hash_key UNIQUE (token_hash)
);

-- Listing an org's keys in id order reads this index.
CREATE INDEX api_keys_org_idx ON api_keys (org_id, id);

-- One row per failed sign-in, per throttle key (`account:<email>` or `source:<ip>`):
-- a sliding window is a count of the rows since a time.
CREATE TABLE login_failures (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY,
    throttle_key  TEXT        NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    CONSTRAINT login_failures_pkey PRIMARY KEY (id)
);

CREATE INDEX login_failures_key_idx ON login_failures (throttle_key, at);
-- Pruning old failures reads this one.
CREATE INDEX login_failures_at_idx ON login_failures (at);
