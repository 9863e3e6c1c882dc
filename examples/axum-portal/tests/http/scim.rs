//! SCIM 2.0 under `/scim/v2` through the axum router: the shared suite
//! (`portal_http::routes::scim_suite`) on SQLite here, on Postgres in `postgres.rs`.

use axum::body::Body;
use axum::http::Request;
use portal_http::routes::scim_suite::{self, ScimAnswer};
use portal_http::routes::tenancy_probe::ProbeRequest;

use crate::common::{TestApp, app};

/// Sends one request of the suite through `app`'s router.
pub(crate) async fn send(app: &TestApp, probe: ProbeRequest) -> ScimAnswer {
    let mut builder = Request::builder().method(probe.method).uri(probe.uri);
    for (name, value) in probe.headers {
        builder = builder.header(name, value);
    }
    let body = probe.body.map_or_else(Body::empty, Body::from);
    let answer = app.send(builder.body(body).unwrap()).await;
    ScimAnswer {
        status: answer.status.as_u16(),
        content_type: answer.header("content-type").map(str::to_owned),
        etag: answer.header("etag").map(str::to_owned),
        body: answer.body,
    }
}

#[tokio::test]
async fn a_directory_provisions_and_deprovisions_through_scim_on_sqlite() {
    let app = app().await;
    scim_suite::run(&app.demo, async |probe| send(&app, probe).await)
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
}
