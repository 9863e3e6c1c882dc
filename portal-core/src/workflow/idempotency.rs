//! Idempotency keys in the workflow service: a duplicate in flight is refused, a retry of a
//! committed request replays its record, and another request under a used key is refused.

use std::future::Future;

use super::service::WorkflowService;
use super::{IdempotencyRecord, Instance};
use crate::context::RequestContext;
use crate::error::{ErrorCode, PortalError};
use crate::gate::Verdict;
use crate::ids::OrgId;

/// What the store call of a step did.
pub(super) enum Outcome {
    /// The step committed; the instance as it now is.
    Committed(Instance),
    /// The same request had committed before under the same key; its stored result.
    Replayed(Instance),
}

/// What a step's work came to, and the access decisions made on the way: they are
/// recorded once the answer is known, unless it came from the key's record.
pub(super) type Worked = (Result<Outcome, PortalError>, Vec<Verdict>);

/// The refusal of another request under a key already used.
pub(super) fn key_reused() -> PortalError {
    PortalError::new(
        ErrorCode::IdempotencyKeyReused,
        "the idempotency key was used for another request",
    )
}

/// The refusal of a duplicate while the first request under its key is being worked on.
fn in_flight() -> PortalError {
    PortalError::new(
        ErrorCode::IdempotencyInFlight,
        "a request with this idempotency key is in progress; retry later",
    )
}

/// Names the reused key in an `idempotency.key_reused` error, wherever it was found (the
/// key lookup, or the store's atomic claim): the key is the caller's own and holds no
/// secret, and triage shows it as evidence.
pub(super) fn name_key(err: PortalError, ctx: &RequestContext) -> PortalError {
    match ctx.idempotency_key() {
        Some(key)
            if err.code() == ErrorCode::IdempotencyKeyReused && !err.details().contains_key("idempotency_key") =>
        {
            err.with_detail("idempotency_key", key.as_str())
        }
        _ => err,
    }
}

/// The idempotency record a request writes with its change, if it has a key.
pub(super) fn idempotency_record(
    ctx: &RequestContext,
    fingerprint: [u8; 32],
    response: &Instance,
) -> Option<IdempotencyRecord> {
    ctx.idempotency_key().map(|key| IdempotencyRecord {
        principal: ctx.principal().clone(),
        key: key.clone(),
        fingerprint,
        response: response.clone(),
        created_at: ctx.now(),
    })
}

impl WorkflowService {
    /// Runs `work` under the request's idempotency key, if it has one, and records the
    /// access decisions it made unless the answer comes from the key's record.
    ///
    /// A key another request of this service is working on answers
    /// `idempotency.in_flight` at once, without running `work`. The key is claimed by the
    /// store call that commits (`create` or `apply`), which replays a committed request
    /// under it or refuses another. A refused request (any refusal but a storage fault:
    /// the store is then unlikely to answer) looks the key up: a request under it
    /// committed before, or meanwhile on another replica, answers with its record
    /// (replayed, or `idempotency.key_reused`) instead of the refusal, so a retry of a
    /// committed request replays even though its expected version is now stale. Only
    /// committed results are stored: a refused request holds nothing.
    pub(super) async fn with_key(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        fingerprint: [u8; 32],
        work: impl Future<Output = Worked>,
    ) -> Result<Instance, PortalError> {
        let _hold = match ctx.idempotency_key() {
            Some(key) => Some(self.in_flight.hold(org, ctx.principal(), key).ok_or_else(in_flight)?),
            None => None,
        };
        let (outcome, decisions) = work.await;
        match outcome {
            Ok(Outcome::Committed(instance)) => {
                self.flush(decisions);
                Ok(instance)
            }
            Ok(Outcome::Replayed(instance)) => Ok(instance),
            Err(err) if err.code() == ErrorCode::IdempotencyKeyReused => Err(err),
            Err(refusal) => match self.recorded(ctx, org, fingerprint, &refusal).await {
                Some(answer) => answer,
                None => {
                    self.flush(decisions);
                    Err(refusal)
                }
            },
        }
    }

    /// The answer the key's committed record gives a refused request, if the request
    /// has a key and a record is stored under it.
    async fn recorded(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        fingerprint: [u8; 32],
        refusal: &PortalError,
    ) -> Option<Result<Instance, PortalError>> {
        let key = ctx.idempotency_key()?;
        if matches!(
            refusal.code(),
            ErrorCode::StorageUnavailable | ErrorCode::StorageFailure
        ) {
            return None;
        }
        match self.store.find_idempotency(org, ctx.principal(), key).await {
            Ok(Some(record)) if record.fingerprint == fingerprint => Some(Ok(record.response)),
            Ok(Some(_)) => Some(Err(key_reused())),
            // No record: the refusal stands. A failed lookup leaves the refusal too; a
            // retry looks again.
            Ok(None) | Err(_) => None,
        }
    }

    /// Records access decisions held back until a step's answer was known.
    fn flush(&self, decisions: Vec<Verdict>) {
        for verdict in decisions {
            self.gate.record_verdict(verdict);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::context::{IdempotencyKey, Principal, ServiceName};
    use crate::ids::SequentialIds;
    use crate::time::ManualClock;

    fn ctx(key: Option<&str>) -> RequestContext {
        let clock = ManualClock::new(datetime!(2030-01-01 12:00 UTC));
        let builder = RequestContext::builder(Principal::Service(ServiceName::new("t").unwrap()));
        match key {
            Some(key) => builder.idempotency_key(IdempotencyKey::new(key).unwrap()),
            None => builder,
        }
        .build(&clock, &SequentialIds::default())
    }

    #[test]
    fn only_a_reused_key_error_names_the_key_and_an_existing_name_is_kept() {
        let named =
            |err: PortalError, ctx: &RequestContext| name_key(err, ctx).details().get("idempotency_key").cloned();
        assert_eq!(named(key_reused(), &ctx(Some("k-1"))), Some(json!("k-1")));
        assert_eq!(named(key_reused(), &ctx(None)), None, "no key, nothing to name");
        assert_eq!(named(in_flight(), &ctx(Some("k-1"))), None, "only key_reused names it");
        assert_eq!(
            named(key_reused().with_detail("idempotency_key", "k-0"), &ctx(Some("k-1"))),
            Some(json!("k-0"))
        );
        assert_eq!(key_reused().code(), ErrorCode::IdempotencyKeyReused);
        assert_eq!(in_flight().code(), ErrorCode::IdempotencyInFlight);
        assert!(in_flight().is_retryable(), "a duplicate in flight may be retried");
    }

    #[test]
    fn a_request_writes_an_idempotency_record_only_under_a_key() {
        let response: Instance = serde_json::from_value(json!({
            "id": "wf_00000000000000000000000000", "org": "org_00000000000000000000000000",
            "definition": "d", "definition_version": 1, "state": "s", "version": 2, "assignee": null,
            "payload": {}, "created_by": "svc:t", "created_at": "2030-01-01T00:00:00Z",
            "updated_at": "2030-01-01T00:00:00Z", "state_entered_at": "2030-01-01T00:00:00Z",
            "due_at": null, "votes": [],
        }))
        .unwrap();
        assert_eq!(idempotency_record(&ctx(None), [7; 32], &response), None);
        let ctx = ctx(Some("k-1"));
        assert_eq!(
            idempotency_record(&ctx, [7; 32], &response),
            Some(IdempotencyRecord {
                principal: ctx.principal().clone(),
                key: IdempotencyKey::new("k-1").unwrap(),
                fingerprint: [7; 32],
                response,
                created_at: ctx.now(),
            })
        );
    }
}
