//! A portal with the shipped workflow definitions over in-memory stores, and an org of
//! members in every built-in role, shared by the workflow service and model tests.
#![allow(dead_code, reason = "each test binary uses a different subset of the helpers")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a harness that cannot set up fails the test"
)]

use std::sync::{Arc, Mutex, PoisonError};

use portal_adapters::memory::{InMemorySupportGrantStore, InMemoryTenancyStore, InMemoryWorkflowStore};
use portal_core::context::{IdempotencyKey, Principal, ServiceName};
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink};
use portal_core::ids::SequentialIds;
use portal_core::support::{NewSupportGrant, SupportAccess};
use portal_core::tenancy::{NewOrg, NewUser, Organization, RoleSet, User};
use portal_core::time::ManualClock;
use portal_core::workflow::{WorkflowService, WorkflowStore, catalog};
use portal_core::{Portal, RequestContext};
use time::OffsetDateTime;
use time::macros::datetime;

/// A diagnostic sink that keeps every event, for assertions.
#[derive(Default)]
pub(crate) struct CollectingSink {
    events: Mutex<Vec<DiagnosticEvent>>,
}

impl DiagnosticSink for CollectingSink {
    fn record(&self, event: DiagnosticEvent) {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).push(event);
    }
}

impl CollectingSink {
    /// Every event of the request `ctx`.
    pub(crate) fn of(&self, ctx: &RequestContext) -> Vec<DiagnosticEvent> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events
            .iter()
            .filter(|e| e.request_id == ctx.request_id())
            .cloned()
            .collect()
    }
}

pub(crate) fn start() -> OffsetDateTime {
    datetime!(2030-06-01 08:00:00.250_000 UTC)
}

/// The org `acme` with an owner, three admins, two members and a viewer; `outsider`
/// owns `globex`.
pub(crate) struct World {
    pub(crate) portal: Portal,
    /// Another portal over the same stores, clock and sink: a second replica of the host.
    pub(crate) replica: Portal,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) sink: Arc<CollectingSink>,
    pub(crate) store: Arc<dyn WorkflowStore>,
    pub(crate) owner: User,
    pub(crate) admins: [User; 3],
    pub(crate) members: [User; 2],
    pub(crate) viewer: User,
    pub(crate) outsider: User,
    pub(crate) acme: Organization,
    pub(crate) globex: Organization,
}

impl World {
    pub(crate) async fn new() -> Self {
        Self::over(Arc::new(InMemoryWorkflowStore::new())).await
    }

    pub(crate) async fn over(store: Arc<dyn WorkflowStore>) -> Self {
        let clock = Arc::new(ManualClock::new(start()));
        let sink = Arc::new(CollectingSink::default());
        let tenancy = Arc::new(InMemoryTenancyStore::new());
        let ids = Arc::new(SequentialIds::default());
        let grants = Arc::new(InMemorySupportGrantStore::new());
        let build = || {
            Portal::builder()
                .tenancy_store(tenancy.clone())
                .support_grants(grants.clone())
                .workflow_store(store.clone())
                .workflow_definitions(catalog::all().unwrap())
                .clock(clock.clone())
                .ids(ids.clone())
                .diagnostics(sink.clone())
                .build()
                .unwrap()
        };
        let (portal, replica) = (build(), build());
        let signup = Principal::Service(ServiceName::new("signup").unwrap());
        let mut users = Vec::new();
        for name in [
            "owner", "admin1", "admin2", "admin3", "member1", "member2", "viewer", "outsider",
        ] {
            let ctx = portal.context(signup.clone()).build();
            let new = NewUser {
                email: format!("{name}@example.com"),
                display_name: name.to_owned(),
            };
            users.push(portal.tenancy().create_user(&ctx, new).await.unwrap());
        }
        let [owner, a1, a2, a3, m1, m2, viewer, outsider] = users.try_into().unwrap();
        let acme = create_org(&portal, &owner, "acme").await;
        let globex = create_org(&portal, &outsider, "globex").await;
        let world = Self {
            portal,
            replica,
            clock,
            sink,
            store,
            owner,
            admins: [a1, a2, a3],
            members: [m1, m2],
            viewer,
            outsider,
            acme,
            globex,
        };
        for admin in &world.admins {
            world.join(admin, "admin").await;
        }
        for member in &world.members {
            world.join(member, "member").await;
        }
        world.join(&world.viewer, "viewer").await;
        world
    }

    pub(crate) fn as_user(&self, user: &User) -> RequestContext {
        self.portal.context(Principal::User(user.id)).build()
    }

    pub(crate) fn with_key(&self, user: &User, key: &str) -> RequestContext {
        let key = IdempotencyKey::new(key).unwrap();
        self.portal
            .context(Principal::User(user.id))
            .with(|b| b.idempotency_key(key))
            .build()
    }

    pub(crate) fn workflows(&self) -> &WorkflowService {
        self.portal.workflows().expect("the portal has a workflow store")
    }

    /// The owner gives `staff` (not a member) a support grant to acme with `access`.
    pub(crate) async fn grant(&self, staff: &User, access: SupportAccess) {
        let new = NewSupportGrant {
            staff: staff.id,
            reason: "a test of what support staff may do".to_owned(),
            access,
            duration: time::Duration::hours(1),
        };
        self.portal
            .support()
            .unwrap()
            .grant(&self.as_user(&self.owner), self.acme.id, new)
            .await
            .unwrap();
    }

    async fn join(&self, user: &User, role: &str) {
        let (_, token) = self
            .portal
            .tenancy()
            .invite(
                &self.as_user(&self.owner),
                self.acme.id,
                user.email.as_str(),
                RoleSet::parse([role]).unwrap(),
            )
            .await
            .unwrap();
        self.portal
            .tenancy()
            .accept_invitation(&self.as_user(user), &token)
            .await
            .unwrap();
    }
}

async fn create_org(portal: &Portal, by: &User, slug: &str) -> Organization {
    let ctx = portal.context(Principal::User(by.id)).build();
    let new = NewOrg {
        slug: slug.to_owned(),
        name: format!("{slug} corporation"),
        ..NewOrg::default()
    };
    portal.tenancy().create_org(&ctx, new).await.unwrap()
}
