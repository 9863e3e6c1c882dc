//! The customer audit log through the router: a role change is recorded with its actor,
//! target and request context; filters and paging; who may read it; the JSON-lines and
//! CSV exports, streamed a page a chunk.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::common::{Answer, TestApp, app};

/// A user agent a spreadsheet would run as a formula, with a comma and quotes in it.
const FORMULA_AGENT: &str = "=HYPERLINK(\"http://evil.example\", \"click\")";

/// Gives `grace` (or takes from her) the `viewer` role as `token`, from the client
/// 203.0.113.9 with `agent` and the client request id `client_id`.
async fn toggle_viewer(app: &TestApp, token: &str, give: bool, agent: &str, client_id: &str) -> Answer {
    let (acme, grace) = (app.acme(), app.user_id("grace"));
    let builder = if give {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/orgs/{acme}/members/{grace}/roles"))
            .header(header::CONTENT_TYPE, "application/json")
    } else {
        Request::builder()
            .method(Method::DELETE)
            .uri(format!("/v1/orgs/{acme}/members/{grace}/roles/viewer"))
    };
    let body = if give {
        Body::from(json!({ "role": "viewer" }).to_string())
    } else {
        Body::empty()
    };
    let mut request = builder
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::USER_AGENT, agent)
        .header("x-request-id", client_id)
        .body(body)
        .unwrap();
    let peer: SocketAddr = "203.0.113.9:40000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let answer = app.send(request).await;
    assert!(answer.status.is_success(), "{answer:?}");
    answer
}

/// Every event of acme that `query` selects, read page by page with `limit`.
async fn all_pages(app: &TestApp, token: &str, query: &str, limit: u32) -> Vec<Value> {
    let acme = app.acme();
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut uri = format!("/v1/orgs/{acme}/audit-events?limit={limit}&{query}");
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(token, &uri).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let got = page.body["items"].as_array().unwrap();
        assert!(got.len() <= limit as usize);
        items.extend(got.iter().cloned());
        match page.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

#[tokio::test]
async fn a_role_change_is_logged_with_its_actor_targets_and_request() {
    let app = app().await;
    let (owner, admin) = (app.token("ada").await, app.token("alan").await);
    let (acme, grace, ada) = (app.acme(), app.user_id("grace"), app.user_id("ada"));
    let changed = toggle_viewer(&app, &owner, true, "audit-test/1.0", "client-42").await;
    let server_id = changed.header("x-request-id").unwrap().to_owned();

    let page = app
        .get(
            &admin,
            &format!("/v1/orgs/{acme}/audit-events?action=member.roles_changed&target={grace}"),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page:?}");
    let event = &items[0];
    assert_eq!(event["action"], "member.roles_changed");
    assert_eq!(event["version"], 1);
    assert_eq!(
        event["actor"],
        json!({ "id": ada, "type": "user", "name": "Ada Lovelace" })
    );
    assert_eq!(event["targets"], json!([{ "type": "user", "id": grace }]));
    assert_eq!(
        event["context"],
        json!({
            "request_id": server_id,
            "client_request_id": "client-42",
            "ip": "203.0.113.9",
            "user_agent": "audit-test/1.0",
        })
    );
    assert_eq!(
        event["metadata"],
        json!({ "before": ["member"], "after": ["member", "viewer"] })
    );
    // The customer shape: these fields and no others (no org, no policy internals).
    let mut keys: Vec<&str> = event.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "actor",
            "context",
            "id",
            "metadata",
            "occurred_at",
            "targets",
            "version"
        ]
    );

    // Filters: by actor, and by a time window that excludes the change.
    let by_ada = all_pages(&app, &admin, &format!("actor={ada}&action=member.roles_changed"), 100).await;
    assert_eq!(by_ada.len(), 1);
    let linus = app.user_id("linus");
    let by_linus = all_pages(&app, &admin, &format!("actor={linus}&action=member.roles_changed"), 100).await;
    assert!(by_linus.is_empty(), "{by_linus:?}");
    let linus_all = all_pages(&app, &admin, &format!("actor={linus}"), 100).await;
    assert!(linus_all.iter().all(|e| e["actor"]["id"] == linus.as_str()) && !linus_all.is_empty());
    let at = event["occurred_at"].as_str().unwrap();
    let later = all_pages(&app, &admin, "from=2999-01-01T00:00:00Z", 100).await;
    assert!(later.is_empty());
    let until_then = all_pages(&app, &admin, &format!("until={}", at.replace('+', "%2B")), 100).await;
    assert!(until_then.iter().all(|e| e["id"] != event["id"]), "until is exclusive");
    let from_then = all_pages(&app, &admin, &format!("from={}", at.replace('+', "%2B")), 100).await;
    assert!(from_then.iter().any(|e| e["id"] == event["id"]), "from is inclusive");
}

#[tokio::test]
async fn pages_cover_the_log_once_in_order_and_bad_input_is_named() {
    let app = app().await;
    let (owner, admin) = (app.token("ada").await, app.token("alan").await);
    for round in 0..3 {
        toggle_viewer(&app, &owner, true, "pager", &format!("give-{round}")).await;
        toggle_viewer(&app, &owner, false, "pager", &format!("take-{round}")).await;
    }
    let whole = all_pages(&app, &admin, "", 100).await;
    let paged = all_pages(&app, &admin, "", 2).await;
    assert!(
        whole.len() >= 6,
        "the seed's invitations and six changes: {}",
        whole.len()
    );
    assert_eq!(paged, whole, "pages of 2 read the same events as one page");
    let ids: Vec<&str> = whole.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "oldest first, each once");

    let acme = app.acme();
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("action=Member.Removed", "action"),
        ("actor=", "actor"),
        ("from=yesterday", "from"),
        ("from=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
    ] {
        let answer = app.get(&admin, &format!("/v1/orgs/{acme}/audit-events?{query}")).await;
        answer.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
        assert_eq!(answer.body["param"], param, "{query}: {answer:?}");
    }
}

#[tokio::test]
async fn only_owners_and_admins_read_it_and_another_org_is_not_found() {
    let app = app().await;
    let acme = app.acme();
    // Five sign-ins: the test server's limit per source.
    let mut tokens = Vec::new();
    for local in ["linus", "grace", "hedy", "ada", "alan"] {
        tokens.push((local, app.token(local).await));
    }
    let token = |local: &str| tokens.iter().find(|(l, _)| *l == local).unwrap().1.clone();
    for uri in [
        format!("/v1/orgs/{acme}/audit-events"),
        format!("/v1/orgs/{acme}/audit-events/export?format=csv"),
    ] {
        for local in ["linus", "grace"] {
            app.get(&token(local), &uri)
                .await
                .assert_problem(StatusCode::FORBIDDEN, "access.denied");
        }
        let outsider = token("hedy");
        app.get(&outsider, &uri)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "org.not_found");
        // Authorization comes first: a bad query changes neither answer.
        app.get(&outsider, &format!("{uri}&limit=0").replace("events&", "events?"))
            .await
            .assert_problem(StatusCode::NOT_FOUND, "org.not_found");
        for local in ["ada", "alan"] {
            let answer = app.get(&token(local), &uri).await;
            assert_eq!(answer.status, StatusCode::OK, "{local}: {answer:?}");
        }
    }
}

/// The export's status, content type, the number of body frames, and the body.
async fn export(app: &TestApp, token: &str, query: &str) -> (StatusCode, String, usize, String) {
    let request = Request::builder()
        .uri(format!("/v1/orgs/{}/audit-events/export?{query}", app.acme()))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
    let mut body = response.into_body();
    let (mut frames, mut bytes) = (0, Vec::new());
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames += 1;
            bytes.extend_from_slice(&data);
        }
    }
    (status, content_type, frames, String::from_utf8(bytes).unwrap())
}

#[tokio::test]
async fn exports_stream_every_event_as_json_lines_and_guarded_csv() {
    let app = app().await;
    let (owner, admin) = (app.token("ada").await, app.token("alan").await);
    // More than one page of 100, so the export reads and sends several.
    for round in 0..55 {
        toggle_viewer(&app, &owner, true, FORMULA_AGENT, &format!("give-{round}")).await;
        toggle_viewer(&app, &owner, false, FORMULA_AGENT, &format!("take-{round}")).await;
    }
    let whole = all_pages(&app, &admin, "", 100).await;
    assert!(whole.len() > 110);

    let (status, content_type, frames, body) = export(&app, &admin, "format=jsonl").await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "application/x-ndjson")
    );
    assert!(frames >= 2, "a page a chunk: {frames} frame(s)");
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, whole, "the export is the listing, line by line");

    let (status, content_type, frames, body) = export(&app, &admin, "format=csv&action=member.roles_changed").await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "text/csv; charset=utf-8")
    );
    assert!(frames >= 2, "a page a chunk: {frames} frame(s)");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(headers[..4], ["id", "occurred_at", "action", "version"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let changes: Vec<&Value> = whole.iter().filter(|e| e["action"] == "member.roles_changed").collect();
    assert_eq!(rows.len(), changes.len());
    let agent_column = headers.iter().position(|h| h == "user_agent").unwrap();
    let metadata_column = headers.iter().position(|h| h == "metadata").unwrap();
    for (row, event) in rows.iter().zip(changes) {
        assert_eq!(&row[0], event["id"].as_str().unwrap());
        // The formula is defused with a leading `'`; its comma and quotes survive quoting.
        assert_eq!(&row[agent_column], format!("'{FORMULA_AGENT}"));
        let metadata: Value = serde_json::from_str(&row[metadata_column]).unwrap();
        assert_eq!(metadata, event["metadata"]);
    }
    assert!(body.contains("\"'=HYPERLINK(\"\"http://evil.example\"\", \"\"click\"\")\""));

    let (status, _, _, _) = export(&app, &admin, "format=xml").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The org's retention: `null` by default; the owner sets it (7 to 3650 days, or `null`),
/// with its audit event; an admin reads it but may not set it; a viewer may not read it;
/// another org's owner finds no org. A bad `days` is named.
#[tokio::test]
async fn the_owner_sets_the_retention_and_others_are_refused() {
    let app = app().await;
    let owner = app.token("ada").await;
    let admin = app.token("alan").await;
    let viewer = app.token("linus").await;
    let acme = app.acme();
    let uri = format!("/v1/orgs/{acme}/audit-retention");
    let read = app.get(&owner, &uri).await;
    assert_eq!(
        (read.status, &read.body),
        (StatusCode::OK, &json!({ "days": null })),
        "{read:?}"
    );

    let set = app.call(&owner, Method::PUT, &uri, Some(json!({ "days": 30 }))).await;
    assert_eq!(
        (set.status, &set.body),
        (StatusCode::OK, &json!({ "days": 30 })),
        "{set:?}"
    );
    let read = app.get(&admin, &uri).await;
    assert_eq!(read.body, json!({ "days": 30 }), "{read:?}");
    for days in [json!(6), json!(3651), json!(0), json!(-1), json!("30")] {
        let answer = app.call(&owner, Method::PUT, &uri, Some(json!({ "days": days }))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{days}: {answer:?}");
        if days.is_u64() {
            answer.assert_problem(StatusCode::BAD_REQUEST, "validation.invalid_field");
            assert_eq!(answer.body["param"], "days", "{answer:?}");
        }
    }
    app.call(&admin, Method::PUT, &uri, Some(json!({ "days": 7 })))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    app.get(&viewer, &uri)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "access.denied");
    let hedy = app.token("hedy").await;
    app.call(&hedy, Method::PUT, &uri, Some(json!({ "days": 7 })))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "org.not_found");
    let unset = app.call(&owner, Method::PUT, &uri, Some(json!({ "days": null }))).await;
    assert_eq!(unset.body, json!({ "days": null }), "{unset:?}");

    let log = app
        .get(
            &owner,
            &format!("/v1/orgs/{acme}/audit-events?action=audit.retention_changed"),
        )
        .await;
    let metadata: Vec<&Value> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["metadata"])
        .collect();
    assert_eq!(
        metadata,
        [
            &json!({ "before": null, "after": 30 }),
            &json!({ "before": 30, "after": null })
        ],
        "{log:?}"
    );
}
