//! Store calls per page: every store of the real server (SQLite, and Postgres when
//! `PORTAL_TEST_POSTGRES_URL` is set) is wrapped in `portal_adapters::counted::Counted`,
//! a decorator that counts each call by port and method and passes it on; each screen
//! with rows (the three lists, members, a case page with its history and assignees, the
//! webhook endpoints) is
//! rendered over an org holding N rows and again over 5N, and its calls, method by
//! method, must be the same. A page that read the stores once per row fails here.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use portal_adapters::counted::StoreCalls;
use portal_core::context::ServiceName;
use portal_core::ids::{OrgId, UserId, WorkflowId};
use portal_core::tenancy::{NewOrg, NewUser, RoleName, RoleSet};
use portal_core::webhooks::NewEndpoint;
use portal_core::workflow::NewInstance;
use portal_core::{Principal, RequestContext};
use portal_http::seed::seed_demo;
use portal_http::test_schema::TestSchema;
use portal_http::{Api, connect};
use serde_json::json;

use crate::common::{Client, TestPortal, config};

/// Rows per screen in the small org; the large one has five times as many (both fit on
/// one page of a list, 20 rows).
const N: usize = 3;

/// Calls made by the server's background tasks, not by a page: the journal writer's
/// batched appends, the hourly pruning of failed sign-ins and expired idempotency records.
const BACKGROUND: [&str; 3] = ["journal.append", "login_attempts.prune", "idempotency.purge_expired"];

/// The org the rows go in, and what has been added so far.
struct Rows {
    org: OrgId,
    owner: UserId,
    /// The case whose page is measured: its history grows by one entry per row.
    probe: WorkflowId,
    members: Vec<UserId>,
    instances: usize,
    history: usize,
    endpoints: usize,
}

fn as_user(api: &Api, user: UserId) -> RequestContext {
    api.portal().context(Principal::User(user)).build()
}

fn as_service(api: &Api) -> RequestContext {
    let name = ServiceName::new("store-calls-test").unwrap();
    api.portal().context(Principal::Service(name)).build()
}

/// A fresh org owned by ada (acme's owner, so she has two orgs), with its probe case.
async fn rows_org(api: &Api, ada: UserId) -> Rows {
    let org = api
        .portal()
        .tenancy()
        .create_org(
            &as_user(api, ada),
            NewOrg {
                slug: "rows".to_owned(),
                name: "Rows Ltd".to_owned(),
                ..NewOrg::default()
            },
        )
        .await
        .unwrap();
    let case = NewInstance::new("support_case", &json!({ "subject": "the probe" })).unwrap();
    let probe = api
        .portal()
        .workflows()
        .unwrap()
        .create(&as_user(api, ada), org.id, case)
        .await
        .unwrap();
    Rows {
        org: org.id,
        owner: ada,
        probe: probe.id,
        members: Vec::new(),
        instances: 0,
        history: 1,
        endpoints: 0,
    }
}

/// Adds rows until every screen shows `to`: members, cases, returns and quotes, and
/// history entries of the probe case (assignments, to a member each time).
async fn grow(api: &Api, rows: &mut Rows, to: usize) {
    let owner = as_user(api, rows.owner);
    let tenancy = api.portal().tenancy();
    while rows.members.len() < to {
        let email = format!("member{}@rows.example", rows.members.len());
        let user = tenancy
            .create_user(
                &as_service(api),
                NewUser {
                    email: email.clone(),
                    display_name: format!("Member {}", rows.members.len()),
                },
            )
            .await
            .unwrap();
        let (_, token) = tenancy
            .invite(&owner, rows.org, &email, RoleSet::one(RoleName::member()))
            .await
            .unwrap();
        tenancy.accept_invitation(&as_user(api, user.id), &token).await.unwrap();
        rows.members.push(user.id);
    }
    let workflows = api.portal().workflows().unwrap();
    while rows.instances < to {
        let i = rows.instances;
        for (definition, payload) in [
            ("support_case", json!({ "subject": format!("case {i}") })),
            (
                "return_request",
                json!({ "order_id": format!("SO-{i}"), "amount_cents": 100 + i, "reason": "damaged" }),
            ),
            (
                "quote_approval",
                json!({ "customer": format!("customer {i}"), "amount_cents": 1000 + i }),
            ),
        ] {
            let new = NewInstance::new(definition, &payload).unwrap();
            workflows.create(&owner, rows.org, new).await.unwrap();
        }
        rows.instances += 1;
    }
    while rows.history < to {
        let probe = workflows.get(&owner, rows.org, rows.probe).await.unwrap();
        let assignee = rows.members[rows.history % rows.members.len()];
        workflows
            .assign(&owner, rows.org, rows.probe, probe.version, Some(assignee))
            .await
            .unwrap();
        rows.history += 1;
    }
    let webhooks = api.portal().webhooks().unwrap();
    while rows.endpoints < to {
        let endpoint = NewEndpoint {
            url: format!("https://hooks.rows.example/{}", rows.endpoints),
            description: String::new(),
            event_types: vec!["member.added".to_owned()],
            enabled: true,
        };
        webhooks.create(&owner, rows.org, &endpoint).await.unwrap();
        rows.endpoints += 1;
    }
}

/// The store calls of one `GET path` (after one request to warm what a first request
/// does once), by method, without the background tasks'; and the page's body.
async fn page_calls(client: &mut Client, calls: &StoreCalls, path: &str) -> (BTreeMap<&'static str, u64>, String) {
    let warm = client.get(path).await;
    assert_eq!(warm.status, StatusCode::OK, "{path}: {}", warm.body);
    calls.reset();
    let page = client.get(path).await;
    assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    let mut tally = calls.snapshot();
    for method in BACKGROUND {
        tally.remove(method);
    }
    (tally, page.body)
}

/// How many rows a screen shows in its body.
type RowCount = fn(&str) -> usize;

/// The screens with rows, and how many rows each shows in `body` (so the test knows the
/// rows it grew are on the page).
fn screens(rows: &Rows) -> Vec<(String, RowCount)> {
    let links = |body: &str| body.matches("<td><a href=\"/workflows/wf_").count();
    vec![
        ("/cases".to_owned(), links),
        ("/returns".to_owned(), links),
        ("/quotes".to_owned(), links),
        ("/members".to_owned(), |body: &str| {
            body.matches("@rows.example</td>").count()
        }),
        // History rows (each names its request) and the assign form's members.
        (format!("/workflows/{}", rows.probe), |body: &str| {
            body.matches("<td><code>req_")
                .count()
                .min(body.matches("@rows.example&#62;</option>").count())
        }),
        ("/webhooks".to_owned(), |body: &str| {
            body.matches("<td><code>https://hooks.rows.example/").count()
        }),
    ]
}

/// Renders every screen with N rows, then with 5N, and holds their store calls equal.
async fn store_calls_do_not_grow_with_rows(database_url: &str) {
    let calls = StoreCalls::new();
    let mut config = config(database_url, false);
    config.store_calls = Some(calls.clone());
    let (api, background) = connect(&config).await.expect("connect");
    let demo = seed_demo(&api).await.expect("seed");
    let portal = TestPortal {
        app: example_axum_portal::app(api.clone()),
        background,
        demo,
    };
    let ada = portal.demo.user("ada").unwrap().id;
    let mut rows = rows_org(&api, ada).await;
    let mut client = Client::new(&portal);
    client.sign_in(&portal, "ada").await;
    let choose = client.get("/").await;
    let switched = client
        .post(
            "/switch-org",
            &[("csrf", &choose.csrf()), ("org_id", &rows.org.to_string())],
        )
        .await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER, "{switched:?}");

    let mut measured = Vec::new();
    for size in [N, 5 * N] {
        grow(&api, &mut rows, size).await;
        let mut at_size = Vec::new();
        for (path, shown) in screens(&rows) {
            let (tally, body) = page_calls(&mut client, &calls, &path).await;
            assert!(shown(&body) >= size, "{path} shows {} rows, not {size}", shown(&body));
            assert!(!tally.is_empty(), "{path}: no store call was counted");
            at_size.push((path, tally));
        }
        measured.push(at_size);
    }
    for ((path, small), (_, large)) in measured[0].iter().zip(&measured[1]) {
        assert_eq!(
            small,
            large,
            "{path}: the store calls grew with the rows ({N} rows, then {})",
            5 * N
        );
        eprintln!(
            "{path}: {} store calls with {N} and {} rows: {small:?}",
            small.values().sum::<u64>(),
            5 * N
        );
    }
    portal.background.shutdown().await;
}

/// Every screen with rows reads the stores the same number of times with N and 5N
/// rows, on SQLite.
#[tokio::test]
async fn store_calls_per_page_do_not_grow_with_rows_on_sqlite() {
    store_calls_do_not_grow_with_rows("sqlite::memory:").await;
}

/// The same on Postgres (skipped, saying so, when `PORTAL_TEST_POSTGRES_URL` is unset).
#[tokio::test]
async fn store_calls_per_page_do_not_grow_with_rows_on_postgres() {
    let Some(schema) = TestSchema::from_env().await.expect("a schema of its own on Postgres") else {
        return;
    };
    store_calls_do_not_grow_with_rows(schema.url()).await;
    schema.drop().await.expect("drop the schema");
}
