//! Replicas in step: two `Portal`s share one tenancy store and one policy store, each with
//! its own `CasbinAuthorizer` kept in step by `portal_auth::sync::follow`.
//!
//! A policy change made through one portal (a custom role granting `reports read`,
//! given to a member) is visible to checks through the other within a second, carried as
//! a change (no full reload); and after the follower's feed loses changes (a trimmed log
//! in memory, a killed listening connection on Postgres) a change made meanwhile arrives
//! with the resync. The Postgres tests need `PORTAL_TEST_POSTGRES_URL`; without it they
//! return early after printing that they were skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;
mod policy_world;

use std::time::Duration;

use portal_auth::sync::{FollowStatus, Following};
use portal_core::policy::{CustomRole, RolePermission};
use portal_core::{ErrorCode, Portal};

use policy_world::{People, ctx, role};

/// How long a replica may take to see a change another replica committed.
const WITHIN: Duration = Duration::from_secs(1);

/// The custom role the tests create: a viewer who may also read reports.
fn reports_reader() -> CustomRole {
    CustomRole {
        name: role("reports-reader"),
        parent: Some(role("viewer")),
        permissions: vec![RolePermission::allow("reports", "read")],
    }
}

/// Whether `user` may `action` on `reports` through `portal`.
async fn may(portal: &Portal, people: &People, action: &str) -> bool {
    let policy = portal.policy().unwrap();
    match policy
        .check(&ctx(portal, people.viewer), people.org, "reports", action)
        .await
    {
        Ok(()) => true,
        Err(err) if err.code() == ErrorCode::AccessDenied => false,
        Err(err) => panic!("the check failed: {err:?}"),
    }
}

/// The writer creates the role and gives it to the viewer, sees it at once, and the
/// follower sees it within [`WITHIN`], as a change. Returns the revision reached.
async fn change_on_writer_reaches_follower(
    writer: &Portal,
    follower: &Portal,
    following: &Following,
    people: &People,
) -> portal_core::access::Revision {
    assert!(!may(follower, people, "read").await, "nobody reads reports yet");
    let resyncs_before = following.status().resyncs;
    let owner = ctx(writer, people.owner);
    let policy = writer.policy().unwrap();
    let (_, revision) = policy.create_role(&owner, people.org, reports_reader()).await.unwrap();
    policy
        .assign_role(&owner, people.org, people.viewer, &role("reports-reader"))
        .await
        .unwrap();
    assert!(
        may(writer, people, "read").await,
        "the writer sees its own change at once"
    );

    let status: FollowStatus = following.wait_for(revision, WITHIN).await.unwrap();
    assert!(
        may(follower, people, "read").await,
        "the follower sees it within a second"
    );
    assert!(status.changes >= 1, "the follower applied a change: {status:?}");
    assert_eq!(
        status.resyncs, resyncs_before,
        "and did not reload everything: {status:?}"
    );
    assert!(!may(follower, people, "export").await, "only what the role grants");
    revision
}

mod memory {
    use std::sync::Arc;

    use portal_adapters::memory::{InMemoryPolicyStore, InMemoryTenancyStore};
    use portal_auth::sync::follow;
    use portal_core::access::PolicyStore;
    use portal_core::tenancy::TenancyStore;

    use super::policy_world::{CollectingSink, people, portal_over, seed};
    use super::*;

    #[tokio::test]
    async fn a_change_through_one_portal_reaches_the_other_and_a_resync_carries_what_was_missed() {
        let tenancy: Arc<dyn TenancyStore> = Arc::new(InMemoryTenancyStore::new());
        let store = InMemoryPolicyStore::new();
        seed(&store).await;
        let sink = Arc::new(CollectingSink::default());
        let (writer, writer_authz) = portal_over(tenancy.clone(), Arc::new(store.clone()), sink.clone()).await;
        let (follower, follower_authz) = portal_over(tenancy.clone(), Arc::new(store.clone()), sink).await;
        let _writer_following = follow(store.feed(writer_authz.revision()), writer_authz);
        let following = follow(store.feed(follower_authz.revision()), follower_authz.clone());
        let people = people(&writer).await;

        let revision = change_on_writer_reaches_follower(&writer, &follower, &following, &people).await;

        // The follower stops; a change is made and the log trimmed past it, so a new
        // feed from where the follower was cannot replay it and must resync.
        following.stop();
        let mut widened = reports_reader();
        widened.permissions.push(RolePermission::allow("reports", "export"));
        let owner = ctx(&writer, people.owner);
        let (_, later) = writer
            .policy()
            .unwrap()
            .update_role(&owner, people.org, widened)
            .await
            .unwrap();
        store.trim_changes(later).await.unwrap();
        assert!(
            !may(&follower, &people, "export").await,
            "the stopped follower missed it"
        );
        let following = follow(store.feed(revision), follower_authz);
        let status = following.wait_for(later, WITHIN).await.unwrap();
        assert_eq!(status.resyncs, 1, "{status:?}");
        assert!(may(&follower, &people, "export").await, "the resync carried the change");
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;

    use portal_adapters::postgres::{PgPolicyListener, PgPolicyStore, PgTenancyStore};
    use portal_auth::CasbinAuthorizer;
    use portal_auth::sync::follow;
    use sqlx::PgPool;
    use sqlx::postgres::PgPoolOptions;

    use super::common::{self, PgSchema};
    use super::policy_world::{CollectingSink, people, portal_over, seed};
    use super::*;

    /// One replica: its own pool on the shared schema, its own stores, portal and
    /// authorizer, and a listener on a one-connection pool named `<schema>_<name>`.
    async fn replica(schema: &PgSchema, name: &str) -> (Portal, Arc<CasbinAuthorizer>, Following, PgPool) {
        let pool = PgPoolOptions::new()
            .max_connections(common::PG_MAX_CONNECTIONS)
            .connect_with(schema.options.clone())
            .await
            .unwrap();
        let policy = PgPolicyStore::new(pool.clone()).with_channel(common::schema_channel(schema));
        let channel = policy.channel().clone();
        let (portal, authz) = portal_over(
            Arc::new(PgTenancyStore::new(pool.clone())),
            Arc::new(policy),
            Arc::new(CollectingSink::default()),
        )
        .await;
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(
                schema
                    .options
                    .clone()
                    .application_name(&format!("{}_{name}", schema.name)),
            )
            .await
            .unwrap();
        let listener = PgPolicyListener::connect(&listener_pool, channel, authz.revision())
            .await
            .unwrap();
        let following = follow(listener, authz.clone());
        (portal, authz, following, pool)
    }

    #[tokio::test]
    async fn two_portals_on_one_database_stay_in_step_through_notify_and_a_killed_listener() {
        let Some(schema) = common::fresh_pg_schema().await else {
            return;
        };
        let setup = common::fresh_pg_pool_with(&schema, common::pg_pool_options()).await;
        seed(&PgPolicyStore::new(setup.clone()).with_channel(common::schema_channel(&schema))).await;
        let (writer, _writer_authz, _writer_following, _) = replica(&schema, "writer").await;
        let (follower, _follower_authz, following, pool) = replica(&schema, "follower").await;
        let people = people(&writer).await;

        change_on_writer_reaches_follower(&writer, &follower, &following, &people).await;

        // Kill the follower's listening connection; change the role meanwhile.
        let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(format!("{}_follower", schema.name))
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(pids.len(), 1, "one backend serves the follower's listener: {pids:?}");
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
            .bind(pids[0])
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(killed);
        let mut widened = reports_reader();
        widened.permissions.push(RolePermission::allow("reports", "export"));
        let (_, later) = writer
            .policy()
            .unwrap()
            .update_role(&ctx(&writer, people.owner), people.org, widened)
            .await
            .unwrap();

        let status = following.wait_for(later, Duration::from_secs(5)).await.unwrap();
        assert!(
            status.resyncs >= 1,
            "the lost connection was followed by a resync: {status:?}"
        );
        assert!(
            may(&follower, &people, "export").await,
            "the change made meanwhile is visible"
        );
    }
}
