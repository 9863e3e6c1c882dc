//! `SqliteScimStore`: an org's SCIM users and groups, in SQLite.

use async_trait::async_trait;
use portal_core::access::RoleName;
use portal_core::ids::{GroupId, OrgId, UserId};
use portal_core::scim::filter::Attr;
use portal_core::scim::{Lookup, ScimGroup, ScimProfile, ScimStore, ScimUser, user_name_key};
use portal_core::store::{Conflict, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use super::codec::{WriteTx, begin_write, blob, db, get, micros, time_at, uuid_at};
use crate::sql::unique_violation;

/// The backend name this store reports in errors.
const BACKEND: &str = "sqlite";

/// A [`ScimStore`] on a SQLite database migrated with [`migrate`](super::migrate).
///
/// Every write is one `BEGIN IMMEDIATE` transaction. Uniqueness per org is kept by unique
/// constraints on the lowercased names and the external ids; a group's members reference
/// the org's SCIM users (a foreign key that cascades when a user is deleted).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portal_adapters::sqlite::{self, SqliteScimStore};
///
/// let pool = sqlite::connect("sqlite://portal.db").await?;
/// sqlite::migrate(&pool).await?;
/// let store = SqliteScimStore::new(pool);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteScimStore {
    pool: SqlitePool,
}

impl SqliteScimStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The plan the database makes for [`find_users`](ScimStore::find_users) with
    /// `lookup` (`EXPLAIN QUERY PLAN`), one line per step: which index a SCIM filter reads.
    /// `None` for a lookup no user matches (no query runs).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] and [`StoreError::Backend`], as every read.
    pub async fn explain_find_users(&self, org: OrgId, lookup: &Lookup) -> Result<Option<String>, StoreError> {
        let Some((sql, end)) = find_users_sql(lookup) else {
            return Ok(None);
        };
        let rows = lookup_query(sql, true, org, lookup, end, None, 500)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        plan_text(&rows).map(Some)
    }

    /// The plan the database makes for [`find_groups`](ScimStore::find_groups) with
    /// `lookup`, as [`explain_find_users`](Self::explain_find_users).
    ///
    /// # Errors
    ///
    /// As [`explain_find_users`](Self::explain_find_users).
    pub async fn explain_find_groups(&self, org: OrgId, lookup: &Lookup) -> Result<Option<String>, StoreError> {
        let Some((sql, end)) = find_groups_sql(lookup) else {
            return Ok(None);
        };
        let rows = lookup_query(sql, true, org, lookup, end, None, 500)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        plan_text(&rows).map(Some)
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The columns a user is read from.
macro_rules! user_columns {
    () => {
        "org_id, user_id, user_name, external_id, active, profile, version, created_at, updated_at"
    };
}
/// The columns a group is read from.
macro_rules! group_columns {
    () => {
        "org_id, id, display_name, external_id, roles, version, created_at, updated_at"
    };
}

/// The filter lookups SQL answers: `?1` org, `?2` key, `?3` after, `?4` limit, `?5` the
/// end of a prefix's range. Each reads the index named beside it (`EXPLAIN` in the
/// tests), never every row of the org.
macro_rules! find_users_where {
    ($cond:literal) => {
        find_users_where!("scim_users", $cond)
    };
    ($from:literal, $cond:literal) => {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM ",
            $from,
            " WHERE org_id = ?1 AND ",
            $cond,
            " AND (?3 IS NULL OR user_id > ?3) ORDER BY user_id LIMIT ?4"
        )
    };
}
/// As [`find_users_where`], for groups.
macro_rules! find_groups_where {
    ($cond:literal) => {
        concat!(
            "SELECT ",
            group_columns!(),
            " FROM scim_groups WHERE org_id = ?1 AND ",
            $cond,
            " AND (?3 IS NULL OR id > ?3) ORDER BY id LIMIT ?4"
        )
    };
}

/// The SQL of a user lookup (`None`: a lookup no user matches), and the end of its range
/// for a prefix.
fn find_users_sql(lookup: &Lookup) -> Option<(&'static str, Option<&str>)> {
    Some(match lookup {
        Lookup::Equals { attr, .. } => (
            match attr {
                // scim_users_user_name_key
                Attr::UserName => find_users_where!("user_name_key = ?2"),
                // scim_users_external_id_key
                Attr::ExternalId => find_users_where!("external_id = ?2"),
                // scim_users_display_name_idx
                // Named: without statistics SQLite would rather walk the org's users in
                // id order than trust an index that is not unique.
                Attr::DisplayName => find_users_where!(
                    "scim_users INDEXED BY scim_users_display_name_idx",
                    "display_name_key = ?2"
                ),
                // scim_user_emails_key_idx
                Attr::EmailsValue => find_users_where!(
                    "user_id IN (SELECT user_id FROM scim_user_emails WHERE org_id = ?1 AND email_key = ?2)"
                ),
                Attr::Id | Attr::MembersValue => return None,
            },
            None,
        ),
        Lookup::StartsWith { attr, end, .. } => (
            match attr {
                Attr::UserName => find_users_where!("user_name_key >= ?2 AND user_name_key < ?5"),
                Attr::ExternalId => find_users_where!("external_id >= ?2 AND external_id < ?5"),
                Attr::DisplayName => find_users_where!(
                    "scim_users INDEXED BY scim_users_display_name_idx",
                    "display_name_key >= ?2 AND display_name_key < ?5"
                ),
                Attr::EmailsValue => find_users_where!(
                    "user_id IN (SELECT user_id FROM scim_user_emails WHERE org_id = ?1 AND email_key >= ?2 \
                     AND email_key < ?5)"
                ),
                Attr::Id | Attr::MembersValue => return None,
            },
            Some(end.as_str()),
        ),
        Lookup::Member(_) => return None,
    })
}

/// The SQL of a group lookup (`None`: a lookup no group matches), and the end of its
/// range for a prefix.
fn find_groups_sql(lookup: &Lookup) -> Option<(&'static str, Option<&str>)> {
    Some(match lookup {
        Lookup::Equals { attr, .. } => (
            match attr {
                // scim_groups_display_name_key
                Attr::DisplayName => find_groups_where!("display_name_key = ?2"),
                // scim_groups_external_id_key
                Attr::ExternalId => find_groups_where!("external_id = ?2"),
                Attr::UserName | Attr::EmailsValue | Attr::Id | Attr::MembersValue => return None,
            },
            None,
        ),
        Lookup::StartsWith { attr, end, .. } => (
            match attr {
                Attr::DisplayName => {
                    find_groups_where!("display_name_key >= ?2 AND display_name_key < ?5")
                }
                Attr::ExternalId => find_groups_where!("external_id >= ?2 AND external_id < ?5"),
                Attr::UserName | Attr::EmailsValue | Attr::Id | Attr::MembersValue => return None,
            },
            Some(end.as_str()),
        ),
        Lookup::Member(_) => (FIND_GROUPS_BY_MEMBER, None),
    })
}

/// The groups of `org` with `member`, read through `scim_group_members_user_idx`.
const FIND_GROUPS_BY_MEMBER: &str =
    find_groups_where!("id IN (SELECT group_id FROM scim_group_members WHERE org_id = ?1 AND user_id = ?2)");

/// A lookup's query, its parameters bound (`?2` the key, or the member's id); with
/// `explain`, the database's plan of it instead.
fn lookup_query<'a>(
    sql: &'static str,
    explain: bool,
    org: OrgId,
    lookup: &'a Lookup,
    end: Option<&'a str>,
    after: Option<uuid::Uuid>,
    limit: usize,
) -> sqlx::query::Query<'a, Sqlite, <Sqlite as sqlx::Database>::Arguments> {
    let query = if explain {
        sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
    } else {
        sqlx::query(sql)
    };
    let query = query.bind(blob(org.as_uuid()));
    let query = match lookup {
        Lookup::Equals { key, .. } | Lookup::StartsWith { key, .. } => query.bind(key.as_str()),
        Lookup::Member(member) => query.bind(blob(member.as_uuid())),
    };
    let query = query
        .bind(after.map(blob))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    match end {
        Some(end) => query.bind(end),
        None => query,
    }
}

/// The plan's lines, as `EXPLAIN` answers them.
fn plan_text(rows: &[SqliteRow]) -> Result<String, StoreError> {
    let lines = rows
        .iter()
        .map(|row| get::<String>(row, "detail"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lines.join("\n"))
}

/// Writes the user's email keys (after deleting the old ones, on replace).
async fn write_emails(conn: &mut SqliteConnection, user: &ScimUser, replace: bool) -> Result<(), StoreError> {
    if replace {
        sqlx::query("DELETE FROM scim_user_emails WHERE org_id = ?1 AND user_id = ?2")
            .bind(blob(user.org.as_uuid()))
            .bind(blob(user.user.as_uuid()))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    let mut keys: Vec<String> = user.profile.emails.iter().map(|e| e.value.to_lowercase()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        sqlx::query("INSERT INTO scim_user_emails (org_id, user_id, email_key) VALUES (?1, ?2, ?3)")
            .bind(blob(user.org.as_uuid()))
            .bind(blob(user.user.as_uuid()))
            .bind(key)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// The key a user's `displayName` is found under.
fn display_name_key(user: &ScimUser) -> Option<String> {
    user.profile.display_name.as_deref().map(str::to_lowercase)
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt { backend: BACKEND, what }
}

/// The conflict a write's error stands for: a unique violation names its columns.
fn write_error(err: sqlx::Error, duplicate: &'static str) -> StoreError {
    if let Some(columns) = unique_violation(&err) {
        let entity = if columns.contains("user_name_key") {
            "scim_user_name"
        } else if columns.contains("display_name_key") {
            "scim_group_name"
        } else if columns.contains("external_id") {
            "scim_external_id"
        } else {
            duplicate
        };
        return StoreError::Conflict(Conflict::AlreadyExists { entity });
    }
    if err.as_database_error().is_some_and(|e| e.is_foreign_key_violation()) {
        return StoreError::NotFound { entity: "scim_user" };
    }
    db(err)
}

fn version_of(row: &SqliteRow) -> Result<u64, StoreError> {
    let version: i64 = get(row, "version")?;
    u64::try_from(version).map_err(|_| corrupt(format!("SCIM version {version}")))
}

fn stored_version(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Backend {
        backend: BACKEND,
        source: format!("version {version} does not fit").into(),
    })
}

fn user_from_row(row: &SqliteRow) -> Result<ScimUser, StoreError> {
    let user_name: String = get(row, "user_name")?;
    let what = format_args!("SCIM user `{user_name}`");
    let profile: String = get(row, "profile")?;
    let profile: ScimProfile =
        serde_json::from_str(&profile).map_err(|err| corrupt(format!("profile of {what}: {err}")))?;
    let active: i64 = get(row, "active")?;
    Ok(ScimUser {
        org: OrgId::from_uuid(uuid_at(row, "org_id")?),
        user: UserId::from_uuid(uuid_at(row, "user_id")?),
        external_id: get(row, "external_id")?,
        active: active != 0,
        profile,
        version: version_of(row)?,
        created_at: time_at(row, "created_at", &what)?,
        updated_at: time_at(row, "updated_at", &what)?,
        user_name,
    })
}

fn profile_text(user: &ScimUser) -> Result<String, StoreError> {
    serde_json::to_string(&user.profile).map_err(|err| StoreError::Backend {
        backend: BACKEND,
        source: Box::new(err),
    })
}

fn roles_text(roles: &[RoleName]) -> String {
    roles.iter().map(RoleName::as_str).collect::<Vec<_>>().join(" ")
}

async fn group_from_row(conn: &mut SqliteConnection, row: &SqliteRow) -> Result<ScimGroup, StoreError> {
    let display_name: String = get(row, "display_name")?;
    let what = format!("SCIM group `{display_name}`");
    let org = OrgId::from_uuid(uuid_at(row, "org_id")?);
    let id = GroupId::from_uuid(uuid_at(row, "id")?);
    let roles_text: String = get(row, "roles")?;
    let roles = roles_text
        .split_whitespace()
        .map(|r| RoleName::new(r).map_err(|_| corrupt(format!("role `{r}` of {what}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let members =
        sqlx::query("SELECT user_id FROM scim_group_members WHERE org_id = ?1 AND group_id = ?2 ORDER BY user_id")
            .bind(blob(org.as_uuid()))
            .bind(blob(id.as_uuid()))
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
            .iter()
            .map(|r| uuid_at(r, "user_id").map(UserId::from_uuid))
            .collect::<Result<Vec<_>, _>>()?;
    Ok(ScimGroup {
        org,
        id,
        external_id: get(row, "external_id")?,
        members,
        roles,
        version: version_of(row)?,
        created_at: time_at(row, "created_at", &what)?,
        updated_at: time_at(row, "updated_at", &what)?,
        display_name,
    })
}

async fn groups_from_rows(conn: &mut SqliteConnection, rows: &[SqliteRow]) -> Result<Vec<ScimGroup>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(group_from_row(conn, row).await?);
    }
    Ok(out)
}

async fn insert_members(tx: &mut WriteTx, group: &ScimGroup) -> Result<(), StoreError> {
    let mut members = group.members.clone();
    members.sort();
    members.dedup();
    for member in members {
        sqlx::query("INSERT INTO scim_group_members (org_id, group_id, user_id) VALUES (?1, ?2, ?3)")
            .bind(blob(group.org.as_uuid()))
            .bind(blob(group.id.as_uuid()))
            .bind(blob(member.as_uuid()))
            .execute(&mut **tx)
            .await
            .map_err(|err| write_error(err, "scim_group"))?;
    }
    Ok(())
}

/// The version of the row, if there is one, read inside `tx`.
async fn current_version(
    tx: &mut WriteTx,
    sql: &'static str,
    org: OrgId,
    id: uuid::Uuid,
) -> Result<Option<u64>, StoreError> {
    let row = sqlx::query(sql)
        .bind(blob(org.as_uuid()))
        .bind(blob(id))
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    row.as_ref().map(version_of).transpose()
}

fn check_version(current: Option<u64>, expected: u64, entity: &'static str) -> Result<(), StoreError> {
    match current {
        None => Err(StoreError::NotFound { entity }),
        Some(current) if current != expected => Err(StoreError::Conflict(Conflict::Version { expected, current })),
        Some(_) => Ok(()),
    }
}

#[async_trait]
impl ScimStore for SqliteScimStore {
    async fn create_user(&self, user: &ScimUser) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO scim_users (org_id, user_id, user_name, user_name_key, external_id, active, profile, \
             version, created_at, updated_at, display_name_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .bind(blob(user.org.as_uuid()))
        .bind(blob(user.user.as_uuid()))
        .bind(&user.user_name)
        .bind(user_name_key(&user.user_name))
        .bind(&user.external_id)
        .bind(i64::from(user.active))
        .bind(profile_text(user)?)
        .bind(stored_version(user.version)?)
        .bind(micros(user.created_at))
        .bind(micros(user.updated_at))
        .bind(display_name_key(user))
        .execute(&mut *tx)
        .await
        .map_err(|err| write_error(err, "scim_user"))?;
        write_emails(&mut tx, user, false).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn get_user(&self, org: OrgId, user: UserId) -> Result<Option<ScimUser>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM scim_users WHERE org_id = ?1 AND user_id = ?2"
        ))
        .bind(blob(org.as_uuid()))
        .bind(blob(user.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_user_name(&self, org: OrgId, user_name: &str) -> Result<Option<ScimUser>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM scim_users WHERE org_id = ?1 AND user_name_key = ?2"
        ))
        .bind(blob(org.as_uuid()))
        .bind(user_name_key(user_name))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self, org: OrgId, after: Option<UserId>, limit: usize) -> Result<Vec<ScimUser>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM scim_users WHERE org_id = ?1 AND (?2 IS NULL OR user_id > ?2) \
             ORDER BY user_id LIMIT ?3"
        ))
        .bind(blob(org.as_uuid()))
        .bind(after.map(|a| blob(a.as_uuid())))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn find_users(
        &self,
        org: OrgId,
        lookup: &Lookup,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<ScimUser>, StoreError> {
        let Some((sql, end)) = find_users_sql(lookup) else {
            return Ok(Vec::new());
        };
        let rows = lookup_query(sql, false, org, lookup, end, after.map(|a| a.as_uuid()), limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn replace_user(&self, user: &ScimUser, expected: u64) -> Result<ScimUser, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let current = current_version(
            &mut tx,
            "SELECT version FROM scim_users WHERE org_id = ?1 AND user_id = ?2",
            user.org,
            user.user.as_uuid(),
        )
        .await?;
        check_version(current, expected, "scim_user")?;
        let row = sqlx::query(concat!(
            "UPDATE scim_users SET user_name = ?3, user_name_key = ?4, external_id = ?5, active = ?6, \
             profile = ?7, version = ?8, updated_at = ?9, display_name_key = ?10 WHERE org_id = ?1 AND user_id = ?2 \
             RETURNING ",
            user_columns!()
        ))
        .bind(blob(user.org.as_uuid()))
        .bind(blob(user.user.as_uuid()))
        .bind(&user.user_name)
        .bind(user_name_key(&user.user_name))
        .bind(&user.external_id)
        .bind(i64::from(user.active))
        .bind(profile_text(user)?)
        .bind(stored_version(expected.saturating_add(1))?)
        .bind(micros(user.updated_at))
        .bind(display_name_key(user))
        .fetch_one(&mut *tx)
        .await
        .map_err(|err| write_error(err, "scim_user"))?;
        let stored = user_from_row(&row)?;
        write_emails(&mut tx, &stored, true).await?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn delete_user(&self, org: OrgId, user: UserId) -> Result<ScimUser, StoreError> {
        let row = sqlx::query(concat!(
            "DELETE FROM scim_users WHERE org_id = ?1 AND user_id = ?2 RETURNING ",
            user_columns!()
        ))
        .bind(blob(org.as_uuid()))
        .bind(blob(user.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        match row {
            Some(row) => user_from_row(&row),
            None => Err(StoreError::NotFound { entity: "scim_user" }),
        }
    }

    async fn create_group(&self, group: &ScimGroup) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO scim_groups (org_id, id, display_name, display_name_key, external_id, roles, version, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(blob(group.org.as_uuid()))
        .bind(blob(group.id.as_uuid()))
        .bind(&group.display_name)
        .bind(user_name_key(&group.display_name))
        .bind(&group.external_id)
        .bind(roles_text(&group.roles))
        .bind(stored_version(group.version)?)
        .bind(micros(group.created_at))
        .bind(micros(group.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|err| write_error(err, "scim_group"))?;
        insert_members(&mut tx, group).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn get_group(&self, org: OrgId, id: GroupId) -> Result<Option<ScimGroup>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            group_columns!(),
            " FROM scim_groups WHERE org_id = ?1 AND id = ?2"
        ))
        .bind(blob(org.as_uuid()))
        .bind(blob(id.as_uuid()))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        match row {
            Some(row) => Ok(Some(group_from_row(&mut conn, &row).await?)),
            None => Ok(None),
        }
    }

    async fn list_groups(
        &self,
        org: OrgId,
        after: Option<GroupId>,
        limit: usize,
    ) -> Result<Vec<ScimGroup>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            group_columns!(),
            " FROM scim_groups WHERE org_id = ?1 AND (?2 IS NULL OR id > ?2) \
             ORDER BY id LIMIT ?3"
        ))
        .bind(blob(org.as_uuid()))
        .bind(after.map(|a| blob(a.as_uuid())))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        groups_from_rows(&mut conn, &rows).await
    }

    async fn find_groups(
        &self,
        org: OrgId,
        lookup: &Lookup,
        after: Option<GroupId>,
        limit: usize,
    ) -> Result<Vec<ScimGroup>, StoreError> {
        let Some((sql, end)) = find_groups_sql(lookup) else {
            return Ok(Vec::new());
        };
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let rows = lookup_query(sql, false, org, lookup, end, after.map(|a| a.as_uuid()), limit)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        groups_from_rows(&mut conn, &rows).await
    }

    async fn mapped_roles(&self, org: OrgId) -> Result<std::collections::BTreeSet<RoleName>, StoreError> {
        // Reads the partial index of the groups that map roles (migration 0018).
        let rows = sqlx::query("SELECT roles FROM scim_groups WHERE org_id = ?1 AND roles <> ''")
            .bind(blob(org.as_uuid()))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut roles = std::collections::BTreeSet::new();
        for row in &rows {
            let text: String = get(row, "roles")?;
            for r in text.split_whitespace() {
                roles.insert(RoleName::new(r).map_err(|_| corrupt(format!("role `{r}` of a SCIM group")))?);
            }
        }
        Ok(roles)
    }

    async fn groups_of(&self, org: OrgId, user: UserId) -> Result<Vec<ScimGroup>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            group_columns!(),
            " FROM scim_groups WHERE org_id = ?1 AND id IN \
             (SELECT group_id FROM scim_group_members WHERE org_id = ?1 AND user_id = ?2) ORDER BY id"
        ))
        .bind(blob(org.as_uuid()))
        .bind(blob(user.as_uuid()))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        groups_from_rows(&mut conn, &rows).await
    }

    async fn replace_group(&self, group: &ScimGroup, expected: u64) -> Result<ScimGroup, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let current = current_version(
            &mut tx,
            "SELECT version FROM scim_groups WHERE org_id = ?1 AND id = ?2",
            group.org,
            group.id.as_uuid(),
        )
        .await?;
        check_version(current, expected, "scim_group")?;
        let row = sqlx::query(concat!(
            "UPDATE scim_groups SET display_name = ?3, display_name_key = ?4, external_id = ?5, roles = ?6, \
             version = ?7, updated_at = ?8 WHERE org_id = ?1 AND id = ?2 RETURNING ",
            group_columns!()
        ))
        .bind(blob(group.org.as_uuid()))
        .bind(blob(group.id.as_uuid()))
        .bind(&group.display_name)
        .bind(user_name_key(&group.display_name))
        .bind(&group.external_id)
        .bind(roles_text(&group.roles))
        .bind(stored_version(expected.saturating_add(1))?)
        .bind(micros(group.updated_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(|err| write_error(err, "scim_group"))?;
        sqlx::query("DELETE FROM scim_group_members WHERE org_id = ?1 AND group_id = ?2")
            .bind(blob(group.org.as_uuid()))
            .bind(blob(group.id.as_uuid()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_members(&mut tx, group).await?;
        let stored = group_from_row(&mut tx, &row).await?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn delete_group(&self, org: OrgId, id: GroupId) -> Result<ScimGroup, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            group_columns!(),
            " FROM scim_groups WHERE org_id = ?1 AND id = ?2"
        ))
        .bind(blob(org.as_uuid()))
        .bind(blob(id.as_uuid()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound { entity: "scim_group" });
        };
        let group = group_from_row(&mut tx, &row).await?;
        sqlx::query("DELETE FROM scim_groups WHERE org_id = ?1 AND id = ?2")
            .bind(blob(org.as_uuid()))
            .bind(blob(id.as_uuid()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(group)
    }
}
