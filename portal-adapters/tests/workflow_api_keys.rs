//! An API key on every workflow path: judged by its scopes alone, on the read paths
//! (list, get, history, available transitions, `available_for`) exactly as on the write
//! paths, and explained as a key when it is refused.
//!
//! Every test runs on the default `RoleTableAuthorizer` and on a `CasbinAuthorizer` loaded
//! from `builtin_policy`: a key's decision must not depend on the authorizer, which never
//! sees it (the gate decides keys by their scopes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::sync::Arc;

use portal_adapters::memory::{InMemoryPolicyStore, InMemoryTenancyStore, InMemoryWorkflowStore};
use portal_adapters::observability::MemoryJournal;
use portal_auth::CasbinAuthorizer;
use portal_auth::casbin_authz::builtin_policy;
use portal_core::access::{PolicyStore, Scope};
use portal_core::context::{Principal, ServiceName};
use portal_core::ids::{ApiKeyId, OrgId, UserId};
use portal_core::store::PageRequest;
use portal_core::tenancy::{NewOrg, NewUser};
use portal_core::triage::{Evidence, Scope as TriageScope};
use portal_core::workflow::catalog::{self, SupportCase};
use portal_core::workflow::{Instance, NewInstance, WorkflowFilter};
use portal_core::{ErrorCode, Portal, PortalError, RequestContext};

#[derive(Debug, Clone, Copy)]
enum Authz {
    RoleTable,
    Casbin,
}

const BOTH: [Authz; 2] = [Authz::RoleTable, Authz::Casbin];

/// The org `acme` with an owner and one open support case; `globex`, another org.
struct World {
    portal: Portal,
    acme: OrgId,
    globex: OrgId,
    owner: UserId,
    case: Instance,
}

impl World {
    async fn new(authz: Authz) -> Self {
        let journal = Arc::new(MemoryJournal::default());
        let mut builder = Portal::builder()
            .tenancy_store(Arc::new(InMemoryTenancyStore::new()))
            .workflow_store(Arc::new(InMemoryWorkflowStore::new()))
            .workflow_definitions(catalog::all().unwrap())
            .diagnostics(journal.clone())
            .journal(journal);
        if let Authz::Casbin = authz {
            let store = InMemoryPolicyStore::new();
            store.apply(&builtin_policy(), &[]).await.unwrap();
            let authorizer = Arc::new(CasbinAuthorizer::from_store(&store).await.unwrap());
            builder = builder.policy(Arc::new(store), authorizer);
        }
        let portal = builder.build().unwrap();
        let signup = portal.context(service()).build();
        let mut orgs = Vec::new();
        let mut owner = None;
        for slug in ["acme", "globex"] {
            let new = NewUser {
                email: format!("owner@{slug}.example"),
                display_name: format!("{slug}'s owner"),
            };
            let user = portal.tenancy().create_user(&signup, new).await.unwrap();
            let ctx = portal.context(Principal::User(user.id)).build();
            let new = NewOrg {
                slug: slug.into(),
                name: slug.into(),
                ..NewOrg::default()
            };
            orgs.push(portal.tenancy().create_org(&ctx, new).await.unwrap().id);
            owner.get_or_insert(user.id);
        }
        let [acme, globex] = orgs.try_into().unwrap();
        let owner = owner.unwrap();
        let as_owner = portal.context(Principal::User(owner)).build();
        let case = portal
            .workflows()
            .unwrap()
            .create(&as_owner, acme, case())
            .await
            .unwrap();
        Self {
            portal,
            acme,
            globex,
            owner,
            case,
        }
    }

    /// A request by a key of `org` holding `scopes`.
    fn key(&self, org: OrgId, scopes: &[&str]) -> RequestContext {
        let ctx = self.portal.context(service()).build();
        let key = ApiKeyId::generate(self.portal.ids(), ctx.now());
        let scopes: Vec<Scope> = scopes.iter().map(|s| s.parse().unwrap()).collect();
        self.portal
            .context(Principal::ApiKey { key, org })
            .org(org)
            .with(|b| b.scopes(Arc::from(scopes)))
            .build()
    }
}

fn service() -> Principal {
    Principal::Service(ServiceName::new("test").unwrap())
}

fn case() -> NewInstance {
    NewInstance::new(
        "support_case",
        &SupportCase {
            subject: "the printer is on fire".into(),
            customer_reference: None,
        },
    )
    .unwrap()
}

fn code<T: std::fmt::Debug>(result: Result<T, PortalError>) -> ErrorCode {
    result.expect_err("expected a refusal").code()
}

#[tokio::test]
async fn a_key_with_a_read_scope_lists_gets_and_reads_history() {
    for authz in BOTH {
        let w = World::new(authz).await;
        let wf = w.portal.workflows().unwrap();
        let ctx = w.key(w.acme, &["cases/* read"]);
        let page = wf
            .list(&ctx, w.acme, &WorkflowFilter::default(), &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(
            page.items.iter().map(|i| i.id).collect::<Vec<_>>(),
            [w.case.id],
            "{authz:?}: the key lists the case it may read"
        );
        let by_name = WorkflowFilter {
            definition: Some("support_case".into()),
            ..WorkflowFilter::default()
        };
        let page = wf.list(&ctx, w.acme, &by_name, &PageRequest::default()).await.unwrap();
        assert_eq!(page.items.len(), 1, "{authz:?}");
        assert_eq!(
            wf.get(&ctx, w.acme, w.case.id).await.unwrap().id,
            w.case.id,
            "{authz:?}"
        );
        assert_eq!(
            wf.history(&ctx, w.acme, w.case.id, &PageRequest::first(200))
                .await
                .unwrap()
                .items
                .len(),
            1,
            "{authz:?}"
        );
        // It reads, but may fire nothing: no transition is offered.
        assert!(
            wf.available_transitions(&ctx, w.acme, w.case.id)
                .await
                .unwrap()
                .is_empty(),
            "{authz:?}"
        );
        assert_eq!(
            wf.available_for(&ctx, w.acme, std::slice::from_ref(&w.case))
                .await
                .unwrap(),
            [Vec::new()],
            "{authz:?}"
        );
        let checks = wf.explain_transitions(&ctx, w.acme, w.case.id).await.unwrap();
        let triage = checks.iter().find(|c| c.name == "triage").unwrap();
        assert_eq!(
            triage.refusal.as_ref().map(|r| r.code),
            Some(ErrorCode::AccessDenied),
            "{authz:?}"
        );
    }
}

#[tokio::test]
async fn a_key_without_a_read_scope_lists_nothing_and_is_refused_every_read() {
    for authz in BOTH {
        let w = World::new(authz).await;
        let wf = w.portal.workflows().unwrap();
        let ctx = w.key(w.acme, &["members read", "returns/* read"]);
        let page = wf
            .list(&ctx, w.acme, &WorkflowFilter::default(), &PageRequest::default())
            .await
            .unwrap();
        assert!(page.items.is_empty(), "{authz:?}: the case is filtered out");
        let by_name = WorkflowFilter {
            definition: Some("support_case".into()),
            ..WorkflowFilter::default()
        };
        assert_eq!(
            code(wf.list(&ctx, w.acme, &by_name, &PageRequest::default()).await),
            ErrorCode::AccessDenied,
            "{authz:?}"
        );
        assert_eq!(
            code(wf.get(&ctx, w.acme, w.case.id).await),
            ErrorCode::AccessDenied,
            "{authz:?}"
        );
        assert_eq!(
            code(wf.history(&ctx, w.acme, w.case.id, &PageRequest::first(200)).await),
            ErrorCode::AccessDenied,
            "{authz:?}"
        );
        assert_eq!(
            code(wf.available_transitions(&ctx, w.acme, w.case.id).await),
            ErrorCode::AccessDenied,
            "{authz:?}"
        );
        assert_eq!(
            code(wf.available_for(&ctx, w.acme, std::slice::from_ref(&w.case)).await),
            ErrorCode::AccessDenied,
            "{authz:?}"
        );
    }
}

#[tokio::test]
async fn a_key_is_offered_what_its_write_scope_allows_and_what_is_offered_succeeds() {
    for authz in BOTH {
        let w = World::new(authz).await;
        let wf = w.portal.workflows().unwrap();
        let ctx = w.key(w.acme, &["cases/* read", "cases/* write"]);
        let offered = wf.available_transitions(&ctx, w.acme, w.case.id).await.unwrap();
        assert_eq!(
            offered.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["triage"],
            "{authz:?}"
        );
        let fired = wf
            .transition(
                &ctx,
                w.acme,
                w.case.id,
                "triage",
                w.case.version,
                serde_json::json!({ "priority": "high" }),
            )
            .await
            .unwrap();
        assert_eq!(fired.state, "triaged", "{authz:?}");
        // The write scope alone does not let it create: that is `cases/* create`.
        assert_eq!(
            code(wf.create(&ctx, w.acme, case()).await),
            ErrorCode::AccessDenied,
            "{authz:?}"
        );
    }
}

#[tokio::test]
async fn a_key_of_another_org_finds_nothing() {
    for authz in BOTH {
        let w = World::new(authz).await;
        let wf = w.portal.workflows().unwrap();
        let ctx = w.key(w.globex, &["cases/* read", "cases/* write"]);
        let list = wf
            .list(&ctx, w.acme, &WorkflowFilter::default(), &PageRequest::default())
            .await;
        assert_eq!(code(list), ErrorCode::WorkflowNotFound, "{authz:?}");
        assert_eq!(
            code(wf.get(&ctx, w.acme, w.case.id).await),
            ErrorCode::WorkflowNotFound,
            "{authz:?}"
        );
        assert_eq!(
            code(wf.available_transitions(&ctx, w.acme, w.case.id).await),
            ErrorCode::WorkflowNotFound,
            "{authz:?}"
        );
        assert_eq!(
            code(wf.available_for(&ctx, w.acme, std::slice::from_ref(&w.case)).await),
            ErrorCode::WorkflowNotFound,
            "{authz:?}"
        );
    }
}

#[tokio::test]
async fn explaining_a_keys_denial_names_the_key_its_scopes_and_the_scope_that_would_allow_it() {
    for authz in BOTH {
        let w = World::new(authz).await;
        let ctx = w.key(w.acme, &["cases/* read"]);
        let refused = w.portal.workflows().unwrap().create(&ctx, w.acme, case()).await;
        assert_eq!(code(refused), ErrorCode::AccessDenied, "{authz:?}");
        let as_owner = w.portal.context(Principal::User(w.owner)).build();
        let explained = w
            .portal
            .triage()
            .unwrap()
            .explain(&as_owner, TriageScope::Org(w.acme), ctx.request_id())
            .await
            .unwrap();
        assert_eq!(explained.root_cause, Some(ErrorCode::AccessDenied), "{authz:?}");
        let Some(Evidence::KeyScopeDenial {
            key,
            object,
            action,
            scopes,
            would_allow,
        }) = explained.evidence.first()
        else {
            panic!("{authz:?}: expected a key's denial, got {:#?}", explained.evidence);
        };
        assert_eq!(key.as_deref(), Some(ctx.principal().to_string().as_str()));
        assert_eq!((object.as_str(), action.as_str()), ("cases/*", "create"));
        assert_eq!(scopes, &["cases/* read"]);
        assert_eq!(would_allow.as_deref(), Some("cases/* create"));
        assert!(
            explained.summary.contains("API key") && explained.summary.contains("`cases/* create`"),
            "{authz:?}: {}",
            explained.summary
        );
        assert!(
            explained.next_step.as_deref().is_some_and(|s| s.contains("key")),
            "{:?}",
            explained.next_step
        );
    }
}
