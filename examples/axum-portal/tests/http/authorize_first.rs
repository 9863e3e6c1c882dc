//! The generated authorization-before-validation suite (`portal_http::routes::authz_probe`)
//! on the axum router: every operation on `acme` its viewer may not do, called by the
//! viewer with malformed input, answers `403 access.denied`, never a `400`.

use portal_http::routes::authz_probe::{probe_viewer, probed_routes};

use crate::common::app;

#[tokio::test]
async fn a_viewer_is_refused_before_any_input_is_parsed_on_every_route() {
    let app = app().await;
    let coverage = probe_viewer(&app.demo, async |probe| app.probe(probe).await)
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
