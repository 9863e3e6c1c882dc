//! The generated authorization-before-validation suite (`portal_http::routes::authz_probe`)
//! on the axum router: every operation on `acme` its viewer may not do, called by the
//! viewer with malformed input, answers `403 access.denied`, never a `400`.

use axum::body::Body;
use axum::http::Request;
use portal_http::routes::authz_probe::{probe_viewer, probed_routes};
use portal_http::routes::tenancy_probe::{ProbeAnswer, ProbeRequest};

use crate::common::{TestApp, app};

async fn send(app: &TestApp, probe: ProbeRequest) -> ProbeAnswer {
    let mut builder = Request::builder().method(probe.method).uri(probe.uri);
    for (name, value) in probe.headers {
        builder = builder.header(name, value);
    }
    let body = probe.body.map_or_else(Body::empty, Body::from);
    let answer = app.send(builder.body(body).unwrap()).await;
    ProbeAnswer {
        status: answer.status.as_u16(),
        request_id: answer.header("x-request-id").map(str::to_owned),
        body: answer.body,
    }
}

#[tokio::test]
async fn a_viewer_is_refused_before_any_input_is_parsed_on_every_route() {
    let app = app().await;
    let coverage = probe_viewer(&app.demo, async |probe| send(&app, probe).await)
        .await
        .unwrap_or_else(|failures| panic!("{failures}"));
    eprintln!(
        "authorize-first suite (axum): {} operations ({} known to validate first)",
        coverage.operations, coverage.known
    );
    assert_eq!(coverage.operations, probed_routes().count());
    assert!(coverage.operations >= 20, "{coverage:?}");
    app.background.shutdown().await;
}
