//! The outbox conformance suite of the administration stores: custom role changes
//! ([`AuditedPolicyStore::apply_audited`]), API keys ([`ApiKeyStore`] `create` and
//! `revoke`) and support grants ([`SupportGrantStore`] `create`, `revoke` and
//! `record_first_use`) write
//! exactly their [`AuditEvent`] in the change's transaction; a refused change writes
//! none; a change whose event cannot be written is not stored.
//!
//! Every clause takes the three stores and the [`AuditLog`] they write to (one
//! database), and makes its orgs, keys and grants with fresh ids. Run them all with
//! [`admin_audit_conformance!`](crate::admin_audit_conformance), whose factory returns
//! `Option<(policy store, identity store, support grant store, log)>`.

use crate::access::{Domain, Effect, PolicyLine, PolicyRule};
use crate::audit::{AuditEvent, AuditLog, AuditQuery, AuditTarget, CatalogEntry, actions};
use crate::identity::ApiKeyStore;
use crate::ids::{AuditEventId, OrgId, RandomIds};
use crate::policy::AuditedPolicyStore;
use crate::store::{Conflict, StoreError};
use crate::support::{SupportAccess, SupportGrantStore};
use crate::testing::audit::audit_event;
use crate::testing::identity::key_value;
use crate::testing::support::grant_value;
use crate::testing::tenancy::at;

/// A fresh org id (the administration stores keep no foreign keys to tenancy).
fn new_org() -> OrgId {
    OrgId::generate(&RandomIds::default(), at(0))
}

/// The suite's event `entry` in `org` about `target`, `seconds` after the reference
/// time, with a fresh id made then (so a clause's events read back in the order made).
fn event(org: OrgId, entry: CatalogEntry, target: AuditTarget, seconds: i64) -> AuditEvent {
    let mut event = audit_event(org).target(target);
    event.id = AuditEventId::generate(&RandomIds::default(), at(seconds));
    event.occurred_at = at(seconds);
    event.action = entry.action();
    event.version = entry.version;
    event
}

/// A permission line of the custom role `role` in `org`.
fn role_line(org: OrgId, role: &str, object: &str) -> PolicyLine {
    PolicyLine::Permission(PolicyRule {
        subject: role.into(),
        domain: Domain::Org(org),
        object: object.into(),
        action: "read".into(),
        effect: Effect::Allow,
    })
}

/// Every event of `org`, oldest first.
async fn events(log: &dyn AuditLog, org: OrgId) -> Vec<AuditEvent> {
    log.list(org, &AuditQuery::default(), None, 100)
        .await
        .expect("the audit log reads")
}

/// Defining, replacing and deleting a role each write exactly the event given, which
/// reads back equal in the org's log; an `apply_audited` that changes no line (the same
/// definition again) writes none.
pub async fn role_changes_write_their_event(policy: &dyn AuditedPolicyStore, log: &dyn AuditLog) {
    let org = new_org();
    let role = AuditTarget::new("role", "reports-reader");
    let v1 = [role_line(org, "reports-reader", "reports")];
    let v2 = [role_line(org, "reports-reader", "invoices")];

    let created = event(org, actions::ROLE_CREATED, role.clone(), 1);
    policy
        .apply_audited(&v1, &[], &created)
        .await
        .expect("defines the role");
    assert_eq!(events(log, org).await, vec![created.clone()]);

    let unchanged = event(org, actions::ROLE_UPDATED, role.clone(), 2);
    policy
        .apply_audited(&v1, &v1, &unchanged)
        .await
        .expect("the same definition again");
    assert_eq!(events(log, org).await, vec![created.clone()], "no change, no event");

    let updated = event(org, actions::ROLE_UPDATED, role.clone(), 3);
    policy
        .apply_audited(&v2, &v1, &updated)
        .await
        .expect("replaces the role");
    let deleted = event(org, actions::ROLE_DELETED, role, 4);
    policy
        .apply_audited(&[], &v2, &deleted)
        .await
        .expect("deletes the role");
    assert_eq!(events(log, org).await, vec![created, updated, deleted]);
    assert!(policy.load_domain(Domain::Org(org)).await.unwrap().is_empty());
    assert!(events(log, new_org()).await.is_empty(), "another org's log holds none");
}

/// Creating and revoking an API key each write exactly their event; revoking it again
/// (no change), another org's revocation of it and a taken id write none.
pub async fn api_key_changes_write_their_event(keys: &dyn ApiKeyStore, log: &dyn AuditLog) {
    let org = new_org();
    let other = new_org();
    let key = key_value(org, 0);
    let target = AuditTarget::new("api_key", key.id);

    let created = event(org, actions::API_KEY_CREATED, target.clone(), 5);
    keys.create(&key, &created).await.expect("creates the key");
    assert_eq!(keys.get(org, key.id).await.unwrap(), Some(key.clone()));
    assert_eq!(
        keys.get(other, key.id).await.unwrap(),
        None,
        "another org's key is not found"
    );

    let taken = event(org, actions::API_KEY_CREATED, target.clone(), 6);
    let err = keys.create(&key, &taken).await.expect_err("a taken id is refused");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::AlreadyExists { entity: "api_key" })),
        "{err:?}"
    );

    let foreign = event(other, actions::API_KEY_REVOKED, target.clone(), 7);
    let err = keys
        .revoke(other, key.id, at(10), &foreign)
        .await
        .expect_err("another org cannot revoke it");
    assert!(matches!(err, StoreError::NotFound { entity: "api_key" }), "{err:?}");
    assert!(events(log, other).await.is_empty());

    let revoked = event(org, actions::API_KEY_REVOKED, target.clone(), 8);
    let record = keys.revoke(org, key.id, at(20), &revoked).await.expect("revokes");
    assert_eq!(record.revoked_at, Some(at(20)));
    let again = event(org, actions::API_KEY_REVOKED, target, 9);
    let record = keys.revoke(org, key.id, at(30), &again).await.expect("revoking again");
    assert_eq!(record.revoked_at, Some(at(20)), "the first time stays");
    assert_eq!(events(log, org).await, vec![created, revoked]);
}

/// Creating and revoking a support grant each write exactly their event; revoking it
/// again, another org's revocation of it and a taken id write none.
pub async fn support_grant_changes_write_their_event(grants: &dyn SupportGrantStore, log: &dyn AuditLog) {
    let org = new_org();
    let other = new_org();
    let grant = grant_value(org, crate::testing::support::new_staff(), 0, SupportAccess::ReadOnly);
    let target = AuditTarget::new("support_grant", grant.id);

    let created = event(org, actions::SUPPORT_GRANT_CREATED, target.clone(), 10);
    grants.create(&grant, &created).await.expect("creates the grant");
    let taken = event(org, actions::SUPPORT_GRANT_CREATED, target.clone(), 11);
    let err = grants.create(&grant, &taken).await.expect_err("a taken id is refused");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists {
                entity: "support_grant"
            })
        ),
        "{err:?}"
    );

    let foreign = event(other, actions::SUPPORT_GRANT_REVOKED, target.clone(), 12);
    let err = grants
        .revoke(other, grant.id, at(10), &foreign)
        .await
        .expect_err("another org cannot revoke it");
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                entity: "support_grant"
            }
        ),
        "{err:?}"
    );
    assert!(events(log, other).await.is_empty());

    let revoked = event(org, actions::SUPPORT_GRANT_REVOKED, target.clone(), 13);
    let record = grants.revoke(org, grant.id, at(20), &revoked).await.expect("revokes");
    assert_eq!(record.revoked_at, Some(at(20)));
    let again = event(org, actions::SUPPORT_GRANT_REVOKED, target, 14);
    grants
        .revoke(org, grant.id, at(30), &again)
        .await
        .expect("revoking again");
    assert_eq!(events(log, org).await, vec![created, revoked]);
}

/// A grant's first use (`record_first_use`) writes exactly its `support_grant.used`
/// event, once: a later use, another org's use of the grant's id and a use of an unknown
/// grant write none; of eight concurrent first uses of another grant, each with its own
/// event, exactly one is logged (and its call is the one that answered `true`).
pub async fn a_grants_first_use_writes_one_event(grants: &dyn SupportGrantStore, log: &dyn AuditLog) {
    let org = new_org();
    let other = new_org();
    let grant = grant_value(org, crate::testing::support::new_staff(), 0, SupportAccess::ReadOnly);
    let target = AuditTarget::new("support_grant", grant.id);
    let created = event(org, actions::SUPPORT_GRANT_CREATED, target.clone(), 20);
    grants.create(&grant, &created).await.expect("creates the grant");

    let used = event(org, actions::SUPPORT_GRANT_USED, target.clone(), 21);
    assert!(grants.record_first_use(org, grant.id, at(21), &used).await.unwrap());
    let again = event(org, actions::SUPPORT_GRANT_USED, target.clone(), 22);
    assert!(
        !grants.record_first_use(org, grant.id, at(22), &again).await.unwrap(),
        "a later use is no first use"
    );
    let foreign = event(other, actions::SUPPORT_GRANT_USED, target.clone(), 23);
    let err = grants
        .record_first_use(other, grant.id, at(23), &foreign)
        .await
        .expect_err("another org's grant id is not found");
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                entity: "support_grant"
            }
        ),
        "{err:?}"
    );
    assert!(events(log, other).await.is_empty(), "another org's log holds none");
    assert_eq!(events(log, org).await, vec![created, used]);

    let raced = grant_value(org, crate::testing::support::new_staff(), 1, SupportAccess::ReadWrite);
    let raced_target = AuditTarget::new("support_grant", raced.id);
    grants
        .create(
            &raced,
            &event(org, actions::SUPPORT_GRANT_CREATED, raced_target.clone(), 30),
        )
        .await
        .expect("creates the grant");
    let uses: Vec<AuditEvent> = (31..39)
        .map(|seconds| event(org, actions::SUPPORT_GRANT_USED, raced_target.clone(), seconds))
        .collect();
    let answers = futures::future::join_all(
        uses.iter()
            .map(|use_event| grants.record_first_use(org, raced.id, use_event.occurred_at, use_event)),
    )
    .await;
    let set: Vec<bool> = answers
        .into_iter()
        .map(|answer| answer.expect("every concurrent first use succeeds"))
        .collect();
    let logged: Vec<AuditEvent> = events(log, org)
        .await
        .into_iter()
        .filter(|e| e.action == actions::SUPPORT_GRANT_USED.action() && e.target_ids().any(|id| id == raced_target.id))
        .collect();
    assert_eq!(
        logged.len(),
        1,
        "exactly one event of the concurrent first uses: {logged:?}"
    );
    assert_eq!(set.iter().filter(|set| **set).count(), 1, "{set:?}");
    let winner = set.iter().position(|set| *set).unwrap_or(usize::MAX);
    assert_eq!(logged[0], uses[winner], "the event of the call that set it");
}

/// A change whose event cannot be written (its id is already in the log) fails with
/// `Conflict::AlreadyExists` (`audit event`) and leaves nothing behind: no role line, no
/// key, no grant, no revocation, no first use.
pub async fn a_change_whose_event_fails_is_not_stored(
    policy: &dyn AuditedPolicyStore,
    keys: &dyn ApiKeyStore,
    grants: &dyn SupportGrantStore,
    log: &dyn AuditLog,
) {
    let org = new_org();
    let first = event(org, actions::ROLE_CREATED, AuditTarget::new("role", "first"), 15);
    policy
        .apply_audited(&[role_line(org, "first", "reports")], &[], &first)
        .await
        .expect("the first change commits");
    let duplicate = |entry: CatalogEntry| {
        let mut event = first.clone();
        event.action = entry.action();
        event
    };
    let is_duplicate = |err: &StoreError| {
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "audit event" })
        )
    };

    let line = role_line(org, "second", "invoices");
    let err = policy
        .apply_audited(std::slice::from_ref(&line), &[], &duplicate(actions::ROLE_CREATED))
        .await
        .expect_err("the event's id is taken");
    assert!(is_duplicate(&err), "{err:?}");
    assert!(
        !policy.load_domain(Domain::Org(org)).await.unwrap().contains(&line),
        "the role is not stored"
    );

    let key = key_value(org, 0);
    let err = keys
        .create(&key, &duplicate(actions::API_KEY_CREATED))
        .await
        .expect_err("the event's id is taken");
    assert!(is_duplicate(&err), "{err:?}");
    assert_eq!(keys.get(org, key.id).await.unwrap(), None, "the key is not stored");

    let grant = grant_value(org, crate::testing::support::new_staff(), 0, SupportAccess::ReadWrite);
    let err = grants
        .create(&grant, &duplicate(actions::SUPPORT_GRANT_CREATED))
        .await
        .expect_err("the event's id is taken");
    assert!(is_duplicate(&err), "{err:?}");
    assert_eq!(
        grants.get(org, grant.id).await.unwrap(),
        None,
        "the grant is not stored"
    );

    // Revocations: stored with their own events first, then revoked under a taken id.
    keys.create(&key, &audit_event(org)).await.expect("creates the key");
    let err = keys
        .revoke(org, key.id, at(10), &duplicate(actions::API_KEY_REVOKED))
        .await
        .expect_err("the event's id is taken");
    assert!(is_duplicate(&err), "{err:?}");
    let stored = keys.get(org, key.id).await.unwrap().expect("the key is there");
    assert_eq!(stored.revoked_at, None, "the key is not revoked");

    grants
        .create(&grant, &audit_event(org))
        .await
        .expect("creates the grant");
    let err = grants
        .revoke(org, grant.id, at(10), &duplicate(actions::SUPPORT_GRANT_REVOKED))
        .await
        .expect_err("the event's id is taken");
    assert!(is_duplicate(&err), "{err:?}");
    let stored = grants.get(org, grant.id).await.unwrap().expect("the grant is there");
    assert_eq!(stored.revoked_at, None, "the grant is not revoked");
    let err = grants
        .record_first_use(org, grant.id, at(11), &duplicate(actions::SUPPORT_GRANT_USED))
        .await
        .expect_err("the event's id is taken");
    assert!(is_duplicate(&err), "{err:?}");
    let stored = grants.get(org, grant.id).await.unwrap().expect("the grant is there");
    assert_eq!(stored.first_used_at, None, "the first use is not recorded");

    let logged = events(log, org).await;
    assert_eq!(logged.len(), 3, "the first change and the two creations: {logged:?}");
    assert_eq!(logged.iter().filter(|e| e.id == first.id).count(), 1);
}

/// Expands to one `#[tokio::test]` per clause of the administration stores' outbox. The
/// factory is a future of `Option<(policy, identity, support, log)>`, all on one
/// database; `None` skips the suite.
///
/// The rule starting with `@` is internal.
#[macro_export]
macro_rules! admin_audit_conformance {
    ($factory:expr $(,)?) => {
        #[tokio::test]
        async fn role_changes_write_their_event() {
            let Some((policy, _, _, log)) = $factory.await else {
                return;
            };
            $crate::testing::admin_audit::role_changes_write_their_event(&policy, &log).await;
        }

        #[tokio::test]
        async fn api_key_changes_write_their_event() {
            let Some((_, keys, _, log)) = $factory.await else {
                return;
            };
            $crate::testing::admin_audit::api_key_changes_write_their_event(&keys, &log).await;
        }

        #[tokio::test]
        async fn support_grant_changes_write_their_event() {
            let Some((_, _, grants, log)) = $factory.await else {
                return;
            };
            $crate::testing::admin_audit::support_grant_changes_write_their_event(&grants, &log).await;
        }

        #[tokio::test]
        async fn a_grants_first_use_writes_one_event() {
            let Some((_, _, grants, log)) = $factory.await else {
                return;
            };
            $crate::testing::admin_audit::a_grants_first_use_writes_one_event(&grants, &log).await;
        }

        #[tokio::test]
        async fn a_change_whose_event_fails_is_not_stored() {
            let Some((policy, keys, grants, log)) = $factory.await else {
                return;
            };
            $crate::testing::admin_audit::a_change_whose_event_fails_is_not_stored(&policy, &keys, &grants, &log).await;
        }
    };
}
