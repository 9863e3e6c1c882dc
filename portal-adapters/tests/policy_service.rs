//! `PolicyService` through `Portal::policy`, on memory stores and a `CasbinAuthorizer`:
//! custom roles (create, update, delete, list), assignment through memberships, what a
//! member can do, who can do something, and one test per refusal code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod policy_world;

use std::collections::BTreeSet;
use std::sync::Arc;

use portal_adapters::memory::{InMemoryPolicyStore, InMemoryTenancyStore};
use portal_auth::CasbinAuthorizer;
use portal_core::access::Effect;
use portal_core::diagnostics::EventKind;
use portal_core::policy::{CustomRole, PolicyService, RolePermission};
use portal_core::store::PageRequest;
use portal_core::{ErrorCode, Portal, PortalError};

use policy_world::{CollectingSink, People, ctx, people, portal_over, role, seed};

struct World {
    portal: Portal,
    authz: Arc<CasbinAuthorizer>,
    sink: Arc<CollectingSink>,
    people: People,
}

impl World {
    async fn new() -> Self {
        let store = InMemoryPolicyStore::new();
        seed(&store).await;
        let sink = Arc::new(CollectingSink::default());
        let (portal, authz) = portal_over(Arc::new(InMemoryTenancyStore::new()), Arc::new(store), sink.clone()).await;
        let people = people(&portal).await;
        Self {
            portal,
            authz,
            sink,
            people,
        }
    }

    fn policy(&self) -> &PolicyService {
        self.portal.policy().unwrap()
    }
}

fn reports_reader() -> CustomRole {
    CustomRole {
        name: role("reports-reader"),
        parent: Some(role("viewer")),
        permissions: vec![RolePermission::allow("reports", "read")],
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, PortalError>) -> ErrorCode {
    result.unwrap_err().code()
}

#[tokio::test]
async fn an_owner_defines_a_role_and_the_writer_sees_it_at_once() {
    let w = World::new().await;
    let owner = ctx(&w.portal, w.people.owner);
    let (created, revision) = w
        .policy()
        .create_role(&owner, w.people.org, reports_reader())
        .await
        .unwrap();
    assert_eq!(created, reports_reader());
    assert_eq!(
        revision,
        w.authz.revision(),
        "the local authorizer is at the store's revision"
    );
    assert_eq!(
        w.policy()
            .list_roles(&owner, w.people.org, &PageRequest::default())
            .await
            .unwrap()
            .items,
        vec![reports_reader()]
    );

    // Recorded as a tenancy change with the revision.
    let events = w.sink.of(&owner);
    let done = events.iter().find(|e| e.name == "policy.role.create").unwrap();
    assert_eq!(done.kind, EventKind::TenancyChange);
    assert_eq!(done.detail["revision"], revision.0);
    assert!(events.iter().any(|e| e.kind == EventKind::PermissionDecision));

    w.policy()
        .assign_role(&owner, w.people.org, w.people.viewer, &role("reports-reader"))
        .await
        .unwrap();
    let viewer = ctx(&w.portal, w.people.viewer);
    w.policy()
        .check(&viewer, w.people.org, "reports", "read")
        .await
        .unwrap();
    assert_eq!(
        code(w.policy().check(&viewer, w.people.org, "reports", "write").await),
        ErrorCode::AccessDenied
    );
}

#[tokio::test]
async fn what_a_member_can_do_follows_inheritance_and_who_can_lists_the_holders() {
    let w = World::new().await;
    let owner = ctx(&w.portal, w.people.owner);
    let org = w.people.org;
    w.policy().create_role(&owner, org, reports_reader()).await.unwrap();
    w.policy()
        .assign_role(&owner, org, w.people.viewer, &role("reports-reader"))
        .await
        .unwrap();
    // Without `viewer` itself, what `viewer` grants comes through the custom role.
    w.policy()
        .unassign_role(&owner, org, w.people.viewer, &role("viewer"))
        .await
        .unwrap();

    let viewer = ctx(&w.portal, w.people.viewer);
    // A member may read their own permissions with `org read`.
    let mine = w
        .policy()
        .member_permissions(&viewer, org, w.people.viewer)
        .await
        .unwrap();
    let reports = mine.iter().find(|p| p.rule.object == "reports").unwrap();
    assert_eq!(reports.via, ["reports-reader"]);
    let members = mine.iter().find(|p| p.rule.object == "members").unwrap();
    assert_eq!(
        members.via,
        ["reports-reader", "viewer"],
        "inherited from the built-in viewer"
    );
    assert!(mine.iter().all(|p| p.rule.effect == Effect::Allow));
    // Someone else's need `roles read`, which a viewer lacks.
    assert_eq!(
        code(w.policy().member_permissions(&viewer, org, w.people.admin).await),
        ErrorCode::AccessDenied
    );

    let holders = w.policy().who_can(&owner, org, "reports", "read").await.unwrap();
    let users: BTreeSet<_> = holders.iter().map(|h| h.user).collect();
    assert_eq!(users, BTreeSet::from([w.people.owner, w.people.viewer]));
    let admin = ctx(&w.portal, w.people.admin);
    let approvers = w.policy().who_can(&admin, org, "quotes/wf_1", "approve").await.unwrap();
    let users: BTreeSet<_> = approvers.iter().map(|h| h.user).collect();
    assert_eq!(users, BTreeSet::from([w.people.owner, w.people.admin]));
}

#[tokio::test]
async fn role_definitions_are_refused_with_their_codes() {
    let w = World::new().await;
    let owner = ctx(&w.portal, w.people.owner);
    let org = w.people.org;
    let p = w.policy();

    let builtin = CustomRole {
        name: role("admin"),
        ..reports_reader()
    };
    assert_eq!(code(p.create_role(&owner, org, builtin).await), ErrorCode::RoleBuiltin);
    p.create_role(&owner, org, reports_reader()).await.unwrap();
    assert_eq!(
        code(p.create_role(&owner, org, reports_reader()).await),
        ErrorCode::RoleExists
    );
    let unknown = CustomRole {
        name: role("ghost"),
        ..reports_reader()
    };
    assert_eq!(code(p.update_role(&owner, org, unknown).await), ErrorCode::RoleNotFound);
    let orphan = CustomRole {
        name: role("orphan"),
        parent: Some(role("nobody")),
        permissions: Vec::new(),
    };
    let err = p.create_role(&owner, org, orphan).await.unwrap_err();
    assert_eq!((err.code(), err.param()), (ErrorCode::RoleNotFound, Some("parent")));
    let empty = CustomRole {
        name: role("empty"),
        parent: None,
        permissions: Vec::new(),
    };
    assert_eq!(code(p.create_role(&owner, org, empty).await), ErrorCode::InvalidField);

    // A cycle: `auditor` inherits `reports-reader`, which is changed to inherit `auditor`.
    let auditor = CustomRole {
        name: role("auditor"),
        parent: Some(role("reports-reader")),
        permissions: vec![RolePermission::allow("audit", "read")],
    };
    p.create_role(&owner, org, auditor).await.unwrap();
    let before = w.authz.revision();
    let cyclic = CustomRole {
        parent: Some(role("auditor")),
        ..reports_reader()
    };
    let err = p.update_role(&owner, org, cyclic).await.unwrap_err();
    assert_eq!((err.code(), err.param()), (ErrorCode::InvalidField, Some("policy")));
    assert_eq!(
        w.authz.revision(),
        before,
        "nothing reached the store or the authorizer"
    );

    // A pattern the index cannot compile is refused before the store.
    let regexy = CustomRole {
        name: role("regexy"),
        parent: None,
        permissions: vec![RolePermission::allow("cases/(a|b)", "read")],
    };
    let err = p.create_role(&owner, org, regexy).await.unwrap_err();
    assert_eq!(
        (err.code(), err.param()),
        (ErrorCode::InvalidField, Some("permissions[0].object"))
    );
    // The refused entry is named by its place in the request (not the sorted one) and
    // its field.
    let bad_action = CustomRole {
        name: role("bad-action"),
        parent: None,
        permissions: vec![
            RolePermission::allow("zeta", "read"),
            RolePermission::allow("alpha", "read all"),
        ],
    };
    let err = p.create_role(&owner, org, bad_action).await.unwrap_err();
    assert_eq!(
        (err.code(), err.param()),
        (ErrorCode::InvalidField, Some("permissions[1].action"))
    );
    assert_eq!(w.authz.revision(), before);
}

#[tokio::test]
async fn nobody_writes_a_role_more_powerful_than_themselves() {
    let w = World::new().await;
    let org = w.people.org;
    let admin = ctx(&w.portal, w.people.admin);
    let p = w.policy();
    // An admin manages roles, within what admins may do.
    let triage = CustomRole {
        name: role("triage"),
        parent: Some(role("viewer")),
        permissions: vec![RolePermission::allow("cases/*", "write")],
    };
    p.create_role(&admin, org, triage).await.unwrap();
    let too_much = CustomRole {
        name: role("biller"),
        parent: None,
        permissions: vec![RolePermission::allow("billing", "read")],
    };
    assert_eq!(
        code(p.create_role(&admin, org, too_much).await),
        ErrorCode::AccessDenied
    );
    let owner_like = CustomRole {
        name: role("deputy"),
        parent: Some(role("owner")),
        permissions: Vec::new(),
    };
    assert_eq!(
        code(p.create_role(&admin, org, owner_like).await),
        ErrorCode::AccessDenied
    );
    // Only owners assign custom roles unless policy says otherwise.
    assert_eq!(
        code(p.assign_role(&admin, org, w.people.viewer, &role("triage")).await),
        ErrorCode::AccessDenied
    );
    // A viewer does not manage roles; an outsider does not even see the org.
    let viewer = ctx(&w.portal, w.people.viewer);
    assert_eq!(
        code(p.create_role(&viewer, org, reports_reader()).await),
        ErrorCode::AccessDenied
    );
    assert_eq!(
        code(p.list_roles(&viewer, org, &PageRequest::default()).await),
        ErrorCode::AccessDenied
    );
    let outsider = ctx(&w.portal, w.people.outsider);
    assert_eq!(
        code(p.list_roles(&outsider, org, &PageRequest::default()).await),
        ErrorCode::OrgNotFound
    );
    assert_eq!(
        code(p.check(&outsider, org, "reports", "read").await),
        ErrorCode::OrgNotFound
    );
}

#[tokio::test]
async fn assignments_keep_the_membership_rules() {
    let w = World::new().await;
    let owner = ctx(&w.portal, w.people.owner);
    let org = w.people.org;
    let p = w.policy();
    assert_eq!(
        code(p.assign_role(&owner, org, w.people.viewer, &role("ghost")).await),
        ErrorCode::RoleNotFound
    );
    assert_eq!(
        code(p.unassign_role(&owner, org, w.people.viewer, &role("admin")).await),
        ErrorCode::RoleNotFound
    );
    let membership = p
        .assign_role(&owner, org, w.people.owner, &role("billing"))
        .await
        .unwrap();
    assert!(membership.roles.contains(&role("billing")));
    assert_eq!(
        code(p.unassign_role(&owner, org, w.people.owner, &role("owner")).await),
        ErrorCode::LastOwner
    );
    let membership = p
        .unassign_role(&owner, org, w.people.owner, &role("billing"))
        .await
        .unwrap();
    assert!(!membership.roles.contains(&role("billing")));
    assert_eq!(
        code(p.unassign_role(&owner, org, w.people.viewer, &role("viewer")).await),
        ErrorCode::LastRole,
        "a member keeps at least one role"
    );
    // The assignment is recorded by the policy operation and by the membership change.
    let events = w.sink.of(&owner);
    assert!(events.iter().any(|e| e.name == "policy.role.assign"));
    assert!(events.iter().any(|e| e.name == "tenancy.member.set_roles"));
}

#[tokio::test]
async fn a_role_in_use_is_not_deleted_and_a_deleted_role_grants_nothing() {
    let w = World::new().await;
    let owner = ctx(&w.portal, w.people.owner);
    let org = w.people.org;
    let p = w.policy();
    let name = role("reports-reader");
    assert_eq!(
        code(p.delete_role(&owner, org, &role("viewer")).await),
        ErrorCode::RoleBuiltin
    );
    assert_eq!(code(p.delete_role(&owner, org, &name).await), ErrorCode::RoleNotFound);
    p.create_role(&owner, org, reports_reader()).await.unwrap();
    p.assign_role(&owner, org, w.people.viewer, &name).await.unwrap();
    assert_eq!(code(p.delete_role(&owner, org, &name).await), ErrorCode::RoleInUse);
    let child = CustomRole {
        name: role("senior-reader"),
        parent: Some(name.clone()),
        permissions: vec![RolePermission::allow("reports", "export")],
    };
    p.create_role(&owner, org, child).await.unwrap();
    p.unassign_role(&owner, org, w.people.viewer, &name).await.unwrap();
    assert_eq!(
        code(p.delete_role(&owner, org, &name).await),
        ErrorCode::RoleInUse,
        "another role inherits it"
    );
    p.delete_role(&owner, org, &role("senior-reader")).await.unwrap();
    let revision = p.delete_role(&owner, org, &name).await.unwrap();
    assert_eq!(revision, w.authz.revision());
    assert!(
        p.list_roles(&owner, org, &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        !w.authz
            .lines()
            .iter()
            .any(|l| l.domain() == portal_core::access::Domain::Org(org)),
        "the org holds no line any more"
    );
}
