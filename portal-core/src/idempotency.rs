//! Durable idempotency records: the port a host keeps `Idempotency-Key` records in, so
//! that a retried request replays its first answer on any replica of the service.
//!
//! A record is found by its [`IdempotencyScope`] (the org the request is about, if any, the
//! principal who sent it and the operation) and the client's [`IdempotencyKey`]: another
//! principal's key, the same key on another org or another operation, is another record.
//! It holds the fingerprint (SHA-256) of the request that claimed it and, once that request
//! succeeded, its answer ([`StoredAnswer`]: status, the headers that matter, body), or no
//! answer when it showed a secret once.
//!
//! The port knows nothing of HTTP beyond that shape: the HTTP contract (`portal-http`)
//! decides what is a request, what is an answer and which answers are kept, and compares
//! fingerprints. The port gives it the one thing it cannot do alone: **an atomic claim**.
//! [`IdempotencyStore::claim`] either takes the key for one request (a row *in flight*,
//! held under a [`Hold`] token until a deadline) or reports what the key holds, in one
//! step, so two concurrent requests with one key never both run, even on two servers
//! sharing one database. A hold whose deadline passed (its server died) and a record past
//! its expiry are taken over by the next claim.
//!
//! Every implementation must pass `portal_core::testing::idempotency`
//! ([`idempotency_store_conformance!`](crate::idempotency_store_conformance)).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::context::IdempotencyKey;
use crate::ids::OrgId;
use crate::principal::Principal;
use crate::store::StoreError;

/// What an idempotency key is scoped to: one record per scope and key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyScope {
    /// The org the request is about (its path's org), if any.
    pub org: Option<OrgId>,
    /// Who sent the request.
    pub principal: Principal,
    /// The operation (an HTTP route's `operationId`).
    pub operation: String,
}

impl IdempotencyScope {
    /// The org as stored: its id's text, or the empty string for none.
    pub fn org_text(&self) -> String {
        self.org.map(|org| org.to_string()).unwrap_or_default()
    }
}

/// A token unique to one claim of a key, so that only the request holding the key
/// completes or releases it (a request whose hold was taken over after its deadline
/// changes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hold(pub [u8; 16]);

impl Hold {
    /// A random hold token.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the system random generator fails.
    pub fn random() -> Result<Self, StoreError> {
        let mut bytes = [0; 16];
        getrandom::fill(&mut bytes).map_err(|err| StoreError::Backend {
            backend: "random",
            source: Box::new(std::io::Error::other(err.to_string())),
        })?;
        Ok(Self(bytes))
    }
}

/// A kept answer: what a replay sends again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// The status code.
    pub status: u16,
    /// The headers worth replaying (name, value), in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free, or its record or hold had expired: it is now held by the claim's
    /// [`Hold`] until the claim's deadline. Run the request, then
    /// [`complete`](IdempotencyStore::complete) or [`release`](IdempotencyStore::release).
    Held,
    /// Another request holds the key (its fingerprint is given).
    InFlight {
        /// The fingerprint of the request holding the key.
        fingerprint: [u8; 32],
    },
    /// A request under the key succeeded.
    Done {
        /// The fingerprint of that request.
        fingerprint: [u8; 32],
        /// Its answer, or `None` when it showed a secret once and was not kept.
        answer: Option<StoredAnswer>,
    },
}

/// Keeps idempotency records.
///
/// Every implementation must pass `portal_core::testing::idempotency`. Each method is one
/// atomic step.
///
/// # Errors
///
/// - [`StoreError::NotFound`] from [`complete`](Self::complete) when `hold` no longer holds
///   the key (it was released, or taken over after its deadline).
/// - [`StoreError::Unavailable`] / [`StoreError::Backend`] for a failing backend.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` in `scope` for the request of `fingerprint` under `hold` until
    /// `hold_until`, if the key is free, or its record expired (at or before `now`), or
    /// its hold's deadline passed; else reports what it holds. One atomic step: of two
    /// concurrent claims of a free key, exactly one is [`Claim::Held`].
    async fn claim(
        &self,
        scope: &IdempotencyScope,
        key: &IdempotencyKey,
        fingerprint: [u8; 32],
        hold: Hold,
        now: OffsetDateTime,
        hold_until: OffsetDateTime,
    ) -> Result<Claim, StoreError>;

    /// Records the answer of the request holding `key` under `hold` (`None`: it succeeded
    /// but its answer is not kept), kept until `expires_at`; the key is no longer held.
    async fn complete(
        &self,
        scope: &IdempotencyScope,
        key: &IdempotencyKey,
        hold: Hold,
        answer: Option<StoredAnswer>,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Frees `key` if `hold` still holds it (the request failed or was dropped): the next
    /// claim runs anew. Freeing a key `hold` no longer holds changes nothing.
    async fn release(&self, scope: &IdempotencyScope, key: &IdempotencyKey, hold: Hold) -> Result<(), StoreError>;

    /// Deletes the records expired at `now` and the holds past their deadline; returns
    /// how many rows went.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
