//! `Idempotency-Key` on every operation that changes something, as a property of the route
//! table: each [`Route`] says what it does with a key ([`Idempotency`]), and
//! [`Route::call`](crate::routes::Route::call) applies it before the handler runs, so a
//! new route cannot ignore a key by forgetting it.
//!
//! - [`Idempotency::Replay`]: Stripe's semantics, kept here for every replica. The same
//!   request under a key replays the first answer (`Idempotent-Replayed: true`); another
//!   request under it is `422 idempotency.key_reused`; the same key while the first request
//!   is being worked on is `409 idempotency.in_flight` (retryable).
//! - [`Idempotency::ShowsSecret`]: the same, but the answer showed a secret once (an API
//!   key's `key`, an invitation's `token`) and is never stored: a retry answers
//!   `409 idempotency.secret_not_replayed` (the thing was created once; list to find it).
//! - [`Idempotency::Service`]: the service keys the request itself, in its own store and
//!   transaction (the workflow operations: the key reaches the service in the
//!   [`RequestContext`](portal_core::RequestContext)).
//! - [`Idempotency::Refused`]: the operation cannot honor a key (it is anonymous, or its
//!   answer is a new session replacing the caller's), so a key is refused with
//!   `400 idempotency.unsupported`, never ignored.
//!
//! A key is scoped to (the path's org, the principal, the operation): another principal's
//! key never finds this one's record, so a caller of another org cannot replay (or block)
//! an answer by guessing a key. The request is its method, path parameters, query and body
//! bytes, hashed (SHA-256). Only a `2xx` answer is kept; a refused request holds nothing,
//! and its retry runs again. A record expires [`RECORD_TTL`] (24 h) after the answer.
//!
//! The records live in an [`IdempotencyStore`] (the database's, in the reference servers:
//! [`wiring::connect`](crate::wiring::connect)), so replicas on one database share them:
//! the claim of a key is one atomic step of the store, and two concurrent requests with one
//! key never both run, on one server or two. A claim holds the key for [`HOLD_FOR`]; a
//! request that ends releases or completes it at once, and one whose server died leaves a
//! hold the next claim takes over after that deadline.
//!
//! A keyed request is authenticated twice (here, to find its principal, and by its
//! handler): a key costs one more session read, which requests without one never pay.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, ETAG, LOCATION};
use http::{HeaderName, HeaderValue, StatusCode};
use portal_core::ErrorCode;
use portal_core::context::IdempotencyKey;
use portal_core::idempotency::{Claim, Hold, IdempotencyScope, IdempotencyStore, StoredAnswer};
use portal_core::ids::OrgId;
use sha2::{Digest, Sha256};
use time::Duration;

use crate::api::Api;
use crate::error::ApiError;
use crate::request::IDEMPOTENCY_KEY_HEADER;
use crate::routes::{Body, Request, Response, Route};

/// How long a key's record is kept after its answer.
pub const RECORD_TTL: Duration = Duration::hours(24);

/// How long a claim holds a key before another request may take it over (its server is
/// presumed dead): longer than any request runs.
pub const HOLD_FOR: Duration = Duration::seconds(60);

/// The header a replayed answer carries (`true`), as Stripe's.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The headers of an answer that a replay sends again; the others (`Set-Cookie` above
/// all) are never stored.
const KEPT_HEADERS: [HeaderName; 3] = [CONTENT_TYPE, ETAG, LOCATION];

/// What an operation does with an `Idempotency-Key`: every route of the table chooses
/// (see the [module](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// A read: repeating it changes nothing, and a key is not looked at. Only `GET`
    /// routes may say so (a test of the table checks it).
    Safe,
    /// The answer is kept and replayed to the same request under the same key.
    Replay,
    /// The request is keyed like [`Replay`](Self::Replay), but its answer shows a secret
    /// once and is never kept: a retry answers `idempotency.secret_not_replayed`.
    ShowsSecret,
    /// The operation's service keys the request itself (the workflow operations).
    Service,
    /// A key is refused with `idempotency.unsupported`; the reason is documented per route.
    Refused,
}

/// Runs `route` on `req` as its [`Idempotency`] says.
///
/// # Errors
///
/// `idempotency.unsupported` (400) for a key on a [`Idempotency::Refused`] route;
/// `idempotency.key_reused` (422) for another request under a key used or in use;
/// `idempotency.in_flight` (409) for the same request while the first runs;
/// `idempotency.secret_not_replayed` (409) for a retry of an [`Idempotency::ShowsSecret`]
/// request; `storage.*` when the records cannot be read; else the handler's error.
pub async fn run(route: Route, api: Api, req: Request) -> Result<Response, ApiError> {
    let keyed = req.headers.contains_key(IDEMPOTENCY_KEY_HEADER);
    let request_id = req.meta.request_id;
    let result = match route.idempotency {
        Idempotency::Replay | Idempotency::ShowsSecret if keyed => keep(&route, api, req).await,
        Idempotency::Refused if keyed => Err(unsupported()),
        _ => (route.handler)(api, req).await,
    };
    // A SCIM client reads SCIM's error schema, this layer's refusals included.
    if route.is_scim() {
        return Ok(result.unwrap_or_else(|err| crate::routes::scim::error_response(&err, request_id)));
    }
    result
}

/// Runs a keyed request of a [`Idempotency::Replay`] or [`Idempotency::ShowsSecret`] route.
async fn keep(route: &Route, api: Api, req: Request) -> Result<Response, ApiError> {
    let caller = req.authenticate(&api).await?;
    let Some(key) = caller.context().idempotency_key().cloned() else {
        return (route.handler)(api, req).await;
    };
    let scope = IdempotencyScope {
        org: req
            .params
            .iter()
            .find(|(name, _)| name == "org_id")
            .and_then(|(_, value)| value.parse::<OrgId>().ok()),
        principal: caller.context().principal().clone(),
        operation: route.operation_id.to_owned(),
    };
    let fingerprint = fingerprint(route.operation_id, &req);
    let store = api.idempotency_store().clone();
    let hold = Hold::random().map_err(portal_core::PortalError::from)?;
    let now = api.portal().clock().now();
    let claim = store
        .claim(&scope, &key, fingerprint, hold, now, now + HOLD_FOR)
        .await
        .map_err(portal_core::PortalError::from)?;
    match claim {
        Claim::Held => {}
        Claim::InFlight { fingerprint: held } => {
            return Err(if held == fingerprint { in_flight() } else { key_reused() });
        }
        Claim::Done { fingerprint: done, .. } if done != fingerprint => return Err(key_reused()),
        Claim::Done { answer: None, .. } => return Err(secret_not_replayed()),
        Claim::Done {
            answer: Some(answer), ..
        } => return Ok(replay(&answer)),
    }
    let mut guard = Release {
        store: Some(store.clone()),
        scope: scope.clone(),
        key: key.clone(),
        hold,
    };
    let result = (route.handler)(api.clone(), req).await;
    let Some(store) = guard.store.take() else {
        return result;
    };
    // What to keep, decided before any await: the response body is not `Sync`.
    let kept: Option<Option<StoredAnswer>> = match &result {
        Ok(response) if response.status.is_success() => Some(match (route.idempotency, &response.body) {
            (Idempotency::Replay, Body::Bytes(body)) => Some(stored(response, body)),
            (Idempotency::Replay, Body::Empty) => Some(stored(response, &Bytes::new())),
            // A stream is not kept whole; no changing operation answers one.
            _ => None,
        }),
        _ => None,
    };
    match kept {
        Some(answer) => {
            let expires_at = api.portal().clock().now() + RECORD_TTL;
            if let Err(err) = store.complete(&scope, &key, hold, answer, expires_at).await {
                // The change is made; only its record is missing, so the answer stands and
                // a retry after the hold's deadline runs again (logged for the operator).
                tracing::warn!(operation = route.operation_id, error = %err, "an idempotency record was not kept");
            }
        }
        None => {
            if let Err(err) = store.release(&scope, &key, hold).await {
                tracing::warn!(operation = route.operation_id, error = %err, "an idempotency key was not released");
            }
        }
    }
    result
}

/// Releases a held key when the request is dropped before it ended (its client went
/// away), on the runtime the request ran on; without one, the hold lapses after
/// [`HOLD_FOR`].
struct Release {
    store: Option<Arc<dyn IdempotencyStore>>,
    scope: IdempotencyScope,
    key: IdempotencyKey,
    hold: Hold,
}

impl Drop for Release {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (scope, key, hold) = (self.scope.clone(), self.key.clone(), self.hold);
            runtime.spawn(async move {
                let _ = store.release(&scope, &key, hold).await;
            });
        }
    }
}

/// What of `response` is kept.
fn stored(response: &Response, body: &Bytes) -> StoredAnswer {
    StoredAnswer {
        status: response.status.as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .flat_map(|name| {
                response
                    .headers
                    .get_all(name)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .map(|value| (name.as_str().to_owned(), value.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    }
}

/// The request's hash: its operation, method, path parameters (by name), query and body
/// bytes, each length-prefixed so that no two requests share an encoding.
pub fn fingerprint(operation: &str, req: &Request) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    part(operation.as_bytes());
    part(req.method.as_str().as_bytes());
    // By name, so that the order an adapter reads them in does not matter: two servers
    // on one database agree on the fingerprint of one request.
    let mut params: Vec<&(String, String)> = req.params.iter().collect();
    params.sort();
    for (name, value) in params {
        part(name.as_bytes());
        part(value.as_bytes());
    }
    part(req.query.as_deref().unwrap_or_default().as_bytes());
    part(&req.body);
    hash.finalize().into()
}

/// The kept answer again, marked [`REPLAYED_HEADER`].
fn replay(answer: &StoredAnswer) -> Response {
    let mut response = Response::new(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK));
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers.append(name, value);
        }
    }
    response
        .headers
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    if !answer.body.is_empty() {
        response.body = Body::Bytes(Bytes::from(answer.body.clone()));
    }
    response
}

/// `idempotency.key_reused`.
fn key_reused() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyKeyReused,
        "the idempotency key was used for another request",
    )
}

/// `idempotency.in_flight`.
fn in_flight() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyInFlight,
        "a request with this idempotency key is in progress; retry later",
    )
}

/// `idempotency.secret_not_replayed`.
fn secret_not_replayed() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencySecretNotReplayed,
        "the request under this idempotency key succeeded; its secret was shown once and is not shown again",
    )
}

/// `idempotency.unsupported`, naming the header.
pub fn unsupported() -> ApiError {
    ApiError::from(
        portal_core::PortalError::new(
            ErrorCode::IdempotencyUnsupported,
            "this operation does not take an `Idempotency-Key`; send it without one",
        )
        .with_param(crate::request::IDEMPOTENCY_KEY_PARAM),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// A replay carries the kept status, headers and body, and says it is a replay.
    #[test]
    fn a_replay_is_the_kept_answer_marked() {
        let answer = StoredAnswer {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        };
        let response = replay(&answer);
        assert_eq!(response.status, StatusCode::CREATED);
        assert_eq!(response.headers[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers[REPLAYED_HEADER], "true");
        assert!(matches!(response.body, Body::Bytes(ref b) if b.as_ref() == b"{}"));
    }

    /// A cookie is never kept: only the content type, entity tag and location are.
    #[test]
    fn only_the_headers_that_matter_are_kept() {
        let response = Response::bytes(StatusCode::OK, "application/json", "{}")
            .with_header(http::header::SET_COOKIE, HeaderValue::from_static("s=secret"))
            .with_header(ETAG, HeaderValue::from_static("\"1\""));
        let kept = stored(&response, &Bytes::from_static(b"{}"));
        assert_eq!(
            kept.headers,
            [
                ("content-type".to_owned(), "application/json".to_owned()),
                ("etag".to_owned(), "\"1\"".to_owned())
            ]
        );
    }
}
