//! `PgTenancyStore`: organizations, users, memberships and invitations in Postgres.

use async_trait::async_trait;
use portal_core::audit::AuditEvent;
use portal_core::context::Principal;
use portal_core::ids::{InvitationId, OrgId, UserId};
use portal_core::store::{Conflict, StoreError};
use portal_core::tenancy::{
    ApiVersionName, ApiVersionStore, DisplayName, Email, Invitation, InvitationState, Membership, Metadata, OrgName,
    Organization, RoleSet, Slug, TenancyStore, TokenHash, User,
};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres};
use time::OffsetDateTime;
use uuid::Uuid;

use super::BACKEND;
use super::audit::insert_event;
use super::codec::{db, get, stored_time};
use crate::sql::unique_violation;

/// A [`TenancyStore`] on a Postgres database migrated with [`migrate`](super::migrate).
///
/// Every method is one statement or one transaction, so it commits entirely or not at
/// all. Transactions run at READ COMMITTED, where two concurrent demotions of two
/// different owners could each see the other still holding the role; so the calls that
/// can remove an owner, or change a membership, first lock the organization's row
/// (`SELECT … FOR NO KEY UPDATE`) and take turns. An invitation is accepted by one
/// conditional `UPDATE`, so of two concurrent calls exactly one succeeds.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use portal_adapters::postgres::{self, PgTenancyStore};
/// use portal_core::Portal;
///
/// let pool = postgres::connect("postgres://portal@localhost/portal").await?;
/// postgres::migrate(&pool).await?;
/// let portal = Portal::builder()
///     .tenancy_store(Arc::new(PgTenancyStore::new(pool)))
///     .build()?;
/// # let _ = portal;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PgTenancyStore {
    pool: PgPool,
}

impl PgTenancyStore {
    /// A store on `pool`, whose connections must see the migrated tables on their
    /// `search_path`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(db)
    }

    /// Inserts a new org, its owner's membership and (when given) its API version pin in
    /// one transaction.
    async fn insert_org(
        &self,
        org: &Organization,
        owner: &Membership,
        version: Option<&ApiVersionName>,
    ) -> Result<(), StoreError> {
        let metadata = metadata_json(&org.metadata)?;
        let mut tx = self.begin().await?;
        // The org goes in first, so a taken id or slug is reported before a missing owner.
        sqlx::query("INSERT INTO organizations (id, slug, name, metadata, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(org.id.as_uuid())
            .bind(org.slug.as_str())
            .bind(org.name.as_str())
            .bind(Json(metadata))
            .bind(stored_time(org.created_at))
            .execute(&mut *tx)
            .await
            .map_err(|err| {
                insert_error(
                    err,
                    &[
                        ("organizations_pkey", Conflict::AlreadyExists { entity: "organization" }),
                        ("organizations_slug_key", Conflict::SlugTaken),
                    ],
                )
            })?;
        // Users are never deleted, so a user seen here still exists at commit; the
        // membership's foreign key would catch it otherwise.
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
            sqlx::query("INSERT INTO org_api_versions (org_id, version) VALUES ($1, $2)")
                .bind(org.id.as_uuid())
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

/// Maps an insert's error: a violated unique constraint becomes the conflict
/// `conflicts` names for it, anything else goes through [`db`].
fn insert_error(err: sqlx::Error, conflicts: &[(&str, Conflict)]) -> StoreError {
    if let Some(constraint) = unique_violation(&err)
        && let Some((_, conflict)) = conflicts.iter().find(|(name, _)| *name == constraint)
    {
        return conflict.clone().into();
    }
    db(err)
}

fn role_names(roles: &RoleSet) -> Vec<String> {
    roles.iter().map(|role| role.as_str().to_owned()).collect()
}

fn state_text(state: &InvitationState) -> &'static str {
    match state {
        InvitationState::Pending => "pending",
        InvitationState::Accepted { .. } => "accepted",
        InvitationState::Revoked { .. } => "revoked",
    }
}

fn metadata_json(metadata: &Metadata) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(metadata).map_err(|err| StoreError::Backend {
        backend: BACKEND.name(),
        source: Box::new(err),
    })
}

// Decoding. Every stored value goes back through its domain constructor; a value the
// constructor refuses is `StoreError::Corrupt`, naming the column and the row.

/// Reads an organization from columns `org_id`, `slug`, `name`, `metadata` and
/// `org_created_at`.
fn org_from_row(row: &PgRow) -> Result<Organization, StoreError> {
    let id = OrgId::from_uuid(get(row, "org_id")?);
    let slug: String = get(row, "slug")?;
    let name: String = get(row, "name")?;
    let Json(metadata): Json<serde_json::Value> = get(row, "metadata")?;
    Ok(Organization {
        id,
        slug: BACKEND.decode(|| format!("slug of {id}"), Slug::new(&slug))?,
        name: BACKEND.decode(|| format!("name of {id}"), OrgName::new(&name))?,
        metadata: BACKEND.decode(
            || format!("metadata of {id}"),
            serde_json::from_value::<Metadata>(metadata),
        )?,
        created_at: get(row, "org_created_at")?,
    })
}

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    let id = UserId::from_uuid(get(row, "id")?);
    let email: String = get(row, "email")?;
    let display_name: String = get(row, "display_name")?;
    Ok(User {
        id,
        email: BACKEND.decode(|| format!("email of {id}"), Email::new(&email))?,
        display_name: BACKEND.decode(|| format!("display name of {id}"), DisplayName::new(&display_name))?,
        created_at: get(row, "created_at")?,
    })
}

/// The user of a `list_member_users` row (its columns `user_id`, `email`,
/// `display_name`, `user_created_at`).
fn member_user_from_row(row: &PgRow) -> Result<User, StoreError> {
    let id = UserId::from_uuid(get(row, "user_id")?);
    let email: String = get(row, "email")?;
    let display_name: String = get(row, "display_name")?;
    Ok(User {
        id,
        email: BACKEND.decode(|| format!("email of {id}"), Email::new(&email))?,
        display_name: BACKEND.decode(|| format!("display name of {id}"), DisplayName::new(&display_name))?,
        created_at: get(row, "user_created_at")?,
    })
}

fn invitation_from_row(row: &PgRow) -> Result<Invitation, StoreError> {
    let id = InvitationId::from_uuid(get(row, "id")?);
    let org = OrgId::from_uuid(get(row, "org_id")?);
    let email: String = get(row, "email")?;
    let roles: Vec<String> = get(row, "roles")?;
    let invited_by: String = get(row, "invited_by")?;
    let state: String = get(row, "state")?;
    let accepted_by: Option<Uuid> = get(row, "accepted_by")?;
    let accepted_at: Option<OffsetDateTime> = get(row, "accepted_at")?;
    let revoked_at: Option<OffsetDateTime> = get(row, "revoked_at")?;
    let token_hash: Vec<u8> = get(row, "token_hash")?;
    let state = match (state.as_str(), accepted_by, accepted_at, revoked_at) {
        ("pending", None, None, None) => InvitationState::Pending,
        ("accepted", Some(by), Some(at), None) => InvitationState::Accepted {
            by: UserId::from_uuid(by),
            at,
        },
        ("revoked", None, None, Some(at)) => InvitationState::Revoked { at },
        _ => return Err(BACKEND.corrupt(format!("state of {id}"))),
    };
    Ok(Invitation {
        id,
        org,
        email: BACKEND.decode(|| format!("email of {id}"), Email::new(&email))?,
        roles: BACKEND.decode(|| format!("roles of {id}"), RoleSet::parse(&roles))?,
        invited_by: BACKEND.decode(|| format!("inviter of {id}"), invited_by.parse::<Principal>())?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        state,
        token_hash: TokenHash(BACKEND.decode(|| format!("token hash of {id}"), <[u8; 32]>::try_from(token_hash))?),
    })
}

pub(super) type PartialMembership<T> = (T, OrgId, UserId, OffsetDateTime, OffsetDateTime, Vec<String>);

/// Folds rows of one or more memberships, one row per role (columns `org_id`,
/// `user_id`, `created_at`, `updated_at`, `role`), into memberships. Rows of one
/// membership must be adjacent, and `extra` reads whatever else a row carries (once per
/// membership, from its first row).
fn fold_memberships<T>(
    rows: &[PgRow],
    mut extra: impl FnMut(&PgRow) -> Result<T, StoreError>,
) -> Result<Vec<(T, Membership)>, StoreError> {
    let mut out = Vec::new();
    let mut current: Option<PartialMembership<T>> = None;
    for row in rows {
        let org = OrgId::from_uuid(get(row, "org_id")?);
        let user = UserId::from_uuid(get(row, "user_id")?);
        let role: Option<String> = get(row, "role")?;
        let same = current.as_ref().is_some_and(|(_, o, u, ..)| *o == org && *u == user);
        if !same {
            if let Some(done) = current.take() {
                out.push(finish_membership(done)?);
            }
            current = Some((
                extra(row)?,
                org,
                user,
                get(row, "created_at")?,
                get(row, "updated_at")?,
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
async fn membership_on(conn: &mut PgConnection, org: OrgId, user: UserId) -> Result<Option<Membership>, StoreError> {
    let rows = sqlx::query(
        "SELECT m.org_id, m.user_id, m.created_at, m.updated_at, r.role
         FROM memberships m
         LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
         WHERE m.org_id = $1 AND m.user_id = $2
         ORDER BY r.role",
    )
    .bind(org.as_uuid())
    .bind(user.as_uuid())
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    Ok(fold_memberships(&rows, |_| Ok(()))?.pop().map(|((), m)| m))
}

/// Locks `org`'s row until the transaction ends, so that changes to its memberships
/// take turns; returns whether the org exists.
///
/// `FOR NO KEY UPDATE` conflicts with itself but not with the key-share locks that
/// foreign key checks take, so inserting rows that merely reference the org (an
/// invitation, another org's membership) does not wait.
async fn lock_org(conn: &mut PgConnection, org: OrgId) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE")
        .bind(org.as_uuid())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    Ok(found.is_some())
}

/// Whether `org` has an owner other than `user`.
async fn has_other_owner(conn: &mut PgConnection, org: OrgId, user: UserId) -> Result<bool, StoreError> {
    let other: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM membership_roles WHERE org_id = $1 AND role = 'owner' AND user_id <> $2 LIMIT 1",
    )
    .bind(org.as_uuid())
    .bind(user.as_uuid())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    Ok(other.is_some())
}

/// Fails with [`Conflict::LastOwner`] if `current` holds the owner role and nobody else
/// in its org does. The caller holds the org's lock (see [`lock_org`]).
async fn check_not_last_owner(conn: &mut PgConnection, current: &Membership) -> Result<(), StoreError> {
    if current.roles.has_owner() && !has_other_owner(conn, current.org, current.user).await? {
        return Err(Conflict::LastOwner.into());
    }
    Ok(())
}

async fn user_exists(conn: &mut PgConnection, user: UserId) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1")
        .bind(user.as_uuid())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    Ok(found.is_some())
}

/// Inserts role rows for `user` in `org`, one statement for all of them; roles already
/// held are left as they are.
async fn insert_roles(conn: &mut PgConnection, org: OrgId, user: UserId, roles: &RoleSet) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO membership_roles (org_id, user_id, role)
         SELECT $1, $2, role FROM UNNEST($3::text[]) AS role
         ON CONFLICT DO NOTHING",
    )
    .bind(org.as_uuid())
    .bind(user.as_uuid())
    .bind(role_names(roles))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn insert_membership(conn: &mut PgConnection, membership: &Membership) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO memberships (org_id, user_id, created_at, updated_at) VALUES ($1, $2, $3, $4)")
        .bind(membership.org.as_uuid())
        .bind(membership.user.as_uuid())
        .bind(stored_time(membership.created_at))
        .bind(stored_time(membership.updated_at))
        .execute(&mut *conn)
        .await
        .map_err(|err| {
            insert_error(
                err,
                &[("memberships_pkey", Conflict::AlreadyExists { entity: "membership" })],
            )
        })?;
    insert_roles(conn, membership.org, membership.user, &membership.roles).await
}

#[async_trait]
impl TenancyStore for PgTenancyStore {
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
            "SELECT id AS org_id, slug, name, metadata, created_at AS org_created_at FROM organizations WHERE id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(org_from_row).transpose()
    }

    async fn get_org_by_slug(&self, slug: &Slug) -> Result<Option<Organization>, StoreError> {
        let row = sqlx::query(
            "SELECT id AS org_id, slug, name, metadata, created_at AS org_created_at FROM organizations WHERE slug = $1",
        )
        .bind(slug.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(org_from_row).transpose()
    }

    async fn update_org(&self, org: &Organization, event: &AuditEvent) -> Result<(), StoreError> {
        let metadata = metadata_json(&org.metadata)?;
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE organizations SET name = $1, metadata = $2 WHERE id = $3")
            .bind(org.name.as_str())
            .bind(Json(metadata))
            .bind(org.id.as_uuid())
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
        sqlx::query("INSERT INTO users (id, email, display_name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(user.id.as_uuid())
            .bind(user.email.as_str())
            .bind(user.display_name.as_str())
            .bind(stored_time(user.created_at))
            .execute(&self.pool)
            .await
            .map_err(|err| {
                insert_error(
                    err,
                    &[
                        ("users_pkey", Conflict::AlreadyExists { entity: "user" }),
                        ("users_email_key", Conflict::EmailTaken),
                    ],
                )
            })?;
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, email, display_name, created_at FROM users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, email, display_name, created_at FROM users WHERE email = $1")
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Two statements rather than `$2 IS NULL OR …`, so each keeps a plan that walks
        // the primary key from the right place.
        let rows = match after {
            None => sqlx::query(
                "SELECT m.org_id, m.user_id, m.created_at, m.updated_at, r.role
                 FROM (SELECT org_id, user_id, created_at, updated_at FROM memberships
                       WHERE org_id = $1 ORDER BY user_id LIMIT $2) m
                 LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
                 ORDER BY m.user_id, r.role",
            )
            .bind(org.as_uuid())
            .bind(limit),
            Some(after) => sqlx::query(
                "SELECT m.org_id, m.user_id, m.created_at, m.updated_at, r.role
                 FROM (SELECT org_id, user_id, created_at, updated_at FROM memberships
                       WHERE org_id = $1 AND user_id > $3 ORDER BY user_id LIMIT $2) m
                 LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
                 ORDER BY m.user_id, r.role",
            )
            .bind(org.as_uuid())
            .bind(limit)
            .bind(after.as_uuid()),
        }
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // As in `list_members`: two statements, each walking the primary key.
        let rows = match after {
            None => sqlx::query(
                "SELECT m.org_id, m.user_id, m.created_at, m.updated_at, r.role,
                        u.email, u.display_name, u.created_at AS user_created_at
                 FROM (SELECT org_id, user_id, created_at, updated_at FROM memberships
                       WHERE org_id = $1 ORDER BY user_id LIMIT $2) m
                 JOIN users u ON u.id = m.user_id
                 LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
                 ORDER BY m.user_id, r.role",
            )
            .bind(org.as_uuid())
            .bind(limit),
            Some(after) => sqlx::query(
                "SELECT m.org_id, m.user_id, m.created_at, m.updated_at, r.role,
                        u.email, u.display_name, u.created_at AS user_created_at
                 FROM (SELECT org_id, user_id, created_at, updated_at FROM memberships
                       WHERE org_id = $1 AND user_id > $3 ORDER BY user_id LIMIT $2) m
                 JOIN users u ON u.id = m.user_id
                 LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
                 ORDER BY m.user_id, r.role",
            )
            .bind(org.as_uuid())
            .bind(limit)
            .bind(after.as_uuid()),
        }
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
        let rows = sqlx::query(
            "SELECT m.org_id, m.user_id, m.created_at, m.updated_at, r.role,
                    o.slug, o.name, o.metadata, o.created_at AS org_created_at
             FROM (SELECT org_id, user_id, created_at, updated_at FROM memberships
                   WHERE user_id = $1 AND ($2::uuid IS NULL OR org_id > $2) ORDER BY org_id LIMIT $3) m
             JOIN organizations o ON o.id = m.org_id
             LEFT JOIN membership_roles r ON r.org_id = m.org_id AND r.user_id = m.user_id
             ORDER BY m.org_id, r.role",
        )
        .bind(user.as_uuid())
        .bind(after.map(|org| org.as_uuid()))
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
        let mut tx = self.begin().await?;
        if !lock_org(&mut tx, org).await? {
            return Err(not_found("membership"));
        }
        let current = membership_on(&mut tx, org, user)
            .await?
            .ok_or_else(|| not_found("membership"))?;
        if !roles.has_owner() {
            check_not_last_owner(&mut tx, &current).await?;
        }
        sqlx::query("DELETE FROM membership_roles WHERE org_id = $1 AND user_id = $2")
            .bind(org.as_uuid())
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_roles(&mut tx, org, user, roles).await?;
        sqlx::query("UPDATE memberships SET updated_at = $1 WHERE org_id = $2 AND user_id = $3")
            .bind(stored_time(at))
            .bind(org.as_uuid())
            .bind(user.as_uuid())
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
        let mut tx = self.begin().await?;
        if !lock_org(&mut tx, org).await? {
            return Err(not_found("membership"));
        }
        let current = membership_on(&mut tx, org, user)
            .await?
            .ok_or_else(|| not_found("membership"))?;
        check_not_last_owner(&mut tx, &current).await?;
        // The roles go with the membership (`ON DELETE CASCADE`).
        sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org.as_uuid())
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(current)
    }

    async fn add_member(&self, membership: &Membership, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // Organizations are never deleted, so an org seen here still exists at commit.
        let org: Option<i32> = sqlx::query_scalar("SELECT 1 FROM organizations WHERE id = $1")
            .bind(membership.org.as_uuid())
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
            InvitationState::Accepted { by, at } => (Some(by.as_uuid()), Some(stored_time(*at)), None),
            InvitationState::Revoked { at } => (None, None, Some(stored_time(*at))),
        };
        let mut tx = self.begin().await?;
        // Organizations are never deleted, so an org seen here still exists at commit.
        let org: Option<i32> = sqlx::query_scalar("SELECT 1 FROM organizations WHERE id = $1")
            .bind(invitation.org.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if org.is_none() {
            return Err(not_found("organization"));
        }
        sqlx::query(
            "INSERT INTO invitations (id, org_id, email, roles, invited_by, created_at, expires_at, state,
                                      accepted_by, accepted_at, revoked_at, token_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(invitation.id.as_uuid())
        .bind(invitation.org.as_uuid())
        .bind(invitation.email.as_str())
        .bind(role_names(&invitation.roles))
        .bind(invitation.invited_by.to_string())
        .bind(stored_time(invitation.created_at))
        .bind(stored_time(invitation.expires_at))
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
                    ("invitations_pkey", Conflict::AlreadyExists { entity: "invitation" }),
                    (
                        "invitations_token_hash_key",
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
             FROM invitations WHERE org_id = $1 AND id = $2",
        )
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    async fn find_invitation_by_token(&self, hash: &TokenHash) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(
            "SELECT id, org_id, email, roles, invited_by, created_at, expires_at, state,
                    accepted_by, accepted_at, revoked_at, token_hash
             FROM invitations WHERE token_hash = $1",
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match after {
            None => sqlx::query(
                "SELECT id, org_id, email, roles, invited_by, created_at, expires_at, state,
                        accepted_by, accepted_at, revoked_at, token_hash
                 FROM invitations WHERE org_id = $1 ORDER BY id LIMIT $2",
            )
            .bind(org.as_uuid())
            .bind(limit),
            Some(after) => sqlx::query(
                "SELECT id, org_id, email, roles, invited_by, created_at, expires_at, state,
                        accepted_by, accepted_at, revoked_at, token_hash
                 FROM invitations WHERE org_id = $1 AND id > $3 ORDER BY id LIMIT $2",
            )
            .bind(org.as_uuid())
            .bind(limit)
            .bind(after.as_uuid()),
        }
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
        let at = stored_time(at);
        let mut tx = self.begin().await?;
        // The state check and the write are one statement: a concurrent call waits for
        // this row's lock, then re-checks the condition on the committed row and
        // finds it no longer pending.
        let accepted: Option<(Uuid, Vec<String>)> = sqlx::query_as(
            "UPDATE invitations SET state = 'accepted', accepted_by = $1, accepted_at = $2
             WHERE id = $3 AND state = 'pending' AND expires_at > $2
             RETURNING org_id, roles",
        )
        .bind(user.as_uuid())
        .bind(at)
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some((org, roles)) = accepted else {
            // Nothing changed; say why. The invitation only ever leaves `pending`, so a
            // pending row here failed on its expiry.
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM invitations WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            return Err(match state.as_deref() {
                None => not_found("invitation"),
                Some("pending") => Conflict::InvitationExpired.into(),
                Some(_) => Conflict::InvitationNotPending.into(),
            });
        };
        let org = OrgId::from_uuid(org);
        let roles = BACKEND.decode(|| format!("roles of {id}"), RoleSet::parse(&roles))?;
        if !user_exists(&mut tx, user).await? {
            return Err(not_found("user"));
        }
        // Changes to the org's memberships take turns (see `lock_org`), so the membership
        // read next cannot be removed before this transaction commits.
        if !lock_org(&mut tx, org).await? {
            return Err(BACKEND.corrupt(format!("organization of {id}")));
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
                sqlx::query("UPDATE memberships SET updated_at = $1 WHERE org_id = $2 AND user_id = $3")
                    .bind(at)
                    .bind(org.as_uuid())
                    .bind(user.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                Membership {
                    roles: union,
                    updated_at: at,
                    ..existing
                }
            }
            None => {
                let membership = Membership {
                    org,
                    user,
                    roles,
                    created_at: at,
                    updated_at: at,
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
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE invitations SET state = 'revoked', revoked_at = $1
             WHERE org_id = $2 AND id = $3 AND state = 'pending'
             RETURNING id, org_id, email, roles, invited_by, created_at, expires_at, state,
                       accepted_by, accepted_at, revoked_at, token_hash",
        )
        .bind(stored_time(at))
        .bind(org.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM invitations WHERE org_id = $1 AND id = $2")
                    .bind(org.as_uuid())
                    .bind(id.as_uuid())
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
impl ApiVersionStore for PgTenancyStore {
    async fn api_version(&self, org: OrgId) -> Result<Option<ApiVersionName>, StoreError> {
        let name: Option<String> = sqlx::query_scalar("SELECT version FROM org_api_versions WHERE org_id = $1")
            .bind(org.as_uuid())
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
        let mut tx = self.begin().await?;
        // Organizations are never deleted, so an org seen here still exists at commit.
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM organizations WHERE id = $1")
            .bind(org.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if exists.is_none() {
            return Err(not_found("organization"));
        }
        sqlx::query(
            "INSERT INTO org_api_versions (org_id, version) VALUES ($1, $2) \
             ON CONFLICT (org_id) DO UPDATE SET version = excluded.version",
        )
        .bind(org.as_uuid())
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
