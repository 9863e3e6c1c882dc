//! The checks that keep the route table, the OpenAPI document and the servers together:
//! the table against a document ([`check_against_document`]), and a server against the
//! table ([`check_served`]), which each server's tests run on `docs/openapi.json` and its
//! real router.

use std::collections::BTreeSet;

use http::Method;

use super::{Route, routes};

/// What an OpenAPI document (`docs/openapi.json`, or
/// [`openapi_json`](crate::openapi::openapi_json) parsed) lists: `(method, path,
/// operationId)` of every operation.
pub fn operations_in(doc: &serde_json::Value) -> Vec<(Method, String, String)> {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            let known = [
                Method::GET,
                Method::PUT,
                Method::POST,
                Method::DELETE,
                Method::OPTIONS,
                Method::HEAD,
                Method::PATCH,
                Method::TRACE,
            ];
            if known.contains(&method) {
                let id = operation["operationId"].as_str().unwrap_or_default().to_owned();
                operations.push((method, path.clone(), id));
            }
        }
    }
    operations
}

/// Compares [`routes`] with an OpenAPI document: every operation it lists must be a route
/// (same method, path and operation id), and every route but `GET /openapi.json` and the
/// SCIM routes (see [`Route::is_documented`](super::Route::is_documented)) one of its
/// operations. The servers' tests call it on `docs/openapi.json`.
///
/// # Errors
///
/// The operations on one side only, one a line.
pub fn check_against_document(doc: &serde_json::Value) -> Result<usize, String> {
    let documented: BTreeSet<(String, String, String)> = operations_in(doc)
        .into_iter()
        .map(|(method, path, id)| (method.to_string(), path, id))
        .collect();
    let served: BTreeSet<(String, String, String)> = routes()
        .iter()
        .filter(|r| r.is_documented())
        .map(|r| (r.method.to_string(), r.path.to_owned(), r.operation_id.to_owned()))
        .collect();
    let mut missing: Vec<String> = documented
        .difference(&served)
        .map(|(m, p, id)| format!("documented, not served: {m} {p} ({id})"))
        .collect();
    missing.extend(
        served
            .difference(&documented)
            .map(|(m, p, id)| format!("served, not documented: {m} {p} ({id})")),
    );
    if missing.is_empty() {
        Ok(served.len())
    } else {
        Err(missing.join("\n"))
    }
}

/// Calls every route of [`routes`] through a server, unauthenticated, each path parameter
/// `{name}` set to `sample-{name}`: `call` sends `route.method` to the URI and answers the
/// status and the problem's `code`, if any. Every route must answer, whatever it answers
/// (`401` from a handler that authenticates, `415` from sign-in without a body, `200` from
/// the document), but never the router's `404 route.not_found` or `405
/// request.method_not_allowed`. Answers the number of routes called and how many
/// answered `401`.
///
/// # Errors
///
/// The routes the server does not serve, one a line.
pub async fn check_served(
    mut call: impl AsyncFnMut(&'static Route, String) -> (u16, Option<String>),
) -> Result<(usize, usize), String> {
    let mut unserved = Vec::new();
    let mut unauthorized = 0;
    for route in routes() {
        let uri = route.uri(|name| format!("sample-{name}"));
        let (status, code) = call(route, uri.clone()).await;
        let refused_by_router = matches!(code.as_deref(), Some("route.not_found" | "request.method_not_allowed"));
        if refused_by_router || status == 405 {
            unserved.push(format!("{route:?} as {uri}: {status} {code:?}"));
        }
        unauthorized += usize::from(status == 401);
    }
    if unserved.is_empty() {
        Ok((routes().len(), unauthorized))
    } else {
        Err(unserved.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[tokio::test]
    async fn a_route_the_router_refuses_is_named() {
        let (served, unauthorized) = check_served(async |_, _| (401, Some("auth.unauthenticated".to_owned())))
            .await
            .unwrap();
        assert_eq!((served, unauthorized), (routes().len(), routes().len()));
        let err = check_served(async |route, uri| match route.operation_id {
            "me" => (404, Some("route.not_found".to_owned())),
            "revoke_session" => {
                assert_eq!(uri, "/v1/sessions/sample-session_id");
                (405, Some("request.method_not_allowed".to_owned()))
            }
            _ => (404, Some("org.not_found".to_owned())),
        })
        .await
        .unwrap_err();
        assert_eq!(err.lines().count(), 2, "{err}");
        assert!(
            err.contains("GET /v1/auth/me (me)") && err.contains("DELETE /v1/sessions/{session_id}"),
            "{err}"
        );
    }
}
