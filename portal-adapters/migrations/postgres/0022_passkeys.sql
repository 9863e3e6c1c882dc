-- Passkeys (WebAuthn credentials) for Postgres, and the state of passkey ceremonies.
--
-- A passkey belongs to one user; its credential id (chosen by the authenticator) is
-- unique across every user, so one credential never signs two accounts in. `credential`
-- is the relying party's serialized credential (public key, flags), opaque here;
-- `sign_count` only moves forward, in one conditional UPDATE, so a cloned authenticator
-- is refused even when two replicas race.
--
-- A ceremony (a registration, or a sign-in that names no account) keeps the relying
-- party's state between its two steps, found by the SHA-256 of the token the client
-- holds; taking it sets `used_at` in one conditional UPDATE, so it is used once.
-- Ids are UUIDs and times TIMESTAMPTZ, as in the other identity tables.

CREATE TABLE passkeys (
    id            UUID        NOT NULL,
    user_id       UUID        NOT NULL,
    credential_id BYTEA       NOT NULL CHECK (octet_length(credential_id) BETWEEN 1 AND 1023),
    name          TEXT        NOT NULL,
    credential    TEXT        NOT NULL,
    sign_count    BIGINT      NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    CONSTRAINT passkeys_pkey PRIMARY KEY (id),
    CONSTRAINT passkeys_credential_id_key UNIQUE (credential_id)
);

-- A user's passkeys, oldest first.
CREATE INDEX passkeys_user_idx ON passkeys (user_id, created_at);

CREATE TABLE passkey_ceremonies (
    token_hash BYTEA       NOT NULL CHECK (octet_length(token_hash) = 32),
    purpose    TEXT        NOT NULL,
    user_id    UUID,
    state      TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    CONSTRAINT passkey_ceremonies_pkey PRIMARY KEY (token_hash)
);

-- Pruning deletes by expiry.
CREATE INDEX passkey_ceremonies_expiry_idx ON passkey_ceremonies (expires_at);
