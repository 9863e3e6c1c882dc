//! Support access through `Portal::support`: vendor staff reach a customer org only
//! through an active grant, with the grant's role, and every step is audited.
//!
//! Every test runs twice: on the default `RoleTableAuthorizer`, and on a
//! `CasbinAuthorizer` loaded from `builtin_policy` (through `Portal::policy`), so the two
//! built-in tables agree on the support roles.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::sync::{Arc, Mutex, PoisonError};

use portal_adapters::memory::{
    InMemoryPolicyStore, InMemorySupportGrantStore, InMemoryTenancyStore, InMemoryWorkflowStore,
};
use portal_auth::CasbinAuthorizer;
use portal_auth::casbin_authz::builtin_policy;
use portal_core::access::PolicyStore;
use portal_core::context::{Principal, ServiceName};
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink, EventKind};
use portal_core::ids::{GrantId, OrgId, SequentialIds, UserId};
use portal_core::store::{Cursor, PageRequest};
use portal_core::support::{NewSupportGrant, SupportAccess, SupportGrant, SupportService};
use portal_core::tenancy::{NewOrg, NewUser, OrgUpdate, RoleSet};
use portal_core::time::ManualClock;
use portal_core::workflow::NewInstance;
use portal_core::workflow::catalog::{self, SupportCase};
use portal_core::{ErrorCode, Portal, PortalError, RequestContext};
use time::Duration;
use time::macros::datetime;

/// A diagnostic sink that keeps every event, for assertions.
#[derive(Default)]
struct CollectingSink {
    events: Mutex<Vec<DiagnosticEvent>>,
}

impl DiagnosticSink for CollectingSink {
    fn record(&self, event: DiagnosticEvent) {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).push(event);
    }
}

impl CollectingSink {
    /// Every event of the request `ctx`.
    fn of(&self, ctx: &RequestContext) -> Vec<DiagnosticEvent> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events
            .iter()
            .filter(|e| e.request_id == ctx.request_id())
            .cloned()
            .collect()
    }

    /// The one event named `name` of the request `ctx`.
    fn named(&self, ctx: &RequestContext, name: &str) -> DiagnosticEvent {
        let events: Vec<_> = self.of(ctx).into_iter().filter(|e| e.name == name).collect();
        assert_eq!(events.len(), 1, "expected one `{name}` event, got {events:#?}");
        events.into_iter().next().unwrap()
    }
}

#[derive(Debug, Clone, Copy)]
enum Authz {
    RoleTable,
    Casbin,
}

/// A customer org `acme` with an owner and an admin, a member of another org, and a
/// vendor staff member who belongs to no org.
struct World {
    portal: Portal,
    clock: Arc<ManualClock>,
    sink: Arc<CollectingSink>,
    acme: OrgId,
    owner: UserId,
    admin: UserId,
    outsider: UserId,
    staff: UserId,
}

impl World {
    async fn new(authz: Authz) -> Self {
        let clock = Arc::new(ManualClock::new(datetime!(2030-06-01 08:00:00.250_000 UTC)));
        let sink = Arc::new(CollectingSink::default());
        let mut builder = Portal::builder()
            .tenancy_store(Arc::new(InMemoryTenancyStore::new()))
            .support_grants(Arc::new(InMemorySupportGrantStore::new()))
            .workflow_store(Arc::new(InMemoryWorkflowStore::new()))
            .workflow_definitions(catalog::all().unwrap())
            .clock(clock.clone())
            .ids(Arc::new(SequentialIds::default()))
            .diagnostics(sink.clone());
        if let Authz::Casbin = authz {
            let store = InMemoryPolicyStore::new();
            store.apply(&builtin_policy(), &[]).await.unwrap();
            let authorizer = Arc::new(CasbinAuthorizer::from_store(&store).await.unwrap());
            builder = builder.policy(Arc::new(store), authorizer);
        }
        let portal = builder.build().unwrap();
        let signup = Principal::Service(ServiceName::new("signup").unwrap());
        let mut users = Vec::new();
        for name in ["owner", "admin", "outsider", "staff"] {
            let ctx = portal.context(signup.clone()).build();
            let new = NewUser {
                email: format!("{name}@example.com"),
                display_name: format!("The {name}"),
            };
            users.push(portal.tenancy().create_user(&ctx, new).await.unwrap().id);
        }
        let [owner, admin, outsider, staff] = users.try_into().unwrap();
        let acme = create_org(&portal, owner, "acme").await;
        create_org(&portal, outsider, "globex").await;
        let ctx = portal.context(Principal::User(owner)).build();
        let invite = portal
            .tenancy()
            .invite(&ctx, acme, "admin@example.com", RoleSet::parse(["admin"]).unwrap())
            .await
            .unwrap();
        let ctx = portal.context(Principal::User(admin)).build();
        portal.tenancy().accept_invitation(&ctx, &invite.1).await.unwrap();
        Self {
            portal,
            clock,
            sink,
            acme,
            owner,
            admin,
            outsider,
            staff,
        }
    }

    fn support(&self) -> &SupportService {
        self.portal.support().unwrap()
    }

    fn ctx(&self, user: UserId) -> RequestContext {
        self.portal.context(Principal::User(user)).build()
    }

    /// The owner grants the staff member `access` for `hours`.
    async fn grant(&self, access: SupportAccess, hours: i64) -> SupportGrant {
        self.support()
            .grant(&self.ctx(self.owner), self.acme, new_grant(self.staff, access, hours))
            .await
            .unwrap()
    }

    /// Whether the staff member can list acme's members, as the error code if not.
    async fn staff_reads_members(&self) -> Result<(), ErrorCode> {
        let ctx = self.ctx(self.staff);
        self.portal
            .tenancy()
            .list_members(&ctx, self.acme, &PageRequest::first(50))
            .await
            .map(|_| ())
            .map_err(|e| e.code())
    }
}

async fn create_org(portal: &Portal, owner: UserId, slug: &str) -> OrgId {
    let ctx = portal.context(Principal::User(owner)).build();
    let new = NewOrg {
        slug: slug.to_owned(),
        name: format!("{slug} corporation"),
        ..NewOrg::default()
    };
    portal.tenancy().create_org(&ctx, new).await.unwrap().id
}

fn new_grant(staff: UserId, access: SupportAccess, hours: i64) -> NewSupportGrant {
    NewSupportGrant {
        staff,
        reason: "ticket 4711: the export fails".to_owned(),
        access,
        duration: Duration::hours(hours),
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, PortalError>) -> ErrorCode {
    result.unwrap_err().code()
}

const BOTH: [Authz; 2] = [Authz::RoleTable, Authz::Casbin];

#[tokio::test]
async fn staff_without_a_grant_find_the_org_not_found() {
    for authz in BOTH {
        let w = World::new(authz).await;
        assert_eq!(w.staff_reads_members().await, Err(ErrorCode::OrgNotFound), "{authz:?}");
        let ctx = w.ctx(w.staff);
        assert_eq!(
            code(w.portal.tenancy().get_org(&ctx, w.acme).await),
            ErrorCode::OrgNotFound
        );
    }
}

#[tokio::test]
async fn a_read_only_grant_reads_members_but_cannot_change_roles_or_the_org() {
    for authz in BOTH {
        let w = World::new(authz).await;
        w.grant(SupportAccess::ReadOnly, 24).await;
        assert_eq!(w.staff_reads_members().await, Ok(()), "{authz:?}");
        let ctx = w.ctx(w.staff);
        assert_eq!(
            code(
                w.portal
                    .tenancy()
                    .set_member_roles(&ctx, w.acme, w.admin, RoleSet::parse(["member"]).unwrap())
                    .await
            ),
            ErrorCode::AccessDenied,
            "{authz:?}"
        );
        let update = OrgUpdate {
            name: Some("Pwned".to_owned()),
            ..OrgUpdate::default()
        };
        assert_eq!(
            code(w.portal.tenancy().update_org(&ctx, w.acme, update).await),
            ErrorCode::AccessDenied,
            "{authz:?}"
        );
    }
}

#[tokio::test]
async fn a_read_write_grant_does_support_work_but_never_assigns_owner_or_manages_roles() {
    for authz in BOTH {
        let w = World::new(authz).await;
        w.grant(SupportAccess::ReadWrite, 24).await;
        let ctx = w.ctx(w.staff);
        let update = OrgUpdate {
            name: Some("Acme (fixed)".to_owned()),
            ..OrgUpdate::default()
        };
        let org = w.portal.tenancy().update_org(&ctx, w.acme, update).await.unwrap();
        assert_eq!(org.name.as_str(), "Acme (fixed)", "{authz:?}");
        for roles in [["owner"], ["admin"]] {
            assert_eq!(
                code(
                    w.portal
                        .tenancy()
                        .set_member_roles(&ctx, w.acme, w.admin, RoleSet::parse(roles).unwrap())
                        .await
                ),
                ErrorCode::AccessDenied,
                "{authz:?} {roles:?}"
            );
        }
        assert_eq!(
            code(
                w.portal
                    .tenancy()
                    .invite(&ctx, w.acme, "new@example.com", RoleSet::parse(["owner"]).unwrap())
                    .await
            ),
            ErrorCode::AccessDenied,
            "{authz:?}: no invitation of an owner"
        );
        // Staff cannot extend their own access.
        assert_eq!(
            code(
                w.support()
                    .grant(&ctx, w.acme, new_grant(w.staff, SupportAccess::ReadWrite, 72))
                    .await
            ),
            ErrorCode::AccessDenied,
            "{authz:?}"
        );
        if let Ok(policy) = w.portal.policy() {
            assert_eq!(
                code(policy.list_roles(&ctx, w.acme, &PageRequest::default()).await),
                ErrorCode::AccessDenied
            );
            assert_eq!(
                policy
                    .check(&ctx, w.acme, "cases/c1", "write")
                    .await
                    .map_err(|e| e.code()),
                Ok(())
            );
        }
    }
}

#[tokio::test]
async fn an_expired_grant_answers_not_found_again() {
    for authz in BOTH {
        let w = World::new(authz).await;
        w.grant(SupportAccess::ReadOnly, 2).await;
        w.clock.advance(Duration::hours(2) - Duration::microseconds(1));
        assert_eq!(w.staff_reads_members().await, Ok(()), "{authz:?}: just before expiry");
        w.clock.advance(Duration::microseconds(1));
        assert_eq!(
            w.staff_reads_members().await,
            Err(ErrorCode::OrgNotFound),
            "{authz:?}: at expiry"
        );
    }
}

#[tokio::test]
async fn a_revoked_grant_answers_not_found_again() {
    for authz in BOTH {
        let w = World::new(authz).await;
        let grant = w.grant(SupportAccess::ReadWrite, 24).await;
        assert_eq!(w.staff_reads_members().await, Ok(()));
        w.clock.advance(Duration::minutes(5));
        let revoked = w.support().revoke(&w.ctx(w.admin), w.acme, grant.id).await.unwrap();
        assert_eq!(revoked.revoked_at, Some(w.clock_now()));
        assert_eq!(w.staff_reads_members().await, Err(ErrorCode::OrgNotFound), "{authz:?}");
    }
}

impl World {
    fn clock_now(&self) -> time::OffsetDateTime {
        self.portal.clock().now()
    }
}

#[tokio::test]
async fn a_grant_reaches_only_its_own_org() {
    let w = World::new(Authz::RoleTable).await;
    w.grant(SupportAccess::ReadWrite, 24).await;
    let ctx = w.ctx(w.staff);
    let globex = w
        .portal
        .tenancy()
        .list_user_orgs(&w.ctx(w.outsider), w.outsider, &PageRequest::default())
        .await
        .unwrap()
        .items[0]
        .org
        .id;
    assert_eq!(
        code(w.portal.tenancy().get_org(&ctx, globex).await),
        ErrorCode::OrgNotFound
    );
}

#[tokio::test]
async fn actions_under_a_grant_record_the_staff_member_the_org_and_the_grant() {
    for authz in BOTH {
        let w = World::new(authz).await;
        let grant = w.grant(SupportAccess::ReadOnly, 24).await;
        let ctx = w.ctx(w.staff);
        w.portal
            .tenancy()
            .list_members(&ctx, w.acme, &PageRequest::first(50))
            .await
            .unwrap();
        let access = w.sink.named(&ctx, "support.access");
        assert_eq!(access.actor, Some(Principal::User(w.staff)), "{authz:?}");
        assert_eq!(access.org, Some(w.acme));
        assert_eq!(access.kind, EventKind::PermissionDecision);
        assert_eq!(access.detail["grant"], serde_json::json!(grant.id));
        assert_eq!(access.detail["staff"], serde_json::json!(w.staff));
        assert_eq!(access.detail["role"], serde_json::json!("support_readonly"));
        let outcome = w.sink.named(&ctx, "tenancy.member.list");
        assert_eq!(outcome.actor, Some(Principal::User(w.staff)));
        assert_eq!(outcome.org, Some(w.acme));
    }
}

/// Issue 18, bounded reads: an org's grants are listed a page at a time (the `next`
/// cursor), never all at once; the pages hold every grant once, oldest first, and a
/// cursor the listing did not return is refused.
#[tokio::test]
async fn grants_are_listed_a_page_at_a_time() {
    let w = World::new(Authz::RoleTable).await;
    let owner = w.ctx(w.owner);
    let mut made = Vec::new();
    for hours in [1, 2, 3] {
        let grant = w
            .support()
            .grant(&owner, w.acme, new_grant(w.staff, SupportAccess::ReadOnly, hours))
            .await
            .unwrap();
        made.push(grant);
    }
    let mut paged = Vec::new();
    let mut page = PageRequest::first(1);
    loop {
        let got = w.support().list(&owner, w.acme, &page).await.unwrap();
        assert!(got.items.len() <= 1, "a page holds at most its size: {got:?}");
        paged.extend(got.items);
        match got.next {
            Some(next) => page = PageRequest::after(next, 1),
            None => break,
        }
        assert!(paged.len() <= made.len(), "the pages end");
    }
    assert_eq!(paged, made, "every grant once, oldest first");
    let bad = PageRequest::after(Cursor::new("nope"), 1);
    let err = w.support().list(&owner, w.acme, &bad).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidField, "{err:?}");
}

#[tokio::test]
async fn granting_and_revoking_are_audited_and_listed() {
    let w = World::new(Authz::RoleTable).await;
    let owner = w.ctx(w.owner);
    let grant = w
        .support()
        .grant(&owner, w.acme, new_grant(w.staff, SupportAccess::ReadOnly, 72))
        .await
        .unwrap();
    assert_eq!(grant.granted_by, Principal::User(w.owner));
    assert_eq!(grant.expires_at - grant.created_at, Duration::hours(72));
    let created = w.sink.named(&owner, "support.grant.create");
    assert_eq!(created.org, Some(w.acme));
    assert_eq!(created.detail["grant"], serde_json::json!(grant.id));
    assert_eq!(created.detail["staff"], serde_json::json!(w.staff));
    assert_eq!(
        created.detail["reason"],
        serde_json::json!("ticket 4711: the export fails")
    );

    let admin = w.ctx(w.admin);
    let revoked = w.support().revoke(&admin, w.acme, grant.id).await.unwrap();
    let event = w.sink.named(&admin, "support.grant.revoke");
    assert_eq!(event.actor, Some(Principal::User(w.admin)));
    assert_eq!(event.detail["grant"], serde_json::json!(grant.id));
    let listed = w.support().list(&admin, w.acme, &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items, vec![revoked]);
    assert_eq!(listed.next, None);
}

#[tokio::test]
async fn granting_checks_its_input_and_its_actor() {
    let w = World::new(Authz::RoleTable).await;
    let owner = w.ctx(w.owner);
    let cases = [
        (
            new_grant(w.staff, SupportAccess::ReadOnly, 73),
            ErrorCode::InvalidField,
            "longer than 72 h",
        ),
        (
            new_grant(w.staff, SupportAccess::ReadOnly, 0),
            ErrorCode::InvalidField,
            "no duration",
        ),
        (
            NewSupportGrant {
                reason: "   ".to_owned(),
                ..new_grant(w.staff, SupportAccess::ReadOnly, 1)
            },
            ErrorCode::InvalidField,
            "a blank reason",
        ),
        (
            new_grant(w.admin, SupportAccess::ReadOnly, 1),
            ErrorCode::InvalidField,
            "a member",
        ),
        (
            new_grant(UserId::from_uuid(uuid::Uuid::nil()), SupportAccess::ReadOnly, 1),
            ErrorCode::UserNotFound,
            "an unknown user",
        ),
    ];
    for (new, expected, what) in cases {
        assert_eq!(code(w.support().grant(&owner, w.acme, new).await), expected, "{what}");
    }
    // Someone outside the org cannot grant, and learns nothing about it.
    assert_eq!(
        code(
            w.support()
                .grant(
                    &w.ctx(w.outsider),
                    w.acme,
                    new_grant(w.staff, SupportAccess::ReadOnly, 1)
                )
                .await
        ),
        ErrorCode::OrgNotFound
    );
    let listed = w.support().list(&owner, w.acme, &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items, vec![]);
    // Revoking an id the org does not hold is not found.
    let unknown = GrantId::from_uuid(uuid::Uuid::nil());
    assert_eq!(
        code(w.support().revoke(&owner, w.acme, unknown).await),
        ErrorCode::SupportGrantNotFound
    );
}

#[tokio::test]
async fn staff_reach_an_orgs_workflows_only_through_a_grant_and_only_as_far_as_it_goes() {
    for authz in BOTH {
        let w = World::new(authz).await;
        let workflows = w.portal.workflows().unwrap();
        let case = SupportCase {
            subject: "the export fails".to_owned(),
            customer_reference: None,
        };
        let new = NewInstance::new("support_case", &case).unwrap();
        let created = workflows.create(&w.ctx(w.owner), w.acme, new).await.unwrap();

        // No grant: the case is not found, as for any outsider.
        let ctx = w.ctx(w.staff);
        assert_eq!(
            code(workflows.get(&ctx, w.acme, created.id).await),
            ErrorCode::WorkflowNotFound,
            "{authz:?}"
        );

        // Read-only: the case can be read but not moved on.
        let read_only = w.grant(SupportAccess::ReadOnly, 4).await;
        let ctx = w.ctx(w.staff);
        assert_eq!(workflows.get(&ctx, w.acme, created.id).await.unwrap().id, created.id);
        let triage = serde_json::json!({ "priority": "high" });
        let ctx = w.ctx(w.staff);
        assert_eq!(
            code(
                workflows
                    .transition(&ctx, w.acme, created.id, "triage", created.version, triage.clone())
                    .await
            ),
            ErrorCode::AccessDenied,
            "{authz:?}"
        );

        // Read-write: support work on the case is allowed.
        w.support().revoke(&w.ctx(w.owner), w.acme, read_only.id).await.unwrap();
        w.grant(SupportAccess::ReadWrite, 4).await;
        let ctx = w.ctx(w.staff);
        let moved = workflows
            .transition(&ctx, w.acme, created.id, "triage", created.version, triage)
            .await
            .unwrap();
        assert_eq!(moved.state, "triaged");
        assert_eq!(w.sink.named(&ctx, "support.access").org, Some(w.acme));
    }
}

#[tokio::test]
async fn support_roles_are_never_membership_roles() {
    for authz in BOTH {
        let w = World::new(authz).await;
        let ctx = w.ctx(w.owner);
        for role in ["support", "support_readonly"] {
            let roles = RoleSet::parse(["admin", role]).unwrap();
            let err = w
                .portal
                .tenancy()
                .set_member_roles(&ctx, w.acme, w.admin, roles.clone())
                .await
                .unwrap_err();
            assert_eq!(
                (err.code(), err.param()),
                (ErrorCode::InvalidField, Some("roles")),
                "{authz:?}"
            );
            let err = w
                .portal
                .tenancy()
                .invite(&ctx, w.acme, "new@example.com", roles)
                .await
                .unwrap_err();
            assert_eq!(
                (err.code(), err.param()),
                (ErrorCode::InvalidField, Some("roles")),
                "{authz:?}"
            );
            if let Ok(policy) = w.portal.policy() {
                let role = portal_core::tenancy::RoleName::new(role).unwrap();
                let err = policy.assign_role(&ctx, w.acme, w.admin, &role).await.unwrap_err();
                assert_eq!(err.code(), ErrorCode::InvalidField, "{authz:?}");
            }
        }
        // Nothing changed: the admin is still only an admin.
        let member = w.portal.tenancy().get_member(&ctx, w.acme, w.admin).await.unwrap();
        assert_eq!(member.roles, RoleSet::parse(["admin"]).unwrap(), "{authz:?}");
    }
}
