//! Shared set-up of the policy tests: portals whose `CasbinAuthorizer` loads the built-in
//! roles from a `PolicyStore`, and an org with an owner, an admin, a viewer and an outsider.
#![allow(dead_code, reason = "each test binary uses a different subset of the helpers")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a set-up that fails fails the test"
)]

use std::sync::{Arc, Mutex, PoisonError};

use portal_auth::CasbinAuthorizer;
use portal_auth::casbin_authz::builtin_policy;
use portal_core::access::{PolicyStore, Revision};
use portal_core::context::{Principal, ServiceName};
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink};
use portal_core::ids::{OrgId, UserId};
use portal_core::policy::AuditedPolicyStore;
use portal_core::tenancy::{NewOrg, NewUser, RoleName, RoleSet, TenancyStore};
use portal_core::{Portal, RequestContext};

/// Keeps every event, for assertions on what was recorded.
#[derive(Default)]
pub(crate) struct CollectingSink(Mutex<Vec<DiagnosticEvent>>);

impl DiagnosticSink for CollectingSink {
    fn record(&self, event: DiagnosticEvent) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(event);
    }
}

impl CollectingSink {
    /// The events recorded under `ctx`'s request id, in order.
    pub(crate) fn of(&self, ctx: &RequestContext) -> Vec<DiagnosticEvent> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|e| e.request_id == ctx.request_id())
            .cloned()
            .collect()
    }
}

/// Writes the built-in roles into an empty policy store.
pub(crate) async fn seed(store: &dyn PolicyStore) -> Revision {
    store.apply(&builtin_policy(), &[]).await.unwrap()
}

/// One replica of the host service: a portal whose authorizer was loaded from `policy`.
pub(crate) async fn portal_over(
    tenancy: Arc<dyn TenancyStore>,
    policy: Arc<dyn AuditedPolicyStore>,
    sink: Arc<CollectingSink>,
) -> (Portal, Arc<CasbinAuthorizer>) {
    let authorizer = Arc::new(CasbinAuthorizer::from_store(&*policy).await.unwrap());
    let portal = Portal::builder()
        .tenancy_store(tenancy)
        .policy(policy, authorizer.clone())
        .diagnostics(sink)
        .build()
        .unwrap();
    (portal, authorizer)
}

/// An org with four people: its owner, an admin, a viewer, and an outsider (a user who
/// belongs to another org only).
pub(crate) struct People {
    pub(crate) org: OrgId,
    pub(crate) owner: UserId,
    pub(crate) admin: UserId,
    pub(crate) viewer: UserId,
    pub(crate) outsider: UserId,
}

pub(crate) fn ctx(portal: &Portal, user: UserId) -> RequestContext {
    portal.context(Principal::User(user)).build()
}

pub(crate) fn role(name: &str) -> RoleName {
    RoleName::new(name).unwrap()
}

/// Creates the people and their org through `portal`'s tenancy service.
pub(crate) async fn people(portal: &Portal) -> People {
    let service = Principal::Service(ServiceName::new("signup").unwrap());
    let suffix = format!("{:x}", uuid::Uuid::now_v7().as_u128());
    let mut users = Vec::new();
    for name in ["owner", "admin", "viewer", "outsider"] {
        let user = portal
            .tenancy()
            .create_user(
                &portal.context(service.clone()).build(),
                NewUser {
                    email: format!("{name}-{suffix}@example.com"),
                    display_name: name.to_owned(),
                },
            )
            .await
            .unwrap();
        users.push(user);
    }
    let new_org = |slug: String| NewOrg {
        slug,
        name: "Acme".to_owned(),
        ..NewOrg::default()
    };
    let org = portal
        .tenancy()
        .create_org(&ctx(portal, users[0].id), new_org(format!("acme-{}", &suffix[20..])))
        .await
        .unwrap()
        .id;
    portal
        .tenancy()
        .create_org(&ctx(portal, users[3].id), new_org(format!("globex-{}", &suffix[20..])))
        .await
        .unwrap();
    for (user, roles) in [(&users[1], RoleName::admin()), (&users[2], RoleName::viewer())] {
        let (_, token) = portal
            .tenancy()
            .invite(&ctx(portal, users[0].id), org, user.email.as_str(), RoleSet::one(roles))
            .await
            .unwrap();
        portal
            .tenancy()
            .accept_invitation(&ctx(portal, user.id), &token)
            .await
            .unwrap();
    }
    People {
        org,
        owner: users[0].id,
        admin: users[1].id,
        viewer: users[2].id,
        outsider: users[3].id,
    }
}
