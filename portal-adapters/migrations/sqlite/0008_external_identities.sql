-- External identities for SQLite: an identity provider's (issuer, subject) linked to a
-- portal user, so bearer tokens map to users.
--
-- Issuer and subject are compared byte for byte (TEXT's default BINARY collation), as the
-- port asks. The user id is a 16-byte BLOB and the time INTEGER Unix microseconds, as in
-- the tenancy tables. There is no foreign key to users: the store stands alone.

CREATE TABLE external_identities (
    issuer      TEXT    NOT NULL CHECK (length(CAST(issuer AS BLOB)) BETWEEN 1 AND 2048),
    subject     TEXT    NOT NULL CHECK (length(CAST(subject AS BLOB)) BETWEEN 1 AND 255),
    user_id     BLOB    NOT NULL CHECK (length(user_id) = 16),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
) STRICT, WITHOUT ROWID;

-- Listing a user's links reads this index.
CREATE INDEX external_identities_user_idx ON external_identities (user_id, issuer, subject);
