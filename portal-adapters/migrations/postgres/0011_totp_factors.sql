-- TOTP second factors for Postgres: one per user, pending until confirmed with a first
-- code, with the last accepted time step (a code of that step or an earlier one is a
-- replay). Recovery codes are kept only as their SHA-256; a used one keeps its `used_at`.
-- Ids are UUIDs and times TIMESTAMPTZ, as in the other identity tables.

CREATE TABLE totp_factors (
    user_id      UUID        NOT NULL,
    secret       BYTEA       NOT NULL CHECK (octet_length(secret) = 20),
    created_at   TIMESTAMPTZ NOT NULL,
    confirmed_at TIMESTAMPTZ,
    last_step    BIGINT      CHECK (last_step >= 0),
    CONSTRAINT totp_factors_pkey PRIMARY KEY (user_id)
);

CREATE TABLE totp_recovery_codes (
    user_id    UUID        NOT NULL,
    code_hash  BYTEA       NOT NULL CHECK (octet_length(code_hash) = 32),
    used_at    TIMESTAMPTZ,
    CONSTRAINT totp_recovery_codes_pkey PRIMARY KEY (user_id, code_hash)
);
