//! Fault injection (mockall) into the policy store and the support-grant store behind
//! `Portal`: a store that fails with `Unavailable` gives a retryable `storage.unavailable`,
//! changes nothing (the authorizer keeps its policy and revision, no grant exists), leaves
//! a `storage_fault` event naming the operation and the cause, and the retry succeeds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod policy_world;

use std::sync::{Arc, Mutex, PoisonError};

use mockall::Sequence;
use policy_world::{CollectingSink, ctx, people, role};
use portal_adapters::memory::InMemoryTenancyStore;
use portal_auth::CasbinAuthorizer;
use portal_auth::casbin_authz::builtin_policy;
use portal_core::access::{Domain, PolicyLine, Revision};
use portal_core::diagnostics::{DiagnosticEvent, EventKind, Outcome};
use portal_core::ids::OrgId;
use portal_core::policy::MockAuditedPolicyStore;
use portal_core::policy::{CustomRole, RolePermission};
use portal_core::store::StoreError;
use portal_core::support::{MockSupportGrantStore, NewSupportGrant, SupportAccess, SupportGrant};
use portal_core::{ErrorCode, Portal, PortalError};
use time::Duration;

fn unavailable() -> StoreError {
    StoreError::Unavailable {
        backend: "mock",
        source: "connection reset by peer".into(),
    }
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, PortalError>) {
    let err = result.unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable, "{err:?}");
    assert!(err.is_retryable(), "storage.unavailable is retryable");
}

/// The `storage_fault` event of `events`, which must be there exactly once and name
/// `operation` and the store's message.
fn fault_of(events: &[DiagnosticEvent], operation: &str) {
    let faults: Vec<_> = events.iter().filter(|e| e.kind == EventKind::StorageFault).collect();
    assert_eq!(faults.len(), 1, "one storage fault event: {events:#?}");
    assert_eq!(faults[0].detail["operation"], operation);
    let chain = faults[0].detail["error"].as_str().unwrap();
    assert!(chain.contains("connection reset by peer"), "{chain}");
    let outcome = events.iter().find(|e| e.name == operation).unwrap();
    assert_eq!(
        (outcome.outcome, outcome.code),
        (Outcome::Failed, Some(ErrorCode::StorageUnavailable))
    );
}

fn reports_reader() -> CustomRole {
    CustomRole {
        name: role("reports-reader"),
        parent: Some(role("viewer")),
        permissions: vec![RolePermission::allow("reports", "read")],
    }
}

fn names_role(lines: &[PolicyLine], name: &str) -> bool {
    lines.iter().any(|line| match line {
        PolicyLine::Permission(rule) => rule.subject == name,
        PolicyLine::Inherit { role, .. } => role == name,
    })
}

#[tokio::test]
async fn a_policy_store_failing_on_apply_changes_no_replica_and_the_retry_commits() {
    let mut store = MockAuditedPolicyStore::new();
    // The org defines no custom role yet; every read says so.
    store
        .expect_load_domain()
        .withf(|domain| matches!(domain, Domain::Org(_)))
        .returning(|_| Ok(Vec::new()));
    let mut calls = Sequence::new();
    store
        .expect_apply_audited()
        .times(1)
        .in_sequence(&mut calls)
        .returning(|_, _, _| Err(unavailable()));
    store
        .expect_apply_audited()
        .times(1)
        .in_sequence(&mut calls)
        .withf(|added, removed, event| {
            removed.is_empty() && names_role(added, "reports-reader") && event.action.as_str() == "role.created"
        })
        .returning(|_, _, _| Ok(Revision(1)));

    let authorizer = Arc::new(CasbinAuthorizer::new(&builtin_policy()).unwrap());
    let sink = Arc::new(CollectingSink::default());
    let portal = Portal::builder()
        .tenancy_store(Arc::new(InMemoryTenancyStore::new()))
        .policy(Arc::new(store), authorizer.clone())
        .diagnostics(sink.clone())
        .build()
        .unwrap();
    let people = people(&portal).await;
    let policy = portal.policy().unwrap();
    let before = authorizer.lines();

    let owner = ctx(&portal, people.owner);
    assert_unavailable(policy.create_role(&owner, people.org, reports_reader()).await);
    assert_eq!(authorizer.revision(), Revision(0), "the replica did not move");
    assert_eq!(authorizer.lines(), before, "the replica's policy is unchanged");
    fault_of(&sink.of(&owner), "policy.role.create");

    let retry = ctx(&portal, people.owner);
    let (created, revision) = policy.create_role(&retry, people.org, reports_reader()).await.unwrap();
    assert_eq!((created, revision), (reports_reader(), Revision(1)));
    assert_eq!(authorizer.revision(), Revision(1));
    assert!(names_role(&authorizer.lines(), "reports-reader"));
    assert!(sink.of(&retry).iter().all(|e| e.kind != EventKind::StorageFault));
}

/// Keeps the grants the mock store accepted, so the test can say none was half-made.
#[derive(Default)]
struct Accepted(Mutex<Vec<SupportGrant>>);

#[tokio::test]
async fn a_support_grant_store_failing_on_create_and_revoke_grants_nothing_and_the_retries_succeed() {
    let accepted = Arc::new(Accepted::default());
    let mut store = MockSupportGrantStore::new();
    let mut creates = Sequence::new();
    store
        .expect_create()
        .times(1)
        .in_sequence(&mut creates)
        .returning(|_, _| Err(unavailable()));
    store.expect_create().times(1).in_sequence(&mut creates).returning({
        let accepted = accepted.clone();
        move |grant, _event| {
            accepted
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(grant.clone());
            Ok(())
        }
    });
    // Nobody outside the org holds a grant while the test asks.
    store.expect_find_active().returning(|_, _, _| Ok(None));
    // The service reads the grant it revokes (its audit event names the staff member).
    store.expect_get().returning({
        let accepted = accepted.clone();
        move |org: OrgId, id| {
            let grants = accepted.0.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(grants.iter().find(|g| g.org == org && g.id == id).cloned())
        }
    });
    let mut revokes = Sequence::new();
    store
        .expect_revoke()
        .times(1)
        .in_sequence(&mut revokes)
        .returning(|_, _, _, _| Err(unavailable()));
    store.expect_revoke().times(1).in_sequence(&mut revokes).returning({
        let accepted = accepted.clone();
        move |org: OrgId, id, at, _event| {
            let mut grants = accepted.0.lock().unwrap_or_else(PoisonError::into_inner);
            let grant = grants.iter_mut().find(|g| g.org == org && g.id == id).unwrap();
            grant.revoked_at = Some(at);
            Ok(grant.clone())
        }
    });

    let sink = Arc::new(CollectingSink::default());
    let portal = Portal::builder()
        .tenancy_store(Arc::new(InMemoryTenancyStore::new()))
        .support_grants(Arc::new(store))
        .diagnostics(sink.clone())
        .build()
        .unwrap();
    let people = people(&portal).await;
    let support = portal.support().unwrap();
    let new = || NewSupportGrant {
        staff: people.outsider,
        reason: "ticket 4711: the export fails".to_owned(),
        access: SupportAccess::ReadOnly,
        duration: Duration::hours(2),
    };

    let owner = ctx(&portal, people.owner);
    assert_unavailable(support.grant(&owner, people.org, new()).await);
    assert!(accepted.0.lock().unwrap().is_empty(), "no grant was stored");
    fault_of(&sink.of(&owner), "support.grant.create");

    let retry = ctx(&portal, people.owner);
    let grant = support.grant(&retry, people.org, new()).await.unwrap();
    assert_eq!(accepted.0.lock().unwrap().clone(), vec![grant.clone()]);

    let revoke = ctx(&portal, people.owner);
    assert_unavailable(support.revoke(&revoke, people.org, grant.id).await);
    assert_eq!(accepted.0.lock().unwrap()[0].revoked_at, None, "still active");
    fault_of(&sink.of(&revoke), "support.grant.revoke");

    let revoked = support
        .revoke(&ctx(&portal, people.owner), people.org, grant.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
}
