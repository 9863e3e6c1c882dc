-- Each org's MFA policy for Postgres: whether its members must have a confirmed second
-- factor (an org without a row requires none). MFA challenges of sign-in are single-use
-- tokens of purpose `mfa_challenge` in `one_time_tokens` (0010), and need no table.
-- Ids are UUIDs and times TIMESTAMPTZ, as in the other identity tables.

CREATE TABLE org_mfa_policies (
    org_id     UUID        NOT NULL,
    required   BOOLEAN     NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT org_mfa_policies_pkey PRIMARY KEY (org_id)
);
