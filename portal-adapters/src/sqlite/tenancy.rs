//! `SqliteTenancyStore`: organizations, users, memberships and invitations in SQLite.

use async_trait::async_trait;
use portal_core::audit::AuditEvent;
use portal_core::context::Principal;
use portal_core::ids::{InvitationId, OrgId, UserId};
use portal_core::store::{Conflict, StoreError};
use portal_core::tenancy::{
    ApiVersionName, ApiVersionStore, DisplayName, Email, Invitation, InvitationState, Membership, Metadata, OrgName,
    Organization, RoleSet, Slug, TenancyStore, TokenHash, User,
};
use portal_core::time::from_unix_micros;
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::BACKEND;
use super::audit::insert_event;
use super::codec::{begin_write, blob, db, get, micros, stored_time, time_at, uuid_at};
use crate::sql::unique_violation;

/// A [`TenancyStore`] on a SQLite database migrated with [`migrate`](super::migrate).
///
/// Every method is one statement or one `BEGIN IMMEDIATE` transaction, so it commits
/// entirely or not at all, and rules that span rows (an org keeps an owner, an
/// invitation is used once) are checked inside the transaction that writes.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use portal_adapters::sqlite::{self, SqliteTenancyStore};
/// use portal_core::Portal;
///
/// let pool = sqlite::connect("sqlite://portal.db").await?;
/// sqlite::migrate(&pool).await?;
/// let portal = Portal::builder()
///     .tenancy_store(Arc::new(SqliteTenancyStore::new(pool)))
///     .build()?;
/// # let _ = portal;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteTenancyStore {
    pool: SqlitePool,
}

impl SqliteTenancyStore {
    /// A store on `pool`, which must be migrated.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Inserts a new org, its owner's membership and (when given) its API version pin in
    /// one transaction.
    async fn insert_org(
        &self,
        org: &Organization,
        owner: &Membership,
        version: Option<&ApiVersionName>,
    ) -> Result<(), StoreError> {
        let metadata = serde_json::to_string(&org.metadata).map_err(|err| StoreError::Backend {
            backend: BACKEND.name(),
            source: Box::new(err),
        })?;
        let mut tx = begin_write(&self.pool).await?;
        // The org goes in first, so a taken id or slug is reported before a missing owner.
        sqlx::query("INSERT INTO organizations (id, slug, name, metadata, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(blob(org.id.as_uuid()))
            .bind(org.slug.as_str())
            .bind(org.name.as_str())
            .bind(metadata)
            .bind(micros(org.created_at))
            .execute(&mut *tx)
            .await
            .map_err(|err| {
                insert_error(
                    err,
                    &[
                        ("organizations.id", Conflict::AlreadyExists { entity: "organization" }),
                        ("organizations.slug", Conflict::SlugTaken),
                    ],
                )
            })?;
        if !user_exists(&mut tx, owner.user).await? {
            return Err(not_found("user"));
        }
        // The membership belongs to the org being created, whatever `owner.org` says.
        let membership = Membership {
            org: org.id,
            ..owner.clone()
        };
        insert_membership(&mut tx, &membership).await?;
        if let Some(version) = version {
            sqlx::query("INSERT INTO org_api_versions (org_id, version) VALUES (?1, ?2)")
                .bind(blob(org.id.as_uuid()))
                .bind(version.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}

fn not_found(entity: &'static str) -> StoreError {
    StoreError::NotFound { entity }
}

/// Maps an insert's error: a violated unique key becomes the conflict `conflicts` names
/// for its columns, anything else goes through [`db`].
fn insert_error(err: sqlx::Error, conflicts: &[(&str, Conflict)]) -> StoreError {
    if let Some(columns) = unique_violation(&err)
        && let Some((_, conflict)) = conflicts.iter().find(|(name, _)| *name == columns)
    {
        return conflict.clone().into();
    }
    db(err)
}

fn roles_text(roles: &RoleSet) -> String {
    roles.iter().map(|role| role.as_str()).collect::<Vec<_>>().join(" ")
}

fn state_text(state: &InvitationState) -> &'static str {
    match state {
        InvitationState::Pending => "pending",
        InvitationState::Accepted { .. } => "accepted",
        InvitationState::Revoked { .. } => "revoked",
    }
}

// Decoding. Every stored value goes back through its domain constructor; a value the
// constructor refuses is `StoreError::Corrupt`, naming the column and the row.

fn optional_time_at(
    row: &SqliteRow,
    column: &str,
    key: &dyn std::fmt::Display,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let value: Option<i64> = get(row, column)?;
    value
        .map(|value| from_unix_micros(value).ok_or_else(|| BACKEND.corrupt(format!("time in `{column}` of {key}"))))
        .transpose()
}

/// Reads an organization from columns `org_id`, `slug`, `name`, `metadata` and
/// `org_created_at`.
fn org_from_row(row: &SqliteRow) -> Result<Organization, StoreError> {
    let id = OrgId::from_uuid(uuid_at(row, "org_id")?);
    let slug: String = get(row, "slug")?;
    let name: String = get(row, "name")?;
    let metadata: String = get(row, "metadata")?;
    Ok(Organization {
        id,
        slug: BACKEND.decode(|| format!("slug of {id}"), Slug::new(&slug))?,
        name: BACKEND.decode(|| format!("name of {id}"), OrgName::new(&name))?,
        metadata: BACKEND.decode(
            || format!("metadata of {id}"),
            serde_json::from_str::<Metadata>(&metadata),
        )?,
        created_at: time_at(row, "org_created_at", &id)?,
    })
}

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    let id = UserId::from_uuid(uuid_at(row, "id")?);
    let email: String = get(row, "email")?;
    let display_name: String = get(row, "display_name")?;
    Ok(User {
        id,
        email: BACKEND.decode(|| format!("email of {id}"), Email::new(&email))?,
        display_name: BACKEND.decode(|| format!("display name of {id}"), DisplayName::new(&display_name))?,
        created_at: time_at(row, "created_at", &id)?,
    })
}

/// The user of a `list_member_users` row (its columns `user_id`, `email`,
/// `display_name`, `user_created_at`).
fn member_user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    let id = UserId::from_uuid(uuid_at(row, "user_id")?);
    let email: String = get(row, "email")?;
    let display_name: String = get(row, "display_name")?;
    Ok(User {
        id,
        email: BACKEND.decode(|| format!("email of {id}"), Email::new(&email))?,
        display_name: BACKEND.decode(|| format!("display name of {id}"), DisplayName::new(&display_name))?,
        created_at: time_at(row, "user_created_at", &id)?,
    })
}

fn invitation_from_row(row: &SqliteRow) -> Result<Invitation, StoreError> {
    let id = InvitationId::from_uuid(uuid_at(row, "id")?);
    let org = OrgId::from_uuid(uuid_at(row, "org_id")?);
    let email: String = get(row, "email")?;
    let roles: String = get(row, "roles")?;
    let invited_by: String = get(row, "invited_by")?;
    let state: String = get(row, "state")?;
    let accepted_by: Option<Vec<u8>> = get(row, "accepted_by")?;
    let accepted_at = optional_time_at(row, "accepted_at", &id)?;
    let revoked_at = optional_time_at(row, "revoked_at", &id)?;
    let token_hash: Vec<u8> = get(row, "token_hash")?;
    let state = match (state.as_str(), accepted_by, accepted_at, revoked_at) {
        ("pending", None, None, None) => InvitationState::Pending,
        ("accepted", Some(by), Some(at), None) => InvitationState::Accepted {
            by: UserId::from_uuid(BACKEND.decode(|| format!("accepting user of {id}"), Uuid::from_slice(&by))?),
            at,
        },
        ("revoked", None, None, Some(at)) => InvitationState::Revoked { at },
        _ => return Err(BACKEND.corrupt(format!("state of {id}"))),
    };
    Ok(Invitation {
        id,
        org,
        email: BACKEND.decode(|| format!("email of {id}"), Email::new(&email))?,
        roles: BACKEND.decode(|| format!("roles of {id}"), RoleSet::parse(roles.split(' ')))?,
        invited_by: BACKEND.decode(|| format!("inviter of {id}"), invited_by.parse::<Principal>())?,
        created_at: time_at(row, "created_at", &id)?,
        expires_at: time_at(row, "expires_at", &id)?,
        state,
        token_hash: TokenHash(BACKEND.decode(|| format!("token hash of {id}"), <[u8; 32]>::try_from(token_hash))?),
    })
}

/// Folds rows of one or more memberships, one row per role (columns `org_id`,
/// `user_id`, `created_at`, `updated_at`, `role`), into memberships. Rows of one
/// membership must be adjacent, and `extra` reads whatever else a row carries (once per
/// membership, from its first row).
fn fold_memberships<T>(
    rows: &[SqliteRow],
    mut extra: impl FnMut(&SqliteRow) -> Result<T, StoreError>,
) -> Result<Vec<(T, Membership)>, StoreError> {
    let mut out = Vec::new();
    let mut current: Option<(T, OrgId, UserId, OffsetDateTime, OffsetDateTime, Vec<String>)> = None;
    for row in rows {
        let org = OrgId::from_uuid(uuid_at(row, "org_id")?);
        let user = UserId::from_uuid(uuid_at(row, "user_id")?);
        let role: Option<String> = get(row, "role")?;
        let same = current.as_ref().is_some_and(|(_, o, u, ..)| *o == org && *u == user);
        if !same {
            if let Some(done) = current.take() {
                out.push(finish_membership(done)?);
            }
            let key = format!("membership of {user} in {org}");
            current = Some((
                extra(row)?,
                org,
                user,
                time_at(row, "created_at", &key)?,
                time_at(row, "updated_at", &key)?,
                Vec::new(),
            ));
        }
        if let (Some((.., roles)), Some(role)) = (current.as_mut(), role) {
            roles.push(role);
        }
    }
    if let Some(done) = current.take() {
        out.push(finish_membership(done)?);
    }
    Ok(out)
}

pub(super) type PartialMembership<T> = (T, OrgId, UserId, OffsetDateTime, OffsetDateTime, Vec<String>);

pub(super) fn finish_membership<T>(
    (extra, org, user, created_at, updated_at, roles): PartialMembership<T>,
) -> Result<(T, Membership), StoreError> {
    // A membership without roles (no role rows at all) is refused here too.
    let roles = BACKEND.decode(|| format!("roles of {user} in {org}"), RoleSet::parse(&roles))?;
    Ok((
        extra,
        Membership {
            org,
            user,
            roles,
            created_at,
            updated_at,
        },
    ))
}

/// The membership of `user` in `org`, read on `conn` (inside a transaction, or not).
async fn membership_on(
    conn: &mut SqliteConnection,
    org: OrgId,
    user: UserId,
) -> Result<Option<Membership>, StoreError> {
    let rows = sqlx::query(
        "SELECT m.org_id, m.user_id, m.created_at, m.updated_at, r.role
         FROM memberships m
         LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
         WHERE m.org_id = ?1 AND m.user_id = ?2
         ORDER BY r.role",
    )
    .bind(blob(org.as_uuid()))
    .bind(blob(user.as_uuid()))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    Ok(fold_memberships(&rows, |_| Ok(()))?.pop().map(|((), m)| m))
}

/// Whether `org` has an owner other than `user`.
async fn has_other_owner(conn: &mut SqliteConnection, org: OrgId, user: UserId) -> Result<bool, StoreError> {
    let other: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM membership_roles WHERE org_id = ?1 AND role = 'owner' AND user_id <> ?2 LIMIT 1",
    )
    .bind(blob(org.as_uuid()))
    .bind(blob(user.as_uuid()))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    Ok(other.is_some())
}

/// Fails with [`Conflict::LastOwner`] if `current` holds the owner role and nobody else
/// in its org does.
async fn check_not_last_owner(conn: &mut SqliteConnection, current: &Membership) -> Result<(), StoreError> {
    if current.roles.has_owner() && !has_other_owner(conn, current.org, current.user).await? {
        return Err(Conflict::LastOwner.into());
    }
    Ok(())
}

async fn user_exists(conn: &mut SqliteConnection, user: UserId) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = ?1")
        .bind(blob(user.as_uuid()))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    Ok(found.is_some())
}

/// Inserts role rows for `user` in `org`; roles already held are left as they are.
async fn insert_roles(
    conn: &mut SqliteConnection,
    org: OrgId,
    user: UserId,
    roles: &RoleSet,
) -> Result<(), StoreError> {
    for role in roles.iter() {
        sqlx::query("INSERT INTO membership_roles (org_id, user_id, role) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
            .bind(blob(org.as_uuid()))
            .bind(blob(user.as_uuid()))
            .bind(role.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

async fn insert_membership(conn: &mut SqliteConnection, membership: &Membership) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO memberships (org_id, user_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?4)")
        .bind(blob(membership.org.as_uuid()))
        .bind(blob(membership.user.as_uuid()))
        .bind(micros(membership.created_at))
        .bind(micros(membership.updated_at))
        .execute(&mut *conn)
        .await
        .map_err(|err| {
            insert_error(
                err,
                &[(
                    "memberships.org_id, memberships.user_id",
                    Conflict::AlreadyExists { entity: "membership" },
                )],
            )
        })?;
    insert_roles(conn, membership.org, membership.user, &membership.roles).await
}

#[async_trait]
impl TenancyStore for SqliteTenancyStore {
    async fn create_org(&self, org: &Organization, owner: &Membership) -> Result<(), StoreError> {
        self.insert_org(org, owner, None).await
    }

    async fn create_pinned_org(
        &self,
        org: &Organization,
        owner: &Membership,
        version: &ApiVersionName,
    ) -> Result<(), StoreError> {
        self.insert_org(org, owner, Some(version)).await
    }

    async fn get_org(&self, id: OrgId) -> Result<Option<Organization>, StoreError> {
        let row = sqlx::query(
            "SELECT id AS org_id, slug, name, metadata, created_at AS org_created_at FROM organizations WHERE id = ?1",
        )
        .bind(blob(id.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(org_from_row).transpose()
    }

    async fn get_org_by_slug(&self, slug: &Slug) -> Result<Option<Organization>, StoreError> {
        let row = sqlx::query(
            "SELECT id AS org_id, slug, name, metadata, created_at AS org_created_at FROM organizations WHERE slug = ?1",
        )
        .bind(slug.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(org_from_row).transpose()
    }

    async fn update_org(&self, org: &Organization, event: &AuditEvent) -> Result<(), StoreError> {
        let metadata = serde_json::to_string(&org.metadata).map_err(|err| StoreError::Backend {
            backend: BACKEND.name(),
            source: Box::new(err),
        })?;
        let mut tx = begin_write(&self.pool).await?;
        let done = sqlx::query("UPDATE organizations SET name = ?1, metadata = ?2 WHERE id = ?3")
            .bind(org.name.as_str())
            .bind(metadata)
            .bind(blob(org.id.as_uuid()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(not_found("organization"));
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO users (id, email, display_name, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(blob(user.id.as_uuid()))
            .bind(user.email.as_str())
            .bind(user.display_name.as_str())
            .bind(micros(user.created_at))
            .execute(&self.pool)
            .await
            .map_err(|err| {
                insert_error(
                    err,
                    &[
                        ("users.id", Conflict::AlreadyExists { entity: "user" }),
                        ("users.email", Conflict::EmailTaken),
                    ],
                )
            })?;
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, email, display_name, created_at FROM users WHERE id = ?1")
            .bind(blob(id.as_uuid()))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, email, display_name, created_at FROM users WHERE email = ?1")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn get_membership(&self, org: OrgId, user: UserId) -> Result<Option<Membership>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        membership_on(&mut conn, org, user).await
    }

    async fn list_members(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<Membership>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Every stored id is 16 bytes, and SQLite compares BLOBs bytewise with a shorter
        // prefix first, so the empty BLOB sorts before every id.
        let after = after.map(|user| blob(user.as_uuid())).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT m.org_id, m.user_id, m.created_at, m.updated_at, r.role
             FROM (SELECT org_id, user_id, created_at, updated_at FROM memberships
                   WHERE org_id = ?1 AND user_id > ?2 ORDER BY user_id LIMIT ?3) m
             LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
             ORDER BY m.user_id, r.role",
        )
        .bind(blob(org.as_uuid()))
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(fold_memberships(&rows, |_| Ok(()))?
            .into_iter()
            .map(|((), m)| m)
            .collect())
    }

    async fn list_member_users(
        &self,
        org: OrgId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(Membership, User)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // As in `list_members`: the empty BLOB sorts before every 16-byte id.
        let after = after.map(|user| blob(user.as_uuid())).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT m.org_id, m.user_id, m.created_at, m.updated_at, r.role,
                    u.email, u.display_name, u.created_at AS user_created_at
             FROM (SELECT org_id, user_id, created_at, updated_at FROM memberships
                   WHERE org_id = ?1 AND user_id > ?2 ORDER BY user_id LIMIT ?3) m
             JOIN users u ON u.id = m.user_id
             LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
             ORDER BY m.user_id, r.role",
        )
        .bind(blob(org.as_uuid()))
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(fold_memberships(&rows, member_user_from_row)?
            .into_iter()
            .map(|(u, m)| (m, u))
            .collect())
    }

    async fn list_user_orgs(
        &self,
        user: UserId,
        after: Option<OrgId>,
        limit: usize,
    ) -> Result<Vec<(Organization, Membership)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // As in `list_members`: the empty BLOB sorts before every 16-byte id.
        let after = after.map(|org| blob(org.as_uuid())).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT m.org_id, m.user_id, m.created_at, m.updated_at, r.role,
                    o.slug, o.name, o.metadata, o.created_at AS org_created_at
             FROM (SELECT org_id, user_id, created_at, updated_at FROM memberships
                   WHERE user_id = ?1 AND org_id > ?2 ORDER BY org_id LIMIT ?3) m
             JOIN organizations o ON o.id = m.org_id
             LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
             ORDER BY m.org_id, r.role",
        )
        .bind(blob(user.as_uuid()))
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        fold_memberships(&rows, org_from_row)
    }

    async fn set_member_roles(
        &self,
        org: OrgId,
        user: UserId,
        roles: &RoleSet,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Membership, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let current = membership_on(&mut tx, org, user)
            .await?
            .ok_or_else(|| not_found("membership"))?;
        if !roles.has_owner() {
            check_not_last_owner(&mut tx, &current).await?;
        }
        sqlx::query("DELETE FROM membership_roles WHERE org_id = ?1 AND user_id = ?2")
            .bind(blob(org.as_uuid()))
            .bind(blob(user.as_uuid()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_roles(&mut tx, org, user, roles).await?;
        sqlx::query("UPDATE memberships SET updated_at = ?1 WHERE org_id = ?2 AND user_id = ?3")
            .bind(micros(at))
            .bind(blob(org.as_uuid()))
            .bind(blob(user.as_uuid()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(Membership {
            roles: roles.clone(),
            updated_at: stored_time(at),
            ..current
        })
    }

    async fn remove_member(&self, org: OrgId, user: UserId, event: &AuditEvent) -> Result<Membership, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let current = membership_on(&mut tx, org, user)
            .await?
            .ok_or_else(|| not_found("membership"))?;
        check_not_last_owner(&mut tx, &current).await?;
        // The roles would go with the membership through the cascade, but that needs
        // foreign keys switched on for the connection; deleting them first does not.
        sqlx::query("DELETE FROM membership_roles WHERE org_id = ?1 AND user_id = ?2")
            .bind(blob(org.as_uuid()))
            .bind(blob(user.as_uuid()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM memberships WHERE org_id = ?1 AND user_id = ?2")
            .bind(blob(org.as_uuid()))
            .bind(blob(user.as_uuid()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(current)
    }

    async fn add_member(&self, membership: &Membership, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let org: Option<i64> = sqlx::query_scalar("SELECT 1 FROM organizations WHERE id = ?1")
            .bind(blob(membership.org.as_uuid()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if org.is_none() {
            return Err(not_found("organization"));
        }
        if !user_exists(&mut tx, membership.user).await? {
            return Err(not_found("user"));
        }
        insert_membership(&mut tx, membership).await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn create_invitation(&self, invitation: &Invitation, event: &AuditEvent) -> Result<(), StoreError> {
        let (accepted_by, accepted_at, revoked_at) = match &invitation.state {
            InvitationState::Pending => (None, None, None),
            InvitationState::Accepted { by, at } => (Some(blob(by.as_uuid())), Some(micros(*at)), None),
            InvitationState::Revoked { at } => (None, None, Some(micros(*at))),
        };
        let mut tx = begin_write(&self.pool).await?;
        let org: Option<i64> = sqlx::query_scalar("SELECT 1 FROM organizations WHERE id = ?1")
            .bind(blob(invitation.org.as_uuid()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if org.is_none() {
            return Err(not_found("organization"));
        }
        sqlx::query(
            "INSERT INTO invitations (id, org_id, email, roles, invited_by, created_at, expires_at, state,
                                      accepted_by, accepted_at, revoked_at, token_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .bind(blob(invitation.id.as_uuid()))
        .bind(blob(invitation.org.as_uuid()))
        .bind(invitation.email.as_str())
        .bind(roles_text(&invitation.roles))
        .bind(invitation.invited_by.to_string())
        .bind(micros(invitation.created_at))
        .bind(micros(invitation.expires_at))
        .bind(state_text(&invitation.state))
        .bind(accepted_by)
        .bind(accepted_at)
        .bind(revoked_at)
        .bind(invitation.token_hash.0.to_vec())
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            insert_error(
                err,
                &[
                    ("invitations.id", Conflict::AlreadyExists { entity: "invitation" }),
                    (
                        "invitations.token_hash",
                        Conflict::AlreadyExists { entity: "invitation" },
                    ),
                ],
            )
        })?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)
    }

    async fn get_invitation(&self, org: OrgId, id: InvitationId) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(
            "SELECT id, org_id, email, roles, invited_by, created_at, expires_at, state,
                    accepted_by, accepted_at, revoked_at, token_hash
             FROM invitations WHERE org_id = ?1 AND id = ?2",
        )
        .bind(blob(org.as_uuid()))
        .bind(blob(id.as_uuid()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    async fn find_invitation_by_token(&self, hash: &TokenHash) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(
            "SELECT id, org_id, email, roles, invited_by, created_at, expires_at, state,
                    accepted_by, accepted_at, revoked_at, token_hash
             FROM invitations WHERE token_hash = ?1",
        )
        .bind(hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    async fn list_invitations(
        &self,
        org: OrgId,
        after: Option<InvitationId>,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The empty BLOB sorts before every 16-byte id, as in `list_members`.
        let after = after.map(|id| blob(id.as_uuid())).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT id, org_id, email, roles, invited_by, created_at, expires_at, state,
                    accepted_by, accepted_at, revoked_at, token_hash
             FROM invitations WHERE org_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )
        .bind(blob(org.as_uuid()))
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(invitation_from_row).collect()
    }

    async fn accept_invitation(
        &self,
        id: InvitationId,
        user: UserId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Membership, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        // The state check and the write are one statement, so of two concurrent calls
        // only one can move the invitation out of `pending`.
        let accepted: Option<(Vec<u8>, String)> = sqlx::query_as(
            "UPDATE invitations SET state = 'accepted', accepted_by = ?1, accepted_at = ?2
             WHERE id = ?3 AND state = 'pending' AND expires_at > ?2
             RETURNING org_id, roles",
        )
        .bind(blob(user.as_uuid()))
        .bind(micros(at))
        .bind(blob(id.as_uuid()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some((org, roles)) = accepted else {
            // Nothing changed; say why. The write lock is still held, so this is the
            // state the update saw.
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM invitations WHERE id = ?1")
                .bind(blob(id.as_uuid()))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            return Err(match state.as_deref() {
                None => not_found("invitation"),
                Some("pending") => Conflict::InvitationExpired.into(),
                Some(_) => Conflict::InvitationNotPending.into(),
            });
        };
        let org = OrgId::from_uuid(BACKEND.decode(|| format!("organization of {id}"), Uuid::from_slice(&org))?);
        let roles = BACKEND.decode(|| format!("roles of {id}"), RoleSet::parse(roles.split(' ')))?;
        if !user_exists(&mut tx, user).await? {
            return Err(not_found("user"));
        }
        let membership = match membership_on(&mut tx, org, user).await? {
            Some(existing) => {
                // More than `RoleSet::MAX` roles cannot be stored; the call fails and the
                // transaction rolls back, so the invitation stays pending.
                let union = existing
                    .roles
                    .union(&roles)
                    .map_err(|_| StoreError::from(Conflict::TooManyRoles))?;
                insert_roles(&mut tx, org, user, &roles).await?;
                sqlx::query("UPDATE memberships SET updated_at = ?1 WHERE org_id = ?2 AND user_id = ?3")
                    .bind(micros(at))
                    .bind(blob(org.as_uuid()))
                    .bind(blob(user.as_uuid()))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                Membership {
                    roles: union,
                    updated_at: stored_time(at),
                    ..existing
                }
            }
            None => {
                let membership = Membership {
                    org,
                    user,
                    roles,
                    created_at: stored_time(at),
                    updated_at: stored_time(at),
                };
                insert_membership(&mut tx, &membership).await?;
                membership
            }
        };
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(membership)
    }

    async fn revoke_invitation(
        &self,
        org: OrgId,
        id: InvitationId,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Invitation, StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let row = sqlx::query(
            "UPDATE invitations SET state = 'revoked', revoked_at = ?1
             WHERE org_id = ?2 AND id = ?3 AND state = 'pending'
             RETURNING id, org_id, email, roles, invited_by, created_at, expires_at, state,
                       accepted_by, accepted_at, revoked_at, token_hash",
        )
        .bind(micros(at))
        .bind(blob(org.as_uuid()))
        .bind(blob(id.as_uuid()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM invitations WHERE org_id = ?1 AND id = ?2")
                    .bind(blob(org.as_uuid()))
                    .bind(blob(id.as_uuid()))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            return Err(match state {
                None => not_found("invitation"),
                Some(_) => Conflict::InvitationNotPending.into(),
            });
        };
        let invitation = invitation_from_row(&row)?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(invitation)
    }
}

#[async_trait]
impl ApiVersionStore for SqliteTenancyStore {
    async fn api_version(&self, org: OrgId) -> Result<Option<ApiVersionName>, StoreError> {
        let name: Option<String> = sqlx::query_scalar("SELECT version FROM org_api_versions WHERE org_id = ?1")
            .bind(blob(org.as_uuid()))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        name.map(|name| {
            ApiVersionName::new(&name).map_err(|_| BACKEND.corrupt(format!("org {org}: API version `{name}`")))
        })
        .transpose()
    }

    async fn pin_api_version(
        &self,
        org: OrgId,
        version: &ApiVersionName,
        event: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM organizations WHERE id = ?1")
            .bind(blob(org.as_uuid()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if exists.is_none() {
            return Err(not_found("organization"));
        }
        sqlx::query(
            "INSERT INTO org_api_versions (org_id, version) VALUES (?1, ?2) \
             ON CONFLICT (org_id) DO UPDATE SET version = excluded.version",
        )
        .bind(blob(org.as_uuid()))
        .bind(version.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if let Some(event) = event {
            insert_event(&mut tx, event).await?;
        }
        tx.commit().await.map_err(db)
    }
}
