//! The outbox under faults: when a change's audit event cannot be written, the change is
//! not stored either. On SQLite a trigger refuses the event's insert; on Postgres a
//! trigger raises, and another terminates the transaction's own connection while the
//! event is inserted, after the change's statements ran (the connection dies between
//! the change and its commit). The identity store's audited changes (a password set, a
//! sign-in's session) and a workflow's transition and creation fail the same way, on both.
//!
//! The administration stores (custom roles, API keys, support grants) are held to the
//! same: a refused event insert leaves no role line, key, grant or revocation behind;
//! and a role change's event fans out to a webhook endpoint subscribed to `role.created`
//! (a pending delivery, claimed with the event) on memory, SQLite and Postgres.
//!
//! Postgres tests need `PORTAL_TEST_POSTGRES_URL` and are skipped, saying so, without it.

#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

mod common;

use portal_core::access::{Domain, Effect, PolicyLine, PolicyRule};
use portal_core::audit::{AuditLog, AuditQuery, AuditTarget, actions};
use portal_core::identity::{ApiKeyRecord, ApiKeyStore, PasswordRecord, SessionRecord};
use portal_core::ids::{ApiKeyId, GrantId, OrgId, RandomIds, UserId};
use portal_core::policy::AuditedPolicyStore;
use portal_core::principal::{Principal, ServiceName};
use portal_core::store::StoreError;
use portal_core::support::{SupportAccess, SupportGrant, SupportGrantStore, SupportReason};
use portal_core::tenancy::{RoleSet, TenancyStore, TokenHash};
use portal_core::testing::audit::audit_event;
use portal_core::testing::identity_audit::{AuditedIdentityStore, user_event};
use portal_core::testing::tenancy::fixtures::{add_member, new_org, new_user};
use portal_core::testing::tenancy::{at, invitation_value, roles_of};
use portal_core::testing::workflow::{change, creation, instance_value, new_org as new_org_id, new_user as new_actor};
use portal_core::webhooks::WebhookStore;
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

/// A permission line of the custom role `auditor` in `org`.
fn auditor_line(org: OrgId) -> PolicyLine {
    PolicyLine::Permission(PolicyRule {
        subject: "auditor".into(),
        domain: Domain::Org(org),
        object: "cases/*".into(),
        action: "read".into(),
        effect: Effect::Allow,
    })
}

fn key_of(org: OrgId) -> ApiKeyRecord {
    let ids = RandomIds::default();
    ApiKeyRecord {
        id: ApiKeyId::generate(&ids, at(0)),
        org,
        name: "ci".to_owned(),
        prefix: "pk_live_outbox01".to_owned(),
        token_hash: TokenHash(rand_bytes()),
        scopes: vec!["cases/* read".parse().unwrap()],
        created_by: Principal::Service(ServiceName::new("outbox-test").unwrap()),
        created_at: at(0),
        last_used_at: None,
        expires_at: None,
        revoked_at: None,
    }
}

/// 32 bytes no other key of the test has: a fresh random id's, twice.
fn rand_bytes() -> [u8; 32] {
    let ids = RandomIds::default();
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(UserId::generate(&ids, at(0)).as_uuid().as_bytes());
    bytes[16..].copy_from_slice(UserId::generate(&ids, at(0)).as_uuid().as_bytes());
    bytes
}

fn grant_of(org: OrgId) -> SupportGrant {
    let ids = RandomIds::default();
    SupportGrant {
        id: GrantId::generate(&ids, at(0)),
        staff: UserId::generate(&ids, at(0)),
        org,
        reason: SupportReason::new("ticket 1: outbox").unwrap(),
        access: SupportAccess::ReadOnly,
        granted_by: Principal::Service(ServiceName::new("outbox-test").unwrap()),
        created_at: at(0),
        expires_at: at(3600),
        revoked_at: None,
        first_used_at: None,
    }
}

/// With the outbox broken by `break_outbox` (after a key and a grant were stored), a
/// role definition, a key's and a grant's creation and revocation all fail, and none of
/// them is stored; the log holds no event of them. Returns the five errors.
async fn admin_changes_fail_without_their_events(
    policy: &dyn AuditedPolicyStore,
    keys: &dyn ApiKeyStore,
    grants: &dyn SupportGrantStore,
    log: &dyn AuditLog,
    break_outbox: impl AsyncFnOnce(),
) -> Vec<StoreError> {
    let org = OrgId::generate(&RandomIds::default(), at(0));
    let (stored_key, stored_grant) = (key_of(org), grant_of(org));
    keys.create(&stored_key, &audit_event(org)).await.unwrap();
    grants.create(&stored_grant, &audit_event(org)).await.unwrap();
    let before = log.list(org, &AuditQuery::default(), None, 100).await.unwrap();
    break_outbox().await;

    let (key, grant) = (key_of(org), grant_of(org));
    let errors = vec![
        policy
            .apply_audited(&[auditor_line(org)], &[], &audit_event(org))
            .await
            .expect_err("a role whose event cannot be written fails"),
        keys.create(&key, &audit_event(org))
            .await
            .expect_err("a key whose event cannot be written fails"),
        keys.revoke(org, stored_key.id, at(10), &audit_event(org))
            .await
            .expect_err("a revocation whose event cannot be written fails"),
        grants
            .create(&grant, &audit_event(org))
            .await
            .expect_err("a grant whose event cannot be written fails"),
        grants
            .revoke(org, stored_grant.id, at(10), &audit_event(org))
            .await
            .expect_err("a revocation whose event cannot be written fails"),
    ];

    assert!(
        policy.load_domain(Domain::Org(org)).await.unwrap().is_empty(),
        "no role line"
    );
    assert_eq!(keys.get(org, key.id).await.unwrap(), None, "no key");
    assert_eq!(keys.get(org, stored_key.id).await.unwrap().unwrap().revoked_at, None);
    assert_eq!(grants.get(org, grant.id).await.unwrap(), None, "no grant");
    assert_eq!(
        grants.get(org, stored_grant.id).await.unwrap().unwrap().revoked_at,
        None
    );
    assert_eq!(
        log.list(org, &AuditQuery::default(), None, 100).await.unwrap(),
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

/// A role definition's `role.created` event fans out to an enabled endpoint of its org
/// subscribed to `role.created` (a pending delivery carrying the event), and not to one
/// subscribed to something else.
async fn a_role_event_fans_out_to_its_endpoint(policy: &dyn AuditedPolicyStore, webhooks: &dyn WebhookStore) {
    let org = OrgId::generate(&RandomIds::default(), at(0));
    let subscribed = portal_core::testing::webhooks::endpoint_value(org, &["role.created"], true);
    let elsewhere = portal_core::testing::webhooks::endpoint_value(org, &["api_key.created"], true);
    webhooks.create_endpoint(&subscribed, &audit_event(org)).await.unwrap();
    webhooks.create_endpoint(&elsewhere, &audit_event(org)).await.unwrap();
    let mut created = audit_event(org).target(AuditTarget::new("role", "auditor"));
    created.action = actions::ROLE_CREATED.action();
    policy.apply_audited(&[auditor_line(org)], &[], &created).await.unwrap();

    // Due when the event occurred (the suite's reference time): claimed an hour later.
    let now = at(3600);
    let claimed = webhooks.claim_due(now, at(7200), 1000).await.unwrap();
    let ours: Vec<_> = claimed.iter().filter(|d| d.org == org).collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].endpoint, subscribed.id);
    assert_eq!(ours[0].event, created);
}

mod memory {
    use portal_adapters::memory::{InMemoryAuditLog, InMemoryPolicyStore, InMemoryWebhookStore};

    #[tokio::test]
    async fn a_role_event_fans_out_to_its_endpoint() {
        let log = InMemoryAuditLog::new();
        let policy = InMemoryPolicyStore::with_audit_log(log.clone());
        let webhooks = InMemoryWebhookStore::new(log);
        super::a_role_event_fans_out_to_its_endpoint(&policy, &webhooks).await;
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use portal_adapters::sqlite::{SqliteAuditLog, SqliteIdentityStore, SqliteTenancyStore};

    use super::*;

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
    async fn a_refused_event_insert_rolls_admin_changes_back() {
        let pool = common::fresh_sqlite_pool().await;
        let errors = admin_changes_fail_without_their_events(
            &portal_adapters::sqlite::SqlitePolicyStore::new(pool.clone()),
            &portal_adapters::sqlite::SqliteIdentityStore::new(pool.clone()),
            &portal_adapters::sqlite::SqliteSupportGrantStore::new(pool.clone()),
            &SqliteAuditLog::new(pool.clone()),
            async || {
                sqlx::query(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events
                     BEGIN SELECT RAISE(ABORT, 'the outbox refuses'); END",
                )
                .execute(&pool)
                .await
                .unwrap();
            },
        )
        .await;
        assert_eq!(errors.len(), 5);
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

    #[tokio::test]
    async fn a_role_event_fans_out_to_its_endpoint() {
        let pool = common::fresh_sqlite_pool().await;
        super::a_role_event_fans_out_to_its_endpoint(
            &portal_adapters::sqlite::SqlitePolicyStore::new(pool.clone()),
            &portal_adapters::sqlite::SqliteWebhookStore::new(pool),
        )
        .await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use portal_adapters::postgres::{PgAuditLog, PgIdentityStore, PgTenancyStore};

    use super::*;

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
    async fn a_raising_event_insert_rolls_admin_changes_back() {
        let Some(pool) = common::fresh_pg_pool().await else {
            return;
        };
        let errors = admin_changes_fail_without_their_events(
            &portal_adapters::postgres::PgPolicyStore::new(pool.clone()),
            &portal_adapters::postgres::PgIdentityStore::new(pool.clone()),
            &portal_adapters::postgres::PgSupportGrantStore::new(pool.clone()),
            &PgAuditLog::new(pool.clone()),
            async || {
                sqlx::raw_sql(
                    "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
                       $$ BEGIN RAISE EXCEPTION 'the outbox refuses'; END $$;
                     CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events
                       FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
                )
                .execute(&pool)
                .await
                .unwrap();
            },
        )
        .await;
        assert_eq!(errors.len(), 5);
        for err in errors {
            assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_role_event_fans_out_to_its_endpoint() {
        let Some(pool) = common::fresh_pg_pool().await else {
            return;
        };
        super::a_role_event_fans_out_to_its_endpoint(
            &portal_adapters::postgres::PgPolicyStore::new(pool.clone()),
            &portal_adapters::postgres::PgWebhookStore::new(pool),
        )
        .await;
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
