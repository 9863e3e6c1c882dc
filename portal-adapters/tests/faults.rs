//! Fault injection against the SQL stores: a connection killed mid-transaction and an
//! exhausted pool both give `StoreError::Unavailable` (`storage.unavailable`, retryable),
//! leave nothing half-written, and the next call succeeds; a Postgres connection killed
//! while it rested in the pool is found by `postgres::pool_options`' ping and replaced.
//! A pin the database refuses (a trigger) takes the new org down with it:
//! `create_pinned_org` writes the org, its owner and its pin together or not at all.
//!
//! Postgres tests need `PORTAL_TEST_POSTGRES_URL` and are skipped, saying so, without it.

#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use portal_core::ids::{OrgId, UserId};
use portal_core::store::StoreError;
use portal_core::tenancy::{
    ApiVersionName, ApiVersionStore, DisplayName, Email, Membership, Metadata, OrgName, Organization, RoleName,
    RoleSet, Slug, TenancyStore, User,
};
use portal_core::time::truncate_to_micros;
use portal_core::{ErrorCode, PortalError};
use time::OffsetDateTime;
use uuid::Uuid;

/// A short unique suffix for slugs and email addresses.
fn unique() -> String {
    format!("{:x}", Uuid::now_v7().as_u128() & 0xffff_ffff_ffff)
}

fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

fn new_user() -> User {
    User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::new(&format!("user-{}@example.com", unique())).unwrap(),
        display_name: DisplayName::new("Test User").unwrap(),
        created_at: now(),
    }
}

fn new_org(owner: &User) -> (Organization, Membership) {
    let org = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: Slug::new(&format!("org-{}", unique())).unwrap(),
        name: OrgName::new("Test Org").unwrap(),
        metadata: Metadata::new(BTreeMap::from([("plan".to_owned(), "pro".to_owned())])).unwrap(),
        created_at: now(),
    };
    let membership = Membership {
        org: org.id,
        user: owner.id,
        roles: RoleSet::one(RoleName::owner()),
        created_at: org.created_at,
        updated_at: org.created_at,
    };
    (org, membership)
}

/// Asserts that `err` is `Unavailable` and becomes a retryable `storage.unavailable`.
fn assert_unavailable(err: StoreError) {
    assert!(
        matches!(err, StoreError::Unavailable { .. }),
        "expected Unavailable, got {err:?}"
    );
    assert!(err.is_retryable());
    assert_portal_unavailable(&PortalError::from(err));
}

fn assert_portal_unavailable(err: &PortalError) {
    assert_eq!(err.code(), ErrorCode::StorageUnavailable, "{err:?}");
    assert_eq!(err.code().as_str(), "storage.unavailable");
    assert!(err.is_retryable());
}

/// Creates a pinned org in `store` while the database refuses every pin (the trigger set by
/// the caller), and asserts nothing of it is stored; then, the trigger dropped by
/// `allow_pins`, the same org is created with its pin.
async fn a_refused_pin_leaves_no_org<S, F>(store: &S, allow_pins: F)
where
    S: TenancyStore + ApiVersionStore,
    F: AsyncFnOnce(),
{
    let user = new_user();
    store.create_user(&user).await.unwrap();
    let (org, owner) = new_org(&user);
    let version = ApiVersionName::new("2026-12-01").unwrap();
    let err = store.create_pinned_org(&org, &owner, &version).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    assert_eq!(store.get_org(org.id).await.unwrap(), None, "no org without its pin");
    assert_eq!(
        store.get_org_by_slug(&org.slug).await.unwrap(),
        None,
        "its slug is free"
    );
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        None,
        "no owner either"
    );
    assert_eq!(store.api_version(org.id).await.unwrap(), None);

    allow_pins().await;
    store.create_pinned_org(&org, &owner, &version).await.unwrap();
    assert_eq!(store.get_org(org.id).await.unwrap(), Some(org.clone()));
    assert_eq!(store.api_version(org.id).await.unwrap(), Some(version));
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;

    use portal_adapters::postgres::PgTenancyStore;
    use portal_core::tenancy::NewOrg;
    use portal_core::{Portal, Principal};

    use super::*;
    use crate::common;

    /// Kills the backend of `pool`'s one connection from another connection.
    async fn kill_pooled_connection(pool: &sqlx::PgPool, url: &str) {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(pool)
            .await
            .unwrap();
        let mut other = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.unwrap();
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert!(killed, "the pooled connection's backend was terminated");
        // Let the server close the socket before the pool hands the connection out again.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    #[tokio::test]
    async fn a_refused_pin_rolls_the_new_org_back() {
        let Some(store) = common::fresh_pg_store().await else {
            return;
        };
        let pool = store.pool().clone();
        sqlx::raw_sql(
            "CREATE FUNCTION refuse_pin() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'pins are refused'; END $$; \
             CREATE TRIGGER refuse_pin BEFORE INSERT ON org_api_versions \
             FOR EACH ROW EXECUTE FUNCTION refuse_pin();",
        )
        .execute(&pool)
        .await
        .unwrap();
        a_refused_pin_leaves_no_org(&store, async || {
            sqlx::query("DROP TRIGGER refuse_pin ON org_api_versions")
                .execute(&pool)
                .await
                .unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn a_connection_killed_while_idle_is_pinged_and_replaced_once_it_rested() {
        let Some(url) = common::postgres_url() else {
            return;
        };
        // Rested long enough (zero): pinged before it is handed out, found dead, replaced.
        let pool = portal_adapters::postgres::pool_options(Duration::ZERO)
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        kill_pooled_connection(&pool, &url).await;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
        assert_eq!(one, 1, "the next statement ran on a new connection");

        // Used too recently to be pinged: the dead connection fails its statement (the
        // store reports that as `Unavailable`), and the pool replaces it for the next.
        let pool = portal_adapters::postgres::pool_options(Duration::from_secs(3600))
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        kill_pooled_connection(&pool, &url).await;
        let failed = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool).await;
        assert!(failed.is_err(), "no ping: the dead connection's statement fails");
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
        assert_eq!(one, 1, "and the pool replaced it");
    }

    #[tokio::test]
    async fn a_connection_killed_mid_transaction_is_unavailable_and_writes_nothing() {
        let Some(schema) = common::fresh_pg_schema().await else {
            return;
        };
        let pool = common::fresh_pg_pool_with(&schema, common::pg_pool_options()).await;
        let store = PgTenancyStore::new(pool);
        let user = new_user();
        store.create_user(&user).await.unwrap();
        let (org, owner) = new_org(&user);

        let result = common::kill_while_blocked(&schema, common::LockedTable::Memberships, {
            let (store, org, owner) = (store.clone(), org.clone(), owner.clone());
            async move { store.create_org(&org, &owner).await }
        })
        .await;
        assert_unavailable(result.unwrap_err());

        // The org row was inserted before the transaction blocked; it was rolled back.
        assert_eq!(store.get_org(org.id).await.unwrap(), None);
        assert_eq!(store.get_org_by_slug(&org.slug).await.unwrap(), None);
        assert_eq!(store.get_membership(org.id, user.id).await.unwrap(), None);
        assert!(store.list_user_orgs(user.id, None, 100).await.unwrap().is_empty());

        // The pool replaces the dead connection; the same call now succeeds.
        store.create_org(&org, &owner).await.unwrap();
        assert_eq!(store.get_org(org.id).await.unwrap(), Some(org.clone()));
        assert_eq!(store.get_membership(org.id, user.id).await.unwrap(), Some(owner));
    }

    #[tokio::test]
    async fn a_service_call_whose_connection_is_killed_answers_storage_unavailable() {
        let Some(schema) = common::fresh_pg_schema().await else {
            return;
        };
        let pool = common::fresh_pg_pool_with(&schema, common::pg_pool_options()).await;
        let store = PgTenancyStore::new(pool);
        let user = new_user();
        store.create_user(&user).await.unwrap();
        let portal = Portal::builder()
            .tenancy_store(Arc::new(store.clone()))
            .build()
            .unwrap();
        let slug = format!("org-{}", unique());
        let new = NewOrg {
            slug: slug.clone(),
            name: "Acme".to_owned(),
            ..NewOrg::default()
        };

        let result = common::kill_while_blocked(&schema, common::LockedTable::Memberships, {
            let (portal, new) = (portal.clone(), new.clone());
            async move {
                let ctx = portal.context(Principal::User(user.id)).build();
                portal.tenancy().create_org(&ctx, new).await
            }
        })
        .await;
        assert_portal_unavailable(&result.unwrap_err());
        assert_eq!(store.get_org_by_slug(&Slug::new(&slug).unwrap()).await.unwrap(), None);

        let ctx = portal.context(Principal::User(user.id)).build();
        let org = portal.tenancy().create_org(&ctx, new).await.unwrap();
        assert_eq!(store.get_org_by_slug(&org.slug).await.unwrap(), Some(org));
    }

    #[tokio::test]
    async fn an_exhausted_pool_is_unavailable_until_a_connection_is_free() {
        let Some(schema) = common::fresh_pg_schema().await else {
            return;
        };
        let options = common::pg_pool_options()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(200));
        let pool = common::fresh_pg_pool_with(&schema, options).await;
        let store = PgTenancyStore::new(pool.clone());
        let user = new_user();

        let held = pool.acquire().await.unwrap();
        assert_unavailable(store.create_user(&user).await.unwrap_err());
        assert_unavailable(store.get_user(user.id).await.unwrap_err());
        drop(held);

        store.create_user(&user).await.unwrap();
        assert_eq!(store.get_user(user.id).await.unwrap(), Some(user));
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use portal_adapters::sqlite::SqliteTenancyStore;

    use super::*;
    use crate::common;

    #[tokio::test]
    async fn a_refused_pin_rolls_the_new_org_back() {
        let pool = common::fresh_sqlite_pool().await;
        let store = SqliteTenancyStore::new(pool.clone());
        sqlx::query(
            "CREATE TRIGGER refuse_pin BEFORE INSERT ON org_api_versions
             BEGIN SELECT RAISE(ABORT, 'pins are refused'); END",
        )
        .execute(&pool)
        .await
        .unwrap();
        a_refused_pin_leaves_no_org(&store, async || {
            sqlx::query("DROP TRIGGER refuse_pin").execute(&pool).await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn an_exhausted_pool_is_unavailable_until_a_connection_is_free() {
        let options = common::sqlite_pool_options()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(200));
        let pool = common::fresh_sqlite_pool_with(options).await;
        let store = SqliteTenancyStore::new(pool.clone());
        let user = new_user();
        let (org, owner) = new_org(&user);

        let held = pool.acquire().await.unwrap();
        assert_unavailable(store.create_user(&user).await.unwrap_err());
        assert_unavailable(store.get_user(user.id).await.unwrap_err());
        drop(held);

        store.create_user(&user).await.unwrap();
        assert_eq!(store.get_user(user.id).await.unwrap(), Some(user));

        // A transaction that cannot start writes nothing either.
        let held = pool.acquire().await.unwrap();
        assert_unavailable(store.create_org(&org, &owner).await.unwrap_err());
        drop(held);
        assert_eq!(store.get_org(org.id).await.unwrap(), None);
        store.create_org(&org, &owner).await.unwrap();
        assert_eq!(store.get_org(org.id).await.unwrap(), Some(org));
    }
}
