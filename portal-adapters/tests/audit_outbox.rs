//! The outbox under faults: when a change's audit event cannot be written, the change is
//! not stored either. On SQLite a trigger refuses the event's insert; on Postgres a
//! trigger raises, and another terminates the transaction's own connection while the
//! event is inserted, after the change's statements ran (the connection dies between
//! the change and its commit).
//!
//! Postgres tests need `PORTAL_TEST_POSTGRES_URL` and are skipped, saying so, without it.

#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use portal_core::audit::{AuditLog, AuditQuery};
use portal_core::store::StoreError;
use portal_core::tenancy::{RoleSet, TenancyStore};
use portal_core::testing::audit::audit_event;
use portal_core::testing::tenancy::fixtures::{add_member, new_org, new_user};
use portal_core::testing::tenancy::{at, invitation_value, roles_of};
use portal_core::testing::workflow::{change, creation, instance_value, new_org as new_org_id, new_user as new_actor};
use portal_core::workflow::{Applied, WorkflowStore};

/// Tries a transition (keyed) and a creation while the event insert fails, then proves
/// neither was stored (the instance at its version with one history entry, the key
/// unclaimed, no second instance) and the log holds no new event; returns the errors.
async fn workflow_changes_fail_without_their_events(
    store: &dyn WorkflowStore,
    log: &dyn AuditLog,
    break_outbox: impl AsyncFnOnce(),
) -> Vec<StoreError> {
    let org = new_org_id();
    let actor = new_actor();
    let instance = instance_value(org, "support_case", "open");
    assert!(matches!(
        store.create(&creation(&instance)).await.unwrap(),
        Applied::Committed(_)
    ));
    let before = log.list(org, &AuditQuery::default(), None, 100).await.unwrap();
    assert_eq!(before.len(), 1, "the creation wrote its event");
    break_outbox().await;

    let transition = change(&instance, "triaged", &actor, Some(("outbox-1", 1)));
    let second = instance_value(org, "support_case", "open");
    let errors = vec![
        store
            .apply(&transition)
            .await
            .expect_err("a transition whose event cannot be written fails"),
        store
            .create(&creation(&second))
            .await
            .expect_err("a creation whose event cannot be written fails"),
    ];
    assert_eq!(
        store.get(org, instance.id).await.unwrap(),
        Some(instance.clone()),
        "the instance is as it was"
    );
    assert_eq!(store.history(org, instance.id, None, 100).await.unwrap().len(), 1);
    assert_eq!(
        store
            .find_idempotency(org, &actor, &transition.idempotency.as_ref().unwrap().key)
            .await
            .unwrap(),
        None,
        "the key was not claimed"
    );
    assert_eq!(store.get(org, second.id).await.unwrap(), None, "no second instance");
    assert_eq!(
        log.list(org, &AuditQuery::default(), None, 100).await.unwrap(),
        before,
        "no event was added"
    );
    errors
}

/// Tries a role change and an invitation while the event insert fails with `fails`,
/// then proves neither change was stored and the log holds no event of either; returns
/// the two errors.
async fn changes_fail_without_their_events(
    store: &dyn TenancyStore,
    log: &dyn AuditLog,
    break_outbox: impl AsyncFnOnce(),
) -> Vec<StoreError> {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    add_member(store, &org, &user, roles_of(&["member"]), at(1)).await;
    let before = log.list(org.id, &AuditQuery::default(), None, 100).await.unwrap();
    break_outbox().await;

    let mut errors = Vec::new();
    let change = audit_event(org.id);
    errors.push(
        store
            .set_member_roles(org.id, user.id, &roles_of(&["admin"]), at(2), &change)
            .await
            .expect_err("a role change whose event cannot be written fails"),
    );
    let invitation = invitation_value(&org, &user.email, roles_of(&["viewer"]), at(3600));
    errors.push(
        store
            .create_invitation(&invitation, &audit_event(org.id))
            .await
            .expect_err("an invitation whose event cannot be written fails"),
    );
    let removal = audit_event(org.id);
    errors.push(
        store
            .remove_member(org.id, user.id, &removal)
            .await
            .expect_err("a removal whose event cannot be written fails"),
    );

    let member = store.get_membership(org.id, user.id).await.unwrap();
    assert_eq!(
        member.map(|m| m.roles),
        Some(RoleSet::parse(["member"]).unwrap()),
        "the member is still there with the roles they had"
    );
    assert_eq!(
        store.get_invitation(org.id, invitation.id).await.unwrap(),
        None,
        "the invitation was not stored"
    );
    assert_eq!(
        log.list(org.id, &AuditQuery::default(), None, 100).await.unwrap(),
        before,
        "no event was added"
    );
    errors
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use portal_adapters::sqlite::{SqliteAuditLog, SqliteTenancyStore};

    use super::*;

    #[tokio::test]
    async fn a_refused_event_insert_rolls_the_change_back() {
        let pool = common::fresh_sqlite_pool().await;
        let store = SqliteTenancyStore::new(pool.clone());
        let log = SqliteAuditLog::new(pool.clone());
        let errors = changes_fail_without_their_events(&store, &log, async || {
            sqlx::query(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events
                 BEGIN SELECT RAISE(ABORT, 'the outbox refuses'); END",
            )
            .execute(&pool)
            .await
            .unwrap();
        })
        .await;
        for err in errors {
            assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_refused_event_insert_rolls_the_workflow_transition_back() {
        let pool = common::fresh_sqlite_pool().await;
        let store = portal_adapters::sqlite::SqliteWorkflowStore::new(pool.clone());
        let log = SqliteAuditLog::new(pool.clone());
        let errors = workflow_changes_fail_without_their_events(&store, &log, async || {
            sqlx::query(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events
                 BEGIN SELECT RAISE(ABORT, 'the outbox refuses'); END",
            )
            .execute(&pool)
            .await
            .unwrap();
        })
        .await;
        for err in errors {
            assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use portal_adapters::postgres::{PgAuditLog, PgTenancyStore};

    use super::*;

    #[tokio::test]
    async fn a_raising_event_insert_rolls_the_change_back() {
        let Some(pool) = common::fresh_pg_pool().await else {
            return;
        };
        let store = PgTenancyStore::new(pool.clone());
        let log = PgAuditLog::new(pool.clone());
        let errors = changes_fail_without_their_events(&store, &log, async || {
            sqlx::raw_sql(
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN RAISE EXCEPTION 'the outbox refuses'; END $$;
                 CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events
                   FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
            )
            .execute(&pool)
            .await
            .unwrap();
        })
        .await;
        for err in errors {
            assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_raising_event_insert_rolls_the_workflow_transition_back() {
        let Some(pool) = common::fresh_pg_pool().await else {
            return;
        };
        let store = portal_adapters::postgres::PgWorkflowStore::new(pool.clone());
        let log = PgAuditLog::new(pool.clone());
        let errors = workflow_changes_fail_without_their_events(&store, &log, async || {
            sqlx::raw_sql(
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN RAISE EXCEPTION 'the outbox refuses'; END $$;
                 CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events
                   FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
            )
            .execute(&pool)
            .await
            .unwrap();
        })
        .await;
        for err in errors {
            assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        }
    }

    /// The connection is terminated after the change's statements ran and before the
    /// commit: the store answers `Unavailable`, nothing is stored, and once the fault
    /// is gone the same change commits with its event.
    #[tokio::test]
    async fn a_connection_killed_between_the_change_and_its_commit_stores_nothing() {
        let Some(pool) = common::fresh_pg_pool().await else {
            return;
        };
        let store = PgTenancyStore::new(pool.clone());
        let log = PgAuditLog::new(pool.clone());
        let errors = changes_fail_without_their_events(&store, &log, async || {
            sqlx::raw_sql(
                "CREATE FUNCTION kill_audit() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NEW; END $$;
                 CREATE TRIGGER kill_audit BEFORE INSERT ON audit_events
                   FOR EACH ROW EXECUTE FUNCTION kill_audit();",
            )
            .execute(&pool)
            .await
            .unwrap();
        })
        .await;
        for err in errors {
            assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        }

        sqlx::query("DROP TRIGGER kill_audit ON audit_events")
            .execute(&pool)
            .await
            .unwrap();
        let owner = new_user(&store).await;
        let org = new_org(&store, &owner).await;
        let user = new_user(&store).await;
        add_member(&store, &org, &user, roles_of(&["member"]), at(1)).await;
        let change = audit_event(org.id);
        store
            .set_member_roles(org.id, user.id, &roles_of(&["admin"]), at(2), &change)
            .await
            .expect("with the fault gone the change commits");
        let events = log.list(org.id, &AuditQuery::default(), None, 100).await.unwrap();
        assert!(events.contains(&change), "with its event");
    }
}
