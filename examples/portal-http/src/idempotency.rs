//! `Idempotency-Key` on the creating `POST`s that no service keys itself (orgs,
//! invitations, custom roles, API keys, delegations), with the workflow service's
//! semantics (Stripe's): the same request under a key replays the first answer, another
//! request under it is refused (`idempotency.key_reused`), and a duplicate while the first
//! is being worked on answers `idempotency.in_flight`.
//!
//! A key is scoped to its [`Principal`]: one principal's key never finds another's record,
//! so a caller of another org cannot replay (or block) an answer by guessing a key. The
//! request is the operation, its path parameters and its body bytes, hashed (SHA-256):
//! the same key on another org's path is another request. Only a `2xx` answer is kept; a
//! refused request holds nothing, and its retry runs again. A record expires
//! [`RECORD_TTL`] (24 h) after the answer.
//!
//! An answer that showed a secret once (an API key's `key`, an invitation's `token`) is
//! never stored: its record keeps the request's hash only, and a retry answers
//! `409 idempotency.secret_not_replayed` (the thing was created once; the caller lists it
//! to find it, and revokes it and creates another if the secret was lost).
//!
//! The records live in the server process ([`Replays`], one per [`Api`]): the claim of a
//! key and the check of its record are one step under a lock, so two concurrent identical
//! requests on one server create once. Replicas do not share records; a deployment with
//! several needs sticky routing by principal, or a shared store behind this type.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use portal_core::context::IdempotencyKey;
use portal_core::{ErrorCode, Principal};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::api::Api;
use crate::error::ApiError;
use crate::request::Caller;
use crate::routes::{Body, Request, Response};

/// How long a key's record is kept after its answer.
pub const RECORD_TTL: Duration = Duration::hours(24);

/// The header a replayed answer carries (`true`), as Stripe's.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Above this many records a claim first drops the expired ones; after a sweep, the next
/// waits until the records have doubled, so sweeping costs O(1) a claim over time.
const SWEEP_ABOVE: usize = 1024;

/// Whether an operation's answer may be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The answer holds nothing secret: it is stored and replayed.
    Replayable,
    /// The answer shows a secret once: it is never stored, and a retry answers
    /// `idempotency.secret_not_replayed`.
    ShowsSecret,
}

/// A stored answer.
#[derive(Debug, Clone)]
struct Stored {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// What a key holds.
#[derive(Debug)]
enum Entry {
    /// A request under the key is being worked on.
    InFlight { fingerprint: [u8; 32] },
    /// A request under the key succeeded; its answer, unless it showed a secret.
    Done {
        fingerprint: [u8; 32],
        answer: Option<Stored>,
        expires_at: OffsetDateTime,
    },
}

type Scoped = (Principal, IdempotencyKey);

/// The idempotency records of the HTTP creating `POST`s, by principal and key.
#[derive(Debug, Default)]
pub struct Replays {
    records: Mutex<Records>,
}

/// The records, and how many there may be before the next sweep.
#[derive(Debug)]
struct Records {
    entries: HashMap<Scoped, Entry>,
    sweep_above: usize,
}

impl Default for Records {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            sweep_above: SWEEP_ABOVE,
        }
    }
}

/// What the claim of a key found.
enum Claim {
    /// The key is the request's now: run it.
    Run,
    /// The answer to give at once.
    Answer(Result<Response, ApiError>),
}

impl Replays {
    /// Claims `key` for a request with `fingerprint`, or answers from its record.
    fn claim(&self, scoped: &Scoped, fingerprint: [u8; 32], now: OffsetDateTime) -> Claim {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.entries.len() > records.sweep_above {
            records.entries.retain(|_, entry| !is_expired(entry, now));
            records.sweep_above = SWEEP_ABOVE.max(2 * records.entries.len());
        }
        let entries = &mut records.entries;
        match entries.get(scoped) {
            Some(entry) if is_expired(entry, now) => {}
            Some(Entry::InFlight { fingerprint: held }) => {
                return Claim::Answer(Err(if *held == fingerprint {
                    in_flight()
                } else {
                    key_reused()
                }));
            }
            Some(Entry::Done { fingerprint: done, .. }) if *done != fingerprint => {
                return Claim::Answer(Err(key_reused()));
            }
            Some(Entry::Done { answer: None, .. }) => return Claim::Answer(Err(secret_not_replayed())),
            Some(Entry::Done {
                answer: Some(stored), ..
            }) => return Claim::Answer(Ok(replay(stored))),
            None => {}
        }
        entries.insert(scoped.clone(), Entry::InFlight { fingerprint });
        Claim::Run
    }

    /// Ends the claim of `scoped`: records the answer of a success, frees the key otherwise.
    fn finish(&self, scoped: &Scoped, record: Option<Entry>) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        match record {
            Some(entry) => records.entries.insert(scoped.clone(), entry),
            None => records.entries.remove(scoped),
        };
    }
}

/// Whether `entry` is a record past its expiry.
fn is_expired(entry: &Entry, now: OffsetDateTime) -> bool {
    matches!(entry, Entry::Done { expires_at, .. } if *expires_at <= now)
}

/// Frees a claimed key if the request is dropped before it finished (its client went
/// away), so that the key does not stay in flight.
struct Hold<'a> {
    replays: &'a Replays,
    scoped: Option<Scoped>,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if let Some(scoped) = self.scoped.take() {
            self.replays.finish(&scoped, None);
        }
    }
}

/// Runs `work`, the creation `req` asks for, under the request's `Idempotency-Key` if it
/// has one (see the [module](self)); without a key, just runs it.
///
/// # Errors
///
/// `idempotency.key_reused` (422) for another request under a key used or in use;
/// `idempotency.in_flight` (409) for the same request while the first runs;
/// `idempotency.secret_not_replayed` (409) for a retry of an [`Answer::ShowsSecret`]
/// creation; else `work`'s error.
pub async fn idempotent(
    api: &Api,
    req: &Request,
    caller: &Caller,
    operation: &str,
    kind: Answer,
    work: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, ApiError> {
    let ctx = caller.context();
    let Some(key) = ctx.idempotency_key() else {
        return work.await;
    };
    let replays = api.replays();
    let scoped = (ctx.principal().clone(), key.clone());
    let fingerprint = fingerprint(operation, req);
    if let Claim::Answer(answer) = replays.claim(&scoped, fingerprint, api.portal().clock().now()) {
        return answer;
    }
    let mut hold = Hold {
        replays,
        scoped: Some(scoped),
    };
    let result = work.await;
    let record = match &result {
        Ok(response) if response.status.is_success() => {
            let answer = match (kind, &response.body) {
                (Answer::Replayable, Body::Bytes(body)) => Some(Stored {
                    status: response.status,
                    headers: response.headers.clone(),
                    body: body.clone(),
                }),
                (Answer::Replayable, Body::Empty) => Some(Stored {
                    status: response.status,
                    headers: response.headers.clone(),
                    body: Bytes::new(),
                }),
                // A stream is not kept whole; no creation answers one.
                (Answer::Replayable, Body::Stream(_)) | (Answer::ShowsSecret, _) => None,
            };
            Some(Entry::Done {
                fingerprint,
                answer,
                expires_at: api.portal().clock().now() + RECORD_TTL,
            })
        }
        _ => None,
    };
    if let Some(scoped) = hold.scoped.take() {
        replays.finish(&scoped, record);
    }
    result
}

/// The request's hash: its operation, method, path parameters and body bytes, each
/// length-prefixed so that no two requests share an encoding.
fn fingerprint(operation: &str, req: &Request) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    part(operation.as_bytes());
    part(req.method.as_str().as_bytes());
    for (name, value) in &req.params {
        part(name.as_bytes());
        part(value.as_bytes());
    }
    part(&req.body);
    hash.finalize().into()
}

/// The stored answer again, marked [`REPLAYED_HEADER`].
fn replay(stored: &Stored) -> Response {
    let mut headers = stored.headers.clone();
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Response {
        status: stored.status,
        headers,
        body: if stored.body.is_empty() {
            Body::Empty
        } else {
            Body::Bytes(stored.body.clone())
        },
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use portal_core::ids::UserId;
    use time::macros::datetime;

    use super::*;

    fn scoped() -> Scoped {
        (
            Principal::User("usr_01jd5x8y6kf3w9q2m7c4t0vbnr".parse::<UserId>().unwrap()),
            IdempotencyKey::new("k").unwrap(),
        )
    }

    fn done(answer: Option<Stored>, expires_at: OffsetDateTime) -> Entry {
        Entry::Done {
            fingerprint: [1; 32],
            answer,
            expires_at,
        }
    }

    #[test]
    fn a_record_expires_and_its_key_is_free_again() {
        let replays = Replays::default();
        let now = datetime!(2026-01-01 00:00 UTC);
        assert!(matches!(replays.claim(&scoped(), [1; 32], now), Claim::Run));
        replays.finish(&scoped(), Some(done(None, now + RECORD_TTL)));
        let before = replays.claim(&scoped(), [1; 32], now + RECORD_TTL - Duration::seconds(1));
        assert!(matches!(before, Claim::Answer(Err(ref e)) if e.code() == ErrorCode::IdempotencySecretNotReplayed));
        assert!(matches!(
            replays.claim(&scoped(), [2; 32], now + RECORD_TTL),
            Claim::Run
        ));
    }

    #[test]
    fn a_key_in_flight_refuses_the_same_and_another_request() {
        let replays = Replays::default();
        let now = datetime!(2026-01-01 00:00 UTC);
        assert!(matches!(replays.claim(&scoped(), [1; 32], now), Claim::Run));
        let same = replays.claim(&scoped(), [1; 32], now);
        assert!(matches!(same, Claim::Answer(Err(ref e)) if e.code() == ErrorCode::IdempotencyInFlight));
        let other = replays.claim(&scoped(), [2; 32], now);
        assert!(matches!(other, Claim::Answer(Err(ref e)) if e.code() == ErrorCode::IdempotencyKeyReused));
        replays.finish(&scoped(), None);
        assert!(matches!(replays.claim(&scoped(), [2; 32], now), Claim::Run));
    }
}
