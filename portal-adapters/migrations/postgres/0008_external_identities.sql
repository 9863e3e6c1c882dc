-- External identities for Postgres: an identity provider's (issuer, subject) linked to a
-- portal user, so bearer tokens map to users.
--
-- Issuer and subject use the "C" collation, so equality and order are byte for byte
-- whatever the database's default collation, as the port asks. The user id is a UUID and
-- the time TIMESTAMPTZ, as in the tenancy tables. There is no foreign key to users: the
-- store stands alone.

CREATE TABLE external_identities (
    issuer      TEXT COLLATE "C" NOT NULL CHECK (octet_length(issuer) BETWEEN 1 AND 2048),
    subject     TEXT COLLATE "C" NOT NULL CHECK (octet_length(subject) BETWEEN 1 AND 255),
    user_id     UUID             NOT NULL,
    created_at  TIMESTAMPTZ      NOT NULL,
    CONSTRAINT external_identities_pkey PRIMARY KEY (issuer, subject)
);

-- Listing a user's links reads this index.
CREATE INDEX external_identities_user_idx ON external_identities (user_id, issuer, subject);
