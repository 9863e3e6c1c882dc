//! Triage scenarios: real incidents staged through `Portal`, with a buffered journal sink
//! over a SQLite journal, each explained by one `explain` call that must name the right
//! root-cause code and evidence.
//!
//! Each scenario is an `async fn` that stages its incident and returns what `explain`
//! must find; [`every_scenario_is_explained`] runs them all, prints how many pass, and
//! requires all of them. To add one, write another `async fn` and list it there. Sign-in
//! incidents (an expired session, a locked account) run through the real
//! `portal_auth::identity::IdentityService`.
//! The other tests cover reading rules: redaction, tenant isolation, recording of reads,
//! timelines, support bundles, retention and export.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code asserts"
)]

mod common;

use std::sync::Arc;

use portal_adapters::memory::{InMemoryIdentityStore, InMemorySupportGrantStore, InMemoryTenancyStore};
use portal_adapters::observability::{BufferConfig, BufferedJournalSink, JournalWriter};
use portal_adapters::sqlite::{SqliteJournal, SqliteWorkflowStore};
use portal_auth::identity::{IdentityConfig, IdentityService, IdentityStores, PasswordParams, SignIn};
use portal_core::access::RoleTableAuthorizer;
use portal_core::context::{IdempotencyKey, Principal, ServiceName};
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink, EventKind, Journal, RequestQuery};
use portal_core::gate::Gate;
use portal_core::identity::Credential;
use portal_core::ids::{RandomIds, RequestId};
use portal_core::support::{NewSupportGrant, SupportAccess};
use portal_core::tenancy::{NewOrg, NewUser, Organization, RoleSet, User};
use portal_core::time::ManualClock;
use portal_core::triage::{Evidence, Explanation, Scope, Timeline, TriageConfig, TriageService, Viewer};
use portal_core::workflow::{Instance, NewInstance, WorkflowService, catalog};
use portal_core::{Clock, ErrorCode, PageRequest, Portal, RequestContext};
use secrecy::SecretString;
use serde_json::json;
use time::macros::datetime;

const PASSWORD: &str = "correct horse battery staple";

/// `acme` (owner, admin, member, viewer), `globex` (outsider), and `staff`, a vendor
/// support engineer with a read-only support grant to `acme`.
struct World {
    portal: Portal,
    sink: Arc<BufferedJournalSink>,
    writer: JournalWriter,
    journal: Arc<SqliteJournal>,
    identity: IdentityService,
    workflow_pool: sqlx::SqlitePool,
    clock: Arc<ManualClock>,
    owner: User,
    admin: User,
    member: User,
    viewer: User,
    outsider: User,
    staff: User,
    acme: Organization,
    globex: Organization,
}

fn signup() -> Principal {
    Principal::Service(ServiceName::new("signup").unwrap())
}

fn console() -> Principal {
    Principal::Service(ServiceName::new("vendor-console").unwrap())
}

impl World {
    async fn new() -> Self {
        let clock = Arc::new(ManualClock::new(datetime!(2030-06-01 08:00:00.250_000 UTC)));
        let journal = Arc::new(SqliteJournal::new(common::fresh_sqlite_pool().await));
        let (sink, writer) = BufferedJournalSink::spawn(journal.clone(), BufferConfig::default());
        let sink = Arc::new(sink);
        let workflow_pool = common::fresh_sqlite_pool().await;
        let tenancy = Arc::new(InMemoryTenancyStore::new());
        let ids = Arc::new(RandomIds::default());
        let authorizer = Arc::new(RoleTableAuthorizer::default());
        // Sign-in through the real identity service, on the same tenancy store and sink;
        // light argon2 parameters keep the test fast.
        let identity = IdentityService::new(
            IdentityStores::from_one(Arc::new(InMemoryIdentityStore::new())),
            tenancy.clone(),
            Gate::new(authorizer.clone(), sink.clone(), tenancy.clone()),
            ids.clone(),
        )
        .with_password_params(PasswordParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let portal = Portal::builder()
            .tenancy_store(tenancy)
            .authorizer(authorizer)
            .authenticator(Arc::new(identity.clone()))
            .workflow_store(Arc::new(SqliteWorkflowStore::new(workflow_pool.clone())))
            .workflow_definitions(catalog::all().unwrap())
            .support_grants(Arc::new(InMemorySupportGrantStore::new()))
            .clock(clock.clone())
            .ids(ids)
            .diagnostics(sink.clone())
            .journal(journal.clone())
            .triage_config(TriageConfig::default())
            .build()
            .unwrap();
        let mut users = Vec::new();
        for name in ["owner", "admin", "member", "viewer", "outsider", "staff"] {
            let ctx = portal.context(signup()).build();
            let new = NewUser {
                email: format!("{name}@example.com"),
                display_name: name.to_owned(),
            };
            users.push(portal.tenancy().create_user(&ctx, new).await.unwrap());
        }
        let [owner, admin, member, viewer, outsider, staff] = users.try_into().unwrap();
        // The outsider owns globex and is a member of nothing else.
        let acme = create_org(&portal, &owner, "acme").await;
        let globex = create_org(&portal, &outsider, "globex").await;
        let world = Self {
            portal,
            sink,
            writer,
            journal,
            identity,
            workflow_pool,
            clock,
            owner,
            admin,
            member,
            viewer,
            outsider,
            staff,
            acme,
            globex,
        };
        world.join(&world.admin, "admin").await;
        world.join(&world.member, "member").await;
        world.join(&world.viewer, "viewer").await;
        for user in [&world.member, &world.viewer] {
            world
                .identity
                .set_password(&world.edge(), user.id, SecretString::from(PASSWORD.to_owned()))
                .await
                .unwrap();
        }
        let grant = NewSupportGrant {
            staff: world.staff.id,
            reason: "ticket 4711: customer cannot update cases".to_owned(),
            access: SupportAccess::ReadOnly,
            duration: time::Duration::hours(24),
        };
        let owner_ctx = world.as_user(&world.owner);
        world
            .portal
            .support()
            .unwrap()
            .grant(&owner_ctx, world.acme.id, grant)
            .await
            .unwrap();
        world
    }

    /// The context of a request not yet signed in: the host's edge service.
    fn edge(&self) -> RequestContext {
        self.portal.context(signup()).build()
    }

    /// A sign-in of `user` with the right password, from `source`.
    fn sign_in(&self, user: &User, source: &str) -> SignIn {
        SignIn {
            email: user.email.as_str().to_owned(),
            password: SecretString::from(PASSWORD.to_owned()),
            source: source.to_owned(),
            previous_session: None,
        }
    }

    fn as_user(&self, user: &User) -> RequestContext {
        self.portal.context(Principal::User(user.id)).build()
    }

    fn in_org(&self, user: &User, org: &Organization) -> RequestContext {
        self.portal.context(Principal::User(user.id)).org(org.id).build()
    }

    fn workflows(&self) -> &WorkflowService {
        self.portal.workflows().unwrap()
    }

    fn triage(&self) -> &TriageService {
        self.portal.triage().unwrap()
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

    async fn new_case(&self) -> Instance {
        let new = NewInstance::new(
            "support_case",
            &catalog::SupportCase {
                subject: "the printer is on fire".into(),
                customer_reference: None,
            },
        )
        .unwrap();
        self.workflows()
            .create(&self.as_user(&self.member), self.acme.id, new)
            .await
            .unwrap()
    }

    /// Explains `request` as support staff in `scope` (the console on the platform, or
    /// `staff` through their grant in acme), after the journal caught up.
    async fn explain(&self, scope: Scope, request: RequestId) -> Explanation {
        self.writer.flush().await;
        let ctx = match scope {
            Scope::Platform => self.portal.context(console()).build(),
            Scope::Org(_) => self.as_user(&self.staff),
        };
        self.triage().explain(&ctx, scope, request).await.unwrap()
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

/// What a scenario staged: the request to explain, where, and what `explain` must find.
struct Staged {
    request: RequestId,
    scope: Scope,
    code: ErrorCode,
    evidence: fn(&Evidence) -> bool,
}

/// A viewer fires a transition their role does not grant.
async fn missing_role(w: &World) -> Staged {
    let case = w.new_case().await;
    let ctx = w.as_user(&w.viewer);
    let err = w
        .workflows()
        .transition(&ctx, w.acme.id, case.id, "triage", 1, json!({ "priority": "high" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::AccessDenied);
    Staged {
        request: ctx.request_id(),
        scope: Scope::Org(w.acme.id),
        code: ErrorCode::AccessDenied,
        evidence: |e| {
            matches!(e, Evidence::PermissionDenial { object, action, roles, would_grant, reason }
                if object.starts_with("cases/") && action == "write" && roles == &["viewer"]
                    && would_grant.iter().any(|r| r == "member") && reason.is_some())
        },
    }
}

/// A member of acme asks for globex's members.
async fn cross_tenant_attempt(w: &World) -> Staged {
    let ctx = w.in_org(&w.member, &w.acme);
    let err = w
        .portal
        .tenancy()
        .list_members(&ctx, w.globex.id, &PageRequest::first(10))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OrgNotFound);
    Staged {
        request: ctx.request_id(),
        scope: Scope::Platform,
        code: ErrorCode::OrgNotFound,
        evidence: |e| {
            matches!(
                e,
                Evidence::OutsideOrg {
                    org: Some(_),
                    principal: Some(_),
                    home_org: Some(_)
                }
            )
        },
    }
}

/// A member closes a case that is still open.
async fn transition_from_the_wrong_state(w: &World) -> Staged {
    let case = w.new_case().await;
    let ctx = w.as_user(&w.member);
    let err = w
        .workflows()
        .transition(&ctx, w.acme.id, case.id, "close", 1, json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TransitionNotAllowed);
    Staged {
        request: ctx.request_id(),
        scope: Scope::Org(w.acme.id),
        code: ErrorCode::TransitionNotAllowed,
        evidence: |e| {
            matches!(e, Evidence::WorkflowState { instance: Some(_), state: Some(state), available }
                if state == "open" && available == &["triage"])
        },
    }
}

/// Two members change one case from the same version; the second loses.
async fn version_conflict(w: &World) -> Staged {
    let case = w.new_case().await;
    w.workflows()
        .transition(
            &w.as_user(&w.member),
            w.acme.id,
            case.id,
            "triage",
            1,
            json!({ "priority": "low" }),
        )
        .await
        .unwrap();
    let ctx = w.as_user(&w.admin);
    let err = w
        .workflows()
        .transition(&ctx, w.acme.id, case.id, "triage", 1, json!({ "priority": "high" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionConflict);
    Staged {
        request: ctx.request_id(),
        scope: Scope::Org(w.acme.id),
        code: ErrorCode::VersionConflict,
        evidence: |e| {
            matches!(
                e,
                Evidence::VersionConflict {
                    current_version: Some(2)
                }
            )
        },
    }
}

/// A member reuses an idempotency key for a different transition.
async fn reused_idempotency_key(w: &World) -> Staged {
    let (first, second) = (w.new_case().await, w.new_case().await);
    let key = IdempotencyKey::new("retry-7f3a").unwrap();
    let with_key = || {
        w.portal
            .context(Principal::User(w.member.id))
            .with(|b| b.idempotency_key(key.clone()))
            .build()
    };
    w.workflows()
        .transition(
            &with_key(),
            w.acme.id,
            first.id,
            "triage",
            1,
            json!({ "priority": "low" }),
        )
        .await
        .unwrap();
    let ctx = with_key();
    let err = w
        .workflows()
        .transition(&ctx, w.acme.id, second.id, "triage", 1, json!({ "priority": "low" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
    Staged {
        request: ctx.request_id(),
        scope: Scope::Org(w.acme.id),
        code: ErrorCode::IdempotencyKeyReused,
        evidence: |e| matches!(e, Evidence::IdempotencyKeyReused { key: Some(k) } if k == "retry-7f3a"),
    }
}

/// The workflow database goes away (its pool is closed) while a member triages a case.
/// Runs last: it takes the workflow store down for good.
async fn storage_outage(w: &World) -> Staged {
    let case = w.new_case().await;
    w.workflow_pool.close().await;
    let ctx = w.as_user(&w.member);
    let err = w
        .workflows()
        .transition(&ctx, w.acme.id, case.id, "triage", 1, json!({ "priority": "high" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    Staged {
        request: ctx.request_id(),
        scope: Scope::Org(w.acme.id),
        code: ErrorCode::StorageUnavailable,
        evidence: |e| {
            matches!(e, Evidence::StorageFailure { operation: Some(op), error: Some(chain) }
                if op == "workflow.transition" && chain.contains("unavailable"))
        },
    }
}

/// An expired session: the member signs in through the real `IdentityService` (argon2id
/// password, session token), stays away longer than the idle timeout, and comes back with
/// the same token. The identity service records `auth.session` with `failure: expired`.
async fn expired_session(w: &World) -> Staged {
    let identity = &w.identity;
    let session = identity
        .sign_in(&w.edge(), w.sign_in(&w.member, "198.51.100.7"))
        .await
        .unwrap();
    w.clock
        .advance(IdentityConfig::default().session_idle + time::Duration::minutes(1));
    let ctx = w.edge();
    let credential = Credential::Session(session.token);
    let err = w.portal.authenticate(&ctx, &credential).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidCredentials);
    Staged {
        request: ctx.request_id(),
        scope: Scope::Platform,
        code: ErrorCode::InvalidCredentials,
        evidence: |e| matches!(e, Evidence::AuthenticationFailure { step, reason: Some(r) } if step == "auth.session" && r == "expired"),
    }
}

/// A locked account: five wrong passwords from one source lock the viewer's account for
/// that source, and the right password from it is then refused (`auth.sign_in`,
/// `failure: locked`). Another source still signs in (the lock is per account and source).
async fn locked_account(w: &World) -> Staged {
    let identity = &w.identity;
    for _ in 0..5 {
        let mut wrong = w.sign_in(&w.viewer, "203.0.113.9");
        wrong.password = SecretString::from("not the password at all".to_owned());
        identity.sign_in(&w.edge(), wrong).await.unwrap_err();
    }
    let ctx = w.edge();
    let err = identity
        .sign_in(&ctx, w.sign_in(&w.viewer, "203.0.113.9"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidCredentials);
    Staged {
        request: ctx.request_id(),
        scope: Scope::Platform,
        code: ErrorCode::InvalidCredentials,
        evidence: |e| matches!(e, Evidence::AuthenticationFailure { step, reason: Some(r) } if step == "auth.sign_in" && r == "locked"),
    }
}

/// Checks one scenario's explanation.
fn check(staged: &Staged, x: &Explanation) -> Result<(), String> {
    if x.root_cause != Some(staged.code) {
        return Err(format!("root cause {:?}, expected {}", x.root_cause, staged.code));
    }
    if !x.evidence.iter().any(staged.evidence) {
        return Err(format!("evidence {:?} does not show the cause", x.evidence));
    }
    if x.summary.is_empty() || x.next_step.is_none() || x.viewer != Viewer::Support {
        return Err(format!("incomplete explanation: {x:?}"));
    }
    Ok(())
}

#[tokio::test]
async fn every_scenario_is_explained() {
    let w = World::new().await;
    let mut results = Vec::new();
    macro_rules! run {
        ($($scenario:ident),* $(,)?) => {$(
            let staged = $scenario(&w).await;
            let explanation = w.explain(staged.scope, staged.request).await;
            let outcome = check(&staged, &explanation);
            println!("{:<32} {}", stringify!($scenario), match &outcome { Ok(()) => "pass".to_owned(), Err(e) => format!("FAIL: {e}") });
            println!("    {}", explanation.summary);
            results.push((stringify!($scenario), outcome));
        )*};
    }
    // The storage outage goes last: it closes the workflow store's pool.
    run!(
        missing_role,
        cross_tenant_attempt,
        transition_from_the_wrong_state,
        version_conflict,
        reused_idempotency_key,
        expired_session,
        locked_account,
        storage_outage,
    );
    let passed = results.iter().filter(|(_, r)| r.is_ok()).count();
    println!("{passed}/{} triage scenarios pass", results.len());
    assert_eq!(
        passed,
        results.len(),
        "failing: {:?}",
        results.iter().filter(|(_, r)| r.is_err()).collect::<Vec<_>>()
    );
    assert_eq!(w.sink.dropped(), 0, "no event was dropped");
}

#[tokio::test]
async fn org_admins_read_their_own_org_redacted_and_nothing_else() {
    let w = World::new().await;
    let ctx = w.in_org(&w.member, &w.acme);
    w.sink.record(
        DiagnosticEvent::new(&ctx, EventKind::Authentication, "auth.sign_in")
            .with_org(w.acme.id)
            .with_error(ErrorCode::InvalidCredentials)
            .with_detail("auth.v1", json!({ "method": "password", "failure": "locked" })),
    );
    let cross = w.in_org(&w.member, &w.acme);
    let _ = w
        .portal
        .tenancy()
        .list_members(&cross, w.globex.id, &PageRequest::first(10))
        .await;
    w.writer.flush().await;
    let admin = w.as_user(&w.admin);
    let x = w
        .triage()
        .explain(&admin, Scope::Org(w.acme.id), ctx.request_id())
        .await
        .unwrap();
    assert_eq!(x.viewer, Viewer::Customer);
    assert_eq!(x.root_cause, Some(ErrorCode::InvalidCredentials));
    assert!(
        x.evidence
            .iter()
            .all(|e| matches!(e, Evidence::AuthenticationFailure { reason: None, .. })),
        "the failure reason is support-only: {:?}",
        x.evidence
    );
    let events = w
        .triage()
        .by_request(
            &admin,
            Scope::Org(w.acme.id),
            ctx.request_id(),
            &PageRequest::first(200),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(events[0].detail["failure"], "redacted");
    // The cross-tenant request's events live in globex: acme's admin sees none of them.
    let other = w
        .triage()
        .by_request(
            &admin,
            Scope::Org(w.acme.id),
            cross.request_id(),
            &PageRequest::first(200),
        )
        .await
        .unwrap()
        .items;
    assert!(other.is_empty(), "{other:?}");
    // Globex is not acme's admin's to read, nor the platform.
    let err = w
        .triage()
        .by_request(
            &admin,
            Scope::Org(w.globex.id),
            cross.request_id(),
            &PageRequest::first(200),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OrgNotFound);
    let err = w
        .triage()
        .by_request(&admin, Scope::Platform, cross.request_id(), &PageRequest::first(200))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::AccessDenied);
    // Members without `diagnostics read` are denied; support staff without a grant to globex
    // cannot reach it.
    let err = w
        .triage()
        .by_request(
            &w.as_user(&w.member),
            Scope::Org(w.acme.id),
            ctx.request_id(),
            &PageRequest::first(200),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::AccessDenied);
    let err = w
        .triage()
        .by_request(
            &w.as_user(&w.staff),
            Scope::Org(w.globex.id),
            cross.request_id(),
            &PageRequest::first(200),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OrgNotFound);
}

#[tokio::test]
async fn every_read_is_recorded() {
    let w = World::new().await;
    let staff = w.as_user(&w.staff);
    let subject = w.in_org(&w.member, &w.acme);
    w.triage()
        .by_request(
            &staff,
            Scope::Org(w.acme.id),
            subject.request_id(),
            &PageRequest::first(200),
        )
        .await
        .unwrap();
    w.writer.flush().await;
    let read = w
        .journal
        .by_request(&RequestQuery::first(staff.request_id(), 1000))
        .await
        .unwrap();
    let names: Vec<&str> = read.iter().map(|e| e.name.as_ref()).collect();
    assert!(names.contains(&"support.access"), "{names:?}");
    assert!(names.contains(&"access.check"), "{names:?}");
    let query = read
        .iter()
        .find(|e| e.name == "diagnostics.by_request")
        .expect("the read is an event");
    assert_eq!(query.kind, EventKind::Query);
    assert_eq!(query.org, Some(w.acme.id));
    assert_eq!(query.actor, Some(Principal::User(w.staff.id)));
}

#[tokio::test]
async fn a_timeline_pages_and_filters_and_a_bundle_groups_failures() {
    let w = World::new().await;
    let case = w.new_case().await;
    for _ in 0..3 {
        let ctx = w.as_user(&w.viewer);
        let _ = w
            .workflows()
            .transition(&ctx, w.acme.id, case.id, "triage", 1, json!({ "priority": "high" }))
            .await;
        w.clock.advance(time::Duration::seconds(1));
    }
    w.writer.flush().await;
    let staff = w.as_user(&w.staff);
    let filter = Timeline {
        user: Some(w.viewer.id),
        from: w.clock.now() - time::Duration::hours(1),
        until: w.clock.now() + time::Duration::hours(1),
        kinds: vec![EventKind::WorkflowTransition],
    };
    let mut page = PageRequest::first(2);
    let mut seen = Vec::new();
    loop {
        let got = w
            .triage()
            .timeline(&staff, Scope::Org(w.acme.id), &filter, &page)
            .await
            .unwrap();
        seen.extend(got.items);
        match got.next {
            Some(next) => page = PageRequest::after(next, 2),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "three failed transitions by the viewer: {seen:?}");
    assert!(
        seen.iter()
            .all(|e| e.kind == EventKind::WorkflowTransition && e.code == Some(ErrorCode::AccessDenied))
    );
    let bundle = w
        .triage()
        .support_bundle(&staff, Scope::Org(w.acme.id), Some(w.viewer.id))
        .await
        .unwrap();
    let group = bundle
        .failures
        .iter()
        .find(|g| g.code == ErrorCode::AccessDenied && g.place == "workflow.transition")
        .expect("the denials are one group");
    assert_eq!(group.count, 3);
    assert_eq!(bundle.memberships.len(), 1);
    assert_eq!(bundle.memberships[0].roles, ["viewer"]);
    assert!(bundle.sessions.is_none(), "no session directory is wired");
    let err = w
        .triage()
        .timeline(
            &staff,
            Scope::Org(w.acme.id),
            &filter,
            &PageRequest::after(portal_core::store::Cursor::new("nope"), 2),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidField);
}

#[tokio::test]
async fn export_writes_json_lines_and_purge_applies_the_retention_window() {
    let w = World::new().await;
    let _ = w.new_case().await;
    w.writer.flush().await;
    let owner = w.as_user(&w.owner);
    let mut out = Vec::new();
    let from = w.clock.now() - time::Duration::hours(1);
    let until = w.clock.now() + time::Duration::hours(1);
    let written = w
        .triage()
        .export_jsonl(&owner, w.acme.id, from, until, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count() as u64, written);
    assert!(written > 5, "the org's setup and the case are in the export: {written}");
    for line in text.lines() {
        let event: DiagnosticEvent = serde_json::from_str(line).unwrap();
        assert_eq!(event.org, Some(w.acme.id), "only the org's events");
    }
    // Move past the default 90-day window: everything of acme so far is purged.
    w.clock.advance(time::Duration::days(91));
    let owner = w.as_user(&w.owner);
    let purged = w.triage().purge_expired(&owner, w.acme.id).await.unwrap();
    assert!(purged >= written, "{purged} < {written}");
    let admin = w.as_user(&w.admin);
    let err = w.triage().purge_expired(&admin, w.acme.id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::AccessDenied, "only owners purge");
}

/// Issue 18: an org's bundle of a user is of one of its members. Another org's user and an
/// unknown user answer the same `member.not_found`, whoever asks in the org (its owner, or
/// support staff through a grant); the platform keeps its view of any user.
#[tokio::test]
async fn a_bundle_of_someone_outside_the_org_is_not_found() {
    let w = World::new().await;
    let owner = w.as_user(&w.owner);
    let globex_owner = w.as_user(&w.outsider);
    let unknown = portal_core::ids::UserId::generate(&RandomIds::default(), w.clock.now());
    for (ctx, org, user) in [
        (&globex_owner, w.globex.id, w.member.id),
        (&globex_owner, w.globex.id, unknown),
        (&owner, w.acme.id, w.outsider.id),
        (&w.as_user(&w.staff), w.acme.id, unknown),
    ] {
        let err = w
            .triage()
            .support_bundle(ctx, Scope::Org(org), Some(user))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::MemberNotFound, "{user} in {org}");
        assert_eq!(err.param(), Some("user"));
    }
    let platform = w.portal.context(console()).build();
    let bundle = w
        .triage()
        .support_bundle(&platform, Scope::Platform, Some(w.member.id))
        .await
        .unwrap();
    assert_eq!(bundle.memberships.len(), 1, "the platform sees the member's orgs");
}

/// Issue 18: an org's views of a request hold only that org's events. An org-less event
/// of the same request (a sign-in, a session event) is for the platform only: it neither
/// shows in the org's events nor decides the org's explanation.
#[tokio::test]
async fn org_less_events_of_a_request_are_for_the_platform_only() {
    let w = World::new().await;
    let ctx = w.in_org(&w.member, &w.acme);
    let mut sign_in = DiagnosticEvent::new(&ctx, EventKind::Authentication, "auth.sign_in")
        .with_error(ErrorCode::InvalidCredentials)
        .with_detail(
            "auth.v1",
            json!({ "method": "password", "failure": "bad_password", "user": w.outsider.id }),
        );
    sign_in.org = None;
    sign_in.actor = None;
    w.sink.record(sign_in);
    w.sink
        .record(DiagnosticEvent::new(&ctx, EventKind::Query, "tenancy.org.get").with_org(w.acme.id));
    w.writer.flush().await;
    for reader in [w.as_user(&w.owner), w.as_user(&w.staff)] {
        let events = w
            .triage()
            .by_request(
                &reader,
                Scope::Org(w.acme.id),
                ctx.request_id(),
                &PageRequest::first(200),
            )
            .await
            .unwrap()
            .items;
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events.iter().all(|e| e.org == Some(w.acme.id)), "{events:?}");
        let x = w
            .triage()
            .explain(&reader, Scope::Org(w.acme.id), ctx.request_id())
            .await
            .unwrap();
        assert_eq!(x.root_cause, None, "{x:?}");
        assert_eq!(x.events, 1);
    }
    let platform = w.portal.context(console()).build();
    let all = w
        .triage()
        .by_request(&platform, Scope::Platform, ctx.request_id(), &PageRequest::first(200))
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 2, "the platform sees the sign-in too: {all:?}");
}
