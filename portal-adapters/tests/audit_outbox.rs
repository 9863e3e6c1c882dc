//! The outbox under faults: when a change's audit event cannot be written, the change is
//! not stored either. On SQLite a trigger refuses the event's insert; on Postgres a
//! trigger raises, and another terminates the transaction's own connection while the
//! event is inserted, after the change's statements ran (the connection dies between
//! the change and its commit). The identity store's audited changes (a password set, a
//! sign-in's session) fail the same way, on both.
//!
//! Postgres tests need `PORTAL_TEST_POSTGRES_URL` and are skipped, saying so, without it.

#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use portal_core::audit::{AuditLog, AuditQuery, actions};
use portal_core::identity::{PasswordRecord, SessionRecord};
use portal_core::store::StoreError;
use portal_core::tenancy::{RoleSet, TenancyStore};
use portal_core::testing::audit::audit_event;
use portal_core::testing::identity_audit::{AuditedIdentityStore, user_event};
use portal_core::testing::tenancy::fixtures::{add_member, new_org, new_user};
use portal_core::testing::tenancy::{at, invitation_value, roles_of};

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

/// Tries a password set and a sign-in's session for a member while the event insert
/// fails (the outbox is broken by `break_outbox` after the membership is made), then
/// proves neither was stored and the org's log is as it was; returns the two errors.
async fn identity_changes_fail_without_their_events(
    tenancy: &dyn TenancyStore,
    identity: &dyn AuditedIdentityStore,
    log: &dyn AuditLog,
    break_outbox: impl AsyncFnOnce(),
) -> Vec<StoreError> {
    let owner = new_user(tenancy).await;
    let org = new_org(tenancy, &owner).await;
    let user = new_user(tenancy).await;
    add_member(tenancy, &org, &user, roles_of(&["member"]), at(1)).await;
    let before = log.list(org.id, &AuditQuery::default(), None, 100).await.unwrap();
    break_outbox().await;

    let mut errors = Vec::new();
    let password = PasswordRecord {
        user: user.id,
        email: user.email.clone(),
        hash: secrecy::SecretString::from("$argon2id$never".to_owned()),
        updated_at: at(2),
    };
    errors.push(
        identity
            .set_password(&password, Some(&user_event(user.id, actions::USER_PASSWORD_CHANGED, 2)))
            .await
            .expect_err("a password whose event cannot be written fails"),
    );
    let session = SessionRecord {
        id: portal_core::ids::SessionId::generate(&portal_core::ids::RandomIds::default(), at(3)),
        user: user.id,
        token_hash: portal_core::tenancy::TokenHash::of("a session token of the outbox test"),
        active_org: Some(org.id),
        created_at: at(3),
        last_seen_at: at(3),
        absolute_expires_at: at(3600),
        revoked_at: None,
    };
    errors.push(
        identity
            .create(&session, Some(&user_event(user.id, actions::USER_SIGNED_IN, 3)))
            .await
            .expect_err("a sign-in whose event cannot be written fails"),
    );

    assert!(
        identity.find_password(&user.email).await.unwrap().is_none(),
        "the password was not stored"
    );
    assert_eq!(
        identity.find_by_token(&session.token_hash).await.unwrap(),
        None,
        "the session was not stored"
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
    use portal_adapters::sqlite::{SqliteAuditLog, SqliteIdentityStore, SqliteTenancyStore};

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
    async fn a_refused_event_insert_rolls_an_identity_change_back() {
        let pool = common::fresh_sqlite_pool().await;
        let tenancy = SqliteTenancyStore::new(pool.clone());
        let identity = SqliteIdentityStore::new(pool.clone());
        let log = SqliteAuditLog::new(pool.clone());
        let errors = identity_changes_fail_without_their_events(&tenancy, &identity, &log, async || {
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
    use portal_adapters::postgres::{PgAuditLog, PgIdentityStore, PgTenancyStore};

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

    /// The identity store's change dies with its connection when the event insert
    /// terminates it: `Unavailable`, and neither the password nor the session is stored.
    #[tokio::test]
    async fn a_connection_killed_during_an_identity_events_insert_stores_nothing() {
        let Some(pool) = common::fresh_pg_pool().await else {
            return;
        };
        let tenancy = PgTenancyStore::new(pool.clone());
        let identity = PgIdentityStore::new(pool.clone());
        let log = PgAuditLog::new(pool.clone());
        let errors = identity_changes_fail_without_their_events(&tenancy, &identity, &log, async || {
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
