//! The real server on a loopback port (`axum::serve`), driven over raw TCP: keep-alive
//! connections survive refused requests (or are closed with `Connection: close`), and
//! every refusal is problem+json.

use std::net::SocketAddr;

use crate::common;

#[tokio::test]
async fn keep_alive_survives_refusals_and_every_refusal_is_a_problem() {
    let app = common::app_with(|config| config.http.body_limit = 1024).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    let checked = portal_http::routes::wire::check_keep_alive(addr, 1024).await;
    server.abort();
    assert_eq!(checked, Ok(6));
}
