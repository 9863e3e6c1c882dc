//! The generated authorization-before-validation suite (issue 23), shared by both
//! servers' tests: every operation of the route table on an org the caller can reach,
//! called as that org's viewer with malformed input everywhere (path values, query values,
//! a body of wrong shapes, a malformed `If-Match`). An operation the viewer may not do
//! must answer `403 access.denied`: the edge authorizes before it parses or validates, so
//! a caller without the permission learns nothing of what the input should be.
//!
//! The operations a viewer may do are listed in [`VIEWER_MAY`] (reads); every other
//! operation with an org in its path is probed, so a new operation is probed without
//! editing a test.

use http::Method;
use serde_json::json;

use super::tenancy_probe::{ProbeAnswer, ProbeRequest};
use super::{Route, routes};
use crate::seed::{DEMO_PASSWORD, DemoData};

/// The operations on an org that its viewer may do: they are not probed (their answer to
/// malformed input is a `400`, which the input tests hold). Any member may delegate their
/// own vote, a viewer too.
pub const VIEWER_MAY: &[&str] = &[
    "get_org",
    "list_members",
    "list_workflows",
    "get_workflow",
    "workflow_history",
    "delegate_votes",
    "list_workflow_definitions",
    "get_workflow_definition",
    "get_mfa_policy",
    "get_api_version",
];

/// Operations known to validate before they authorize, not yet fixed: probed and expected
/// to fail; the suite fails when one passes, so the entry is deleted with the fix. Empty:
/// the workflow steps, the last ones, answer a validation error only to a caller who may
/// take some step in the org.
pub const KNOWN_VALIDATING_FIRST: &[&str] = &[];

/// The malformed value of every path parameter but the org (not an id, not a name).
pub const MALFORMED_SEGMENT: &str = "%21not%20valid";

/// The malformed query string sent to every operation.
pub const MALFORMED_QUERY: &str = "limit=-1&cursor=%21&from=yesterday&until=never&state=%21&definition=%21&user=x&principal=x&action=%21&actor=&target=&format=%21";

/// What [`probe_viewer`] covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerCoverage {
    /// The operations probed.
    pub operations: usize,
    /// The operations of [`KNOWN_VALIDATING_FIRST`] that failed as expected.
    pub known: usize,
}

/// The routes probed: those with `{org_id}` in their path that a viewer may not call.
pub fn probed_routes() -> impl Iterator<Item = &'static Route> {
    routes()
        .iter()
        .filter(|r| r.params().any(|p| p == "org_id") && !VIEWER_MAY.contains(&r.operation_id))
}

/// Signs in as the demo org `acme`'s viewer (`linus`) through the server (`call`) and
/// sends every [`probed_routes`] operation in `acme` with malformed input: each must
/// answer `403 access.denied`.
///
/// # Errors
///
/// The set-up step that failed, or every operation that answered otherwise, one a line.
pub async fn probe_viewer(
    demo: &DemoData,
    mut call: impl AsyncFnMut(ProbeRequest) -> ProbeAnswer,
) -> Result<ViewerCoverage, String> {
    let viewer = demo.user("linus").ok_or("set-up: no demo user linus")?;
    let signed_in = call(ProbeRequest {
        method: Method::POST,
        uri: "/v1/auth/sign-in".to_owned(),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: Some(json!({ "email": viewer.email, "password": DEMO_PASSWORD }).to_string()),
    })
    .await;
    let bearer = signed_in.body["session_token"]
        .as_str()
        .ok_or_else(|| {
            format!(
                "set-up: signing in as linus answered {} {}",
                signed_in.status, signed_in.body
            )
        })?
        .to_owned();
    let org = demo.acme.to_string();
    // Every field of every body, each of a wrong shape or value.
    let body = json!({
        "slug": "!", "name": "", "metadata": [], "email": "not an email", "roles": ["!!"],
        "role": "!!", "description": 7, "permissions": [{ "object": "", "action": "" }],
        "parents": "x", "scopes": ["nonsense"], "expires_at": "yesterday", "definition": "!",
        "payload": [], "input": [], "assignee": "nobody", "decision": "maybe",
        "comment": 7, "delegate": "nobody", "until": "never", "since": 7, "url": "ftp://x",
        "event_types": ["!!"], "enabled": "maybe", "days": -1, "unknown_field": true,
    })
    .to_string();
    let mut failures = Vec::new();
    let mut operations = 0;
    let mut known = 0;
    for route in probed_routes() {
        operations += 1;
        let path = route.uri(|name| {
            if name == "org_id" {
                org.clone()
            } else {
                MALFORMED_SEGMENT.to_owned()
            }
        });
        let mut headers = vec![
            ("authorization".to_owned(), format!("Bearer {bearer}")),
            ("if-match".to_owned(), "not a version".to_owned()),
        ];
        let takes_body = matches!(route.method, Method::POST | Method::PUT | Method::PATCH);
        if takes_body {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        let request = ProbeRequest {
            method: route.method.clone(),
            uri: format!("{path}?{MALFORMED_QUERY}"),
            headers,
            body: takes_body.then(|| body.clone()),
        };
        let answer = call(request).await;
        let code = answer.body.get("code").and_then(|c| c.as_str()).unwrap_or_default();
        let refused = (answer.status, code) == (403, "access.denied");
        let listed = KNOWN_VALIDATING_FIRST.contains(&route.operation_id);
        if refused && listed {
            failures.push(format!(
                "{route:?} now answers 403 access.denied: delete it from KNOWN_VALIDATING_FIRST"
            ));
        } else if !refused && listed {
            known += 1;
        } else if !refused {
            failures.push(format!(
                "{route:?} as acme's viewer with malformed input: {} {code} ({})",
                answer.status,
                answer.body.get("detail").cloned().unwrap_or_default()
            ));
        }
    }
    if failures.is_empty() {
        Ok(ViewerCoverage { operations, known })
    } else {
        Err(format!(
            "{} of {operations} operations a viewer may not do did not answer 403 access.denied:\n{}",
            failures.len(),
            failures.join("\n")
        ))
    }
}
