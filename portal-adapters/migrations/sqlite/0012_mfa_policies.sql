-- Each org's MFA policy for SQLite: whether its members must have a confirmed second
-- factor (an org without a row requires none). MFA challenges of sign-in are single-use
-- tokens of purpose `mfa_challenge` in `one_time_tokens` (0010), and need no table.
-- Times are INTEGER Unix microseconds and ids 16-byte BLOBs, as in the other identity tables.

CREATE TABLE org_mfa_policies (
    org_id     BLOB    NOT NULL PRIMARY KEY CHECK (length(org_id) = 16),
    required   INTEGER NOT NULL CHECK (required IN (0, 1)),
    updated_at INTEGER NOT NULL
) STRICT;
