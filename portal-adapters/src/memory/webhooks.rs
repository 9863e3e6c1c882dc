//! `InMemoryWebhookStore`: webhook endpoints, deliveries and attempts kept beside the
//! in-memory audit log, under its lock, so an event and its deliveries are one step.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use portal_core::audit::AuditEvent;
use portal_core::ids::{AuditEventId, OrgId, WebhookAttemptId, WebhookEndpointId};
use portal_core::store::{Conflict, StoreError};
use portal_core::webhooks::{
    Delivery, DeliveryAttempt, DisableRule, FinishedAttempt, NextStep, Replay, WebhookEndpoint, WebhookStore,
    message_id,
};
use time::OffsetDateTime;

use super::InMemoryAuditLog;
use super::audit::AuditState;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone)]
struct DeliveryRow {
    org: OrgId,
    occurred_at: OffsetDateTime,
    state: DeliveryState,
    attempts: u32,
    due: OffsetDateTime,
}

/// The webhook tables of the in-memory stores.
#[derive(Debug, Default)]
pub(crate) struct WebhookState {
    endpoints: BTreeMap<WebhookEndpointId, WebhookEndpoint>,
    deliveries: BTreeMap<(WebhookEndpointId, AuditEventId), DeliveryRow>,
    attempts: BTreeMap<WebhookAttemptId, DeliveryAttempt>,
}

impl WebhookState {
    /// A pending delivery of `event` for every enabled endpoint of its org that takes it.
    pub(crate) fn fan_out(&mut self, event: &AuditEvent) {
        for endpoint in self.endpoints.values() {
            if endpoint.org == event.org && endpoint.enabled && endpoint.event_types.matches(&event.action) {
                self.deliveries.insert(
                    (endpoint.id, event.id),
                    DeliveryRow {
                        org: event.org,
                        occurred_at: event.occurred_at,
                        state: DeliveryState::Pending,
                        attempts: 0,
                        due: event.occurred_at,
                    },
                );
            }
        }
    }

    /// Drops the deliveries and attempts of the purged events `gone`.
    pub(crate) fn forget(&mut self, gone: &std::collections::BTreeSet<AuditEventId>) {
        self.deliveries.retain(|(_, event), _| !gone.contains(event));
        self.attempts
            .retain(|_, attempt| !gone.contains(&AuditEventId::from_uuid(attempt.message.as_uuid())));
    }

    fn endpoint(&self, org: OrgId, id: WebhookEndpointId) -> Option<&WebhookEndpoint> {
        self.endpoints.get(&id).filter(|e| e.org == org)
    }
}

/// Webhook endpoints, deliveries and attempts of the in-memory stores.
///
/// Build it on the audit log the other in-memory stores write to
/// ([`InMemoryTenancyStore::audit_log`](super::InMemoryTenancyStore::audit_log)): their
/// events fan out to its endpoints as they are appended.
#[derive(Debug, Clone, Default)]
pub struct InMemoryWebhookStore {
    log: InMemoryAuditLog,
}

impl InMemoryWebhookStore {
    /// A store over `log`.
    pub fn new(log: InMemoryAuditLog) -> Self {
        Self { log }
    }

    /// The audit log it shares.
    pub fn audit_log(&self) -> InMemoryAuditLog {
        self.log.clone()
    }
}

fn not_found() -> StoreError {
    StoreError::NotFound {
        entity: "webhook_endpoint",
    }
}

/// Refuses a batch of finished attempts that could not all be recorded: an attempt id
/// already logged or given twice in the batch, or a disabling event whose id the log
/// holds or the batch gives twice (as the SQL stores' primary keys refuse them). Reads
/// only, so a refused batch leaves everything as it was.
fn check_finished<'a>(
    state: &AuditState,
    batch: impl IntoIterator<Item = (&'a DeliveryAttempt, Option<&'a DisableRule>)>,
) -> Result<(), StoreError> {
    let mut attempts = BTreeSet::new();
    let mut events = BTreeSet::new();
    for (attempt, disable) in batch {
        if state.webhooks.attempts.contains_key(&attempt.id) || !attempts.insert(attempt.id) {
            return Err(Conflict::AlreadyExists {
                entity: "webhook attempt",
            }
            .into());
        }
        if let Some(rule) = disable
            && (state.events.iter().any(|e| e.id == rule.event.id) || !events.insert(rule.event.id))
        {
            return Err(Conflict::AlreadyExists { entity: "audit event" }.into());
        }
    }
    Ok(())
}

/// Records one attempt [`check_finished`] accepted: moves its delivery (if it is still at
/// this attempt), marks or clears the endpoint's failing state, disables it by `disable`
/// with its event, and logs the attempt. Returns whether the endpoint was disabled.
fn apply_finished(
    state: &mut AuditState,
    attempt: &DeliveryAttempt,
    next: NextStep,
    disable: Option<&DisableRule>,
) -> bool {
    let event_id = AuditEventId::from_uuid(attempt.message.as_uuid());
    if let Some(row) = state.webhooks.deliveries.get_mut(&(attempt.endpoint, event_id))
        && row.org == attempt.org
        && row.state == DeliveryState::Pending
        && row.attempts == attempt.attempt
    {
        match next {
            NextStep::Done => row.state = DeliveryState::Delivered,
            NextStep::RetryAt(at) => row.due = at,
            NextStep::GiveUp => row.state = DeliveryState::Failed,
        }
    }
    let mut disabled = false;
    if let Some(endpoint) = state.webhooks.endpoints.get_mut(&attempt.endpoint)
        && endpoint.org == attempt.org
    {
        if next == NextStep::Done {
            endpoint.failing_since = None;
        } else {
            let since = *endpoint.failing_since.get_or_insert(attempt.attempted_at);
            if let Some(rule) = disable
                && endpoint.enabled
                && since <= rule.before
            {
                endpoint.enabled = false;
                disabled = true;
            }
        }
    }
    state.webhooks.attempts.insert(attempt.id, attempt.clone());
    if disabled && let Some(rule) = disable {
        state.append_checked(&rule.event);
    }
    disabled
}

#[async_trait]
impl WebhookStore for InMemoryWebhookStore {
    async fn create_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError> {
        let mut state = self.log.lock();
        if state.webhooks.endpoints.contains_key(&endpoint.id) {
            return Err(Conflict::AlreadyExists {
                entity: "webhook endpoint",
            }
            .into());
        }
        if state.events.iter().any(|e| e.id == event.id) {
            return Err(Conflict::AlreadyExists { entity: "audit event" }.into());
        }
        state.webhooks.endpoints.insert(endpoint.id, endpoint.clone());
        state.write(event)
    }

    async fn get_endpoint(&self, org: OrgId, id: WebhookEndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        Ok(self.log.lock().webhooks.endpoint(org, id).cloned())
    }

    async fn list_endpoints(
        &self,
        org: OrgId,
        after: Option<WebhookEndpointId>,
        limit: usize,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let state = self.log.lock();
        Ok(state
            .webhooks
            .endpoints
            .values()
            .filter(|e| e.org == org && after.is_none_or(|a| e.id > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError> {
        let mut state = self.log.lock();
        if state.webhooks.endpoint(endpoint.org, endpoint.id).is_none() {
            return Err(not_found());
        }
        if state.events.iter().any(|e| e.id == event.id) {
            return Err(Conflict::AlreadyExists { entity: "audit event" }.into());
        }
        if let Some(stored) = state.webhooks.endpoints.get_mut(&endpoint.id) {
            let created_at = stored.created_at;
            *stored = endpoint.clone();
            stored.created_at = created_at;
        }
        state.write(event)
    }

    async fn delete_endpoint(&self, org: OrgId, id: WebhookEndpointId, event: &AuditEvent) -> Result<(), StoreError> {
        let mut state = self.log.lock();
        if state.webhooks.endpoint(org, id).is_none() {
            return Err(not_found());
        }
        if state.events.iter().any(|e| e.id == event.id) {
            return Err(Conflict::AlreadyExists { entity: "audit event" }.into());
        }
        state.webhooks.endpoints.remove(&id);
        state.webhooks.deliveries.retain(|(endpoint, _), _| *endpoint != id);
        state.webhooks.attempts.retain(|_, a| a.endpoint != id);
        state.write(event)
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut state = self.log.lock();
        let state = &mut *state;
        let mut due: Vec<(OffsetDateTime, WebhookEndpointId, AuditEventId)> = state
            .webhooks
            .deliveries
            .iter()
            .filter(|((endpoint, _), row)| {
                row.state == DeliveryState::Pending
                    && row.due <= now
                    && state.webhooks.endpoints.get(endpoint).is_some_and(|e| e.enabled)
            })
            .map(|((endpoint, event), row)| (row.due, *endpoint, *event))
            .collect();
        due.sort();
        due.truncate(limit);
        let mut out = Vec::with_capacity(due.len());
        for (_, endpoint_id, event_id) in due {
            let (Some(endpoint), Some(event)) = (
                state.webhooks.endpoints.get(&endpoint_id),
                state.events.iter().find(|e| e.id == event_id),
            ) else {
                continue;
            };
            let Some(row) = state.webhooks.deliveries.get_mut(&(endpoint_id, event_id)) else {
                continue;
            };
            row.attempts += 1;
            row.due = lease_until;
            out.push(Delivery {
                org: row.org,
                endpoint: endpoint_id,
                event: event.clone(),
                attempt: row.attempts,
                url: endpoint.url.clone(),
                secrets: endpoint.secrets.clone(),
            });
        }
        Ok(out)
    }

    async fn finish_attempt(
        &self,
        attempt: &DeliveryAttempt,
        next: NextStep,
        disable: Option<DisableRule>,
    ) -> Result<bool, StoreError> {
        let mut state = self.log.lock();
        check_finished(&state, std::iter::once((attempt, disable.as_ref())))?;
        Ok(apply_finished(&mut state, attempt, next, disable.as_ref()))
    }

    async fn finish_attempts(&self, finished: &[FinishedAttempt]) -> Result<Vec<bool>, StoreError> {
        // All or nothing, under one acquisition of the lock: the whole batch is checked
        // before the first attempt is applied, and applying cannot fail.
        let mut state = self.log.lock();
        check_finished(&state, finished.iter().map(|one| (&one.attempt, one.disable.as_ref())))?;
        Ok(finished
            .iter()
            .map(|one| apply_finished(&mut state, &one.attempt, one.next, one.disable.as_ref()))
            .collect())
    }

    async fn list_attempts(
        &self,
        org: OrgId,
        endpoint: WebhookEndpointId,
        after: Option<WebhookAttemptId>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let state = self.log.lock();
        Ok(state
            .webhooks
            .attempts
            .values()
            .filter(|a| a.org == org && a.endpoint == endpoint && after.is_none_or(|x| a.id > x))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn replay(
        &self,
        org: OrgId,
        endpoint: WebhookEndpointId,
        replay: Replay,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut state = self.log.lock();
        if state.webhooks.endpoint(org, endpoint).is_none() {
            return Err(not_found());
        }
        let mut count = 0;
        for ((row_endpoint, event), row) in state.webhooks.deliveries.iter_mut() {
            let chosen = *row_endpoint == endpoint
                && row.org == org
                && match replay {
                    Replay::Message(message) => message_id(*event) == message,
                    Replay::Range { since, until } => {
                        row.state != DeliveryState::Pending && row.occurred_at >= since && row.occurred_at < until
                    }
                };
            if chosen {
                row.state = DeliveryState::Pending;
                row.attempts = 0;
                row.due = now;
                count += 1;
            }
        }
        if count == 0 && matches!(replay, Replay::Message(_)) {
            return Err(StoreError::NotFound {
                entity: "webhook_message",
            });
        }
        Ok(count)
    }
}
