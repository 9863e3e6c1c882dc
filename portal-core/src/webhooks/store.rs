//! The `WebhookStore` port: endpoints, the deliveries the outbox fans out, and the attempt
//! log.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Delivery, DeliveryAttempt, DisableRule, FinishedAttempt, NextStep, Replay, WebhookEndpoint};
use crate::audit::AuditEvent;
use crate::ids::{OrgId, WebhookAttemptId, WebhookEndpointId};
use crate::store::StoreError;

/// Persists webhook endpoints, their deliveries and their attempt log.
///
/// Deliveries are not written through this port: the stores that write an audit event
/// (the outbox) add, in the same transaction, one pending delivery per enabled endpoint of
/// the event's org whose filter takes the event's action, due at once. Everything here is
/// scoped by `(org, id)`: another org's ids find nothing.
///
/// Every implementation must pass `portal_core::testing::webhooks` (run it with
/// `portal_core::webhook_store_conformance!`, feature `testing`).
///
/// # Errors
///
/// - [`Conflict::AlreadyExists`](crate::store::Conflict::AlreadyExists) (`webhook
///   endpoint`) from [`create_endpoint`](Self::create_endpoint) for an id that exists.
/// - [`StoreError::NotFound`] `webhook_endpoint` from
///   [`update_endpoint`](Self::update_endpoint), [`delete_endpoint`](Self::delete_endpoint)
///   and [`replay`](Self::replay) for an id the org does not hold; `webhook_message` from
///   [`replay`](Self::replay) of a message the endpoint never had.
/// - [`StoreError::Unavailable`], [`StoreError::Backend`], [`StoreError::Corrupt`] as
///   every store.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Stores a new endpoint and its audit event, in one transaction.
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError>;

    /// The endpoint `id` of `org`, or `None` (also for another org's endpoint).
    async fn get_endpoint(&self, org: OrgId, id: WebhookEndpointId) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Up to `limit` endpoints of `org` in id order, after `after` if given.
    async fn list_endpoints(
        &self,
        org: OrgId,
        after: Option<WebhookEndpointId>,
        limit: usize,
    ) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// Replaces the URL, description, event types, enabled flag, secrets, `updated_at`
    /// and `failing_since` of the endpoint `(endpoint.org, endpoint.id)`, and writes
    /// `event`, in one transaction.
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError>;

    /// Deletes the endpoint with its pending deliveries and attempt log, and writes
    /// `event`, in one transaction.
    async fn delete_endpoint(&self, org: OrgId, id: WebhookEndpointId, event: &AuditEvent) -> Result<(), StoreError>;

    /// Claims up to `limit` pending deliveries due at `now` of enabled endpoints, oldest
    /// due first: each one's attempt count grows by one and it is not due again before
    /// `lease_until`, so a worker that stops before [`finish_attempt`](Self::finish_attempt)
    /// leaves it to be claimed again (with the same message id) once the lease ends.
    /// Concurrent claims never return the same delivery twice within a lease.
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records `attempt` in the endpoint's log and moves its delivery on by `next` (only
    /// if the delivery is still at this attempt: a claim made after the lease ended wins);
    /// a failure marks the endpoint failing since then (unless it already was), a success
    /// clears it; with `disable`, an enabled endpoint failing since before
    /// `disable.before` is disabled and `disable.event` written. One transaction. Returns
    /// whether the endpoint was disabled.
    async fn finish_attempt(
        &self,
        attempt: &DeliveryAttempt,
        next: NextStep,
        disable: Option<DisableRule>,
    ) -> Result<bool, StoreError>;

    /// [`finish_attempt`](Self::finish_attempt) for each of `finished`, in order, all or
    /// nothing: returns whether each one disabled its endpoint, or, if any of them cannot
    /// be recorded (an attempt id already logged or given twice, a disabling event whose
    /// id is taken, a backend failure), the error, with none of the batch recorded and no
    /// delivery or endpoint changed. The SQL stores use one transaction (one commit for a
    /// claim's worth of attempts); the in-memory store checks the whole batch under its
    /// lock before it applies the first. There is no default: recording one by one would
    /// leave the attempts before a failure behind, which
    /// `portal_core::testing::webhooks::finished_attempts_are_recorded_together` refuses.
    async fn finish_attempts(&self, finished: &[FinishedAttempt]) -> Result<Vec<bool>, StoreError>;

    /// Up to `limit` attempts of the endpoint `(org, endpoint)` in id order, after `after`.
    async fn list_attempts(
        &self,
        org: OrgId,
        endpoint: WebhookEndpointId,
        after: Option<WebhookAttemptId>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError>;

    /// Queues again, due at `now` with a fresh schedule, the endpoint's deliveries that
    /// `replay` names; returns how many.
    async fn replay(
        &self,
        org: OrgId,
        endpoint: WebhookEndpointId,
        replay: Replay,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;
}
