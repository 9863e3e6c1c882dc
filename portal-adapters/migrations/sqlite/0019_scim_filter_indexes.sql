-- SCIM filters read indexes: `emails.value` and a user's `displayName` (`eq` and `sw`),
-- besides the unique indexes `userName` and `externalId` already read.
--
-- A user's email addresses are kept in the profile (JSON); this table holds each one's
-- lowercased address (lowercased by the store, as filters compare it) beside its user,
-- written in the same transaction as the user, and goes with the user (foreign key).
-- `display_name_key` is the user's lowercased `displayName`, NULL when it has none.
-- Rows written before this migration are lowercased here by SQL's `lower()` (ASCII
-- only in SQLite); the store rewrites a user's keys with every replace.

CREATE TABLE scim_user_emails (
    org_id    BLOB NOT NULL,
    user_id   BLOB NOT NULL,
    email_key TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id, email_key),
    FOREIGN KEY (org_id, user_id) REFERENCES scim_users (org_id, user_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- `emails.value eq …` and `emails.value sw …` (a range on the key) read this index.
CREATE INDEX scim_user_emails_key_idx ON scim_user_emails (org_id, email_key, user_id);

INSERT OR IGNORE INTO scim_user_emails (org_id, user_id, email_key)
SELECT u.org_id, u.user_id, lower(json_extract(e.value, '$.value'))
FROM scim_users u, json_each(u.profile, '$.emails') e
WHERE json_extract(e.value, '$.value') IS NOT NULL;

ALTER TABLE scim_users ADD COLUMN display_name_key TEXT;
UPDATE scim_users SET display_name_key = lower(json_extract(profile, '$.display_name'));

-- A user's `displayName eq …` and `displayName sw …` read this index.
CREATE INDEX scim_users_display_name_idx ON scim_users (org_id, display_name_key);
