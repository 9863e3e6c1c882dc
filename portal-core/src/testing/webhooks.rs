//! The [`WebhookStore`] conformance suite: endpoints scoped by org, deliveries fanned out
//! by the outbox in the event's transaction, claims with leases, the attempt log, replay
//! and disabling.
//!
//! Every clause takes a tenancy store and a webhook store on one database (the tenancy
//! store's audited changes must fan out to the webhook store's endpoints). Run them all
//! with [`webhook_store_conformance!`](crate::webhook_store_conformance), whose factory
//! returns `Option<(tenancy, webhooks)>`.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use secrecy::SecretString;

use crate::audit::{AuditEvent, actions};
use crate::ids::{AuditEventId, OrgId, RandomIds, WebhookAttemptId, WebhookEndpointId};
use crate::store::{Conflict, StoreError};
use crate::tenancy::TenancyStore;
use crate::testing::audit::audit_event;
use crate::testing::tenancy::{at, invitation_value, new_org, new_user, roles_of};
use crate::webhooks::{
    AttemptStatus, Delivery, DeliveryAttempt, DisableRule, EndpointSecrets, EndpointUrl, EventTypes, FinishedAttempt,
    NextStep, Replay, UrlPolicy, WebhookEndpoint, WebhookSecret, WebhookStore, message_id,
};

static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

/// An endpoint of `org` taking `types` (empty: every event), enabled or not.
pub fn endpoint_value(org: OrgId, types: &[&str], enabled: bool) -> WebhookEndpoint {
    let names: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
    WebhookEndpoint {
        id: WebhookEndpointId::generate(&*IDS, at(0)),
        org,
        url: EndpointUrl::parse("https://hooks.example.com/portal?x=1", &UrlPolicy::default()).unwrap(),
        description: "conformance".to_owned(),
        event_types: EventTypes::parse(&names, &[]).unwrap(),
        enabled,
        secrets: EndpointSecrets {
            current: WebhookSecret::from_text(&SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap(),
            previous: Some((
                WebhookSecret::from_text(&SecretString::from("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")).unwrap(),
                at(86_400),
            )),
        },
        created_at: at(0),
        updated_at: at(0),
        failing_since: None,
    }
}

/// The event an endpoint change writes: a catalog webhook event of `org` at `seconds`.
fn change_event(org: OrgId, seconds: i64) -> AuditEvent {
    let mut event = audit_event(org);
    event.id = AuditEventId::generate(&*IDS, at(seconds));
    event.action = actions::WEBHOOK_ENDPOINT_UPDATED.action();
    event.occurred_at = at(seconds);
    event
}

/// The event an endpoint's creation writes.
fn created_event(org: OrgId, seconds: i64) -> AuditEvent {
    let mut event = change_event(org, seconds);
    event.action = actions::WEBHOOK_ENDPOINT_CREATED.action();
    event
}

/// What endpoints of the clauses below listen to: endpoint updates only.
const UPDATES: &[&str] = &["webhook.endpoint_updated"];

fn attempt_of(delivery: &Delivery, status: AttemptStatus, seconds: i64) -> DeliveryAttempt {
    DeliveryAttempt {
        id: WebhookAttemptId::generate(&*IDS, at(seconds)),
        org: delivery.org,
        endpoint: delivery.endpoint,
        message: delivery.message(),
        attempt: delivery.attempt,
        attempted_at: at(seconds),
        status,
        http_status: (status != AttemptStatus::Unreachable).then_some(if status == AttemptStatus::Delivered {
            200
        } else {
            500
        }),
        latency_ms: 12,
        excerpt: "ok ✓".to_owned(),
    }
}

async fn claim(store: &dyn WebhookStore, now: i64) -> Vec<Delivery> {
    store.claim_due(at(now), at(now + 60), 100).await.expect("claims read")
}

fn keys(deliveries: &[Delivery]) -> BTreeSet<(WebhookEndpointId, AuditEventId)> {
    deliveries.iter().map(|d| (d.endpoint, d.event.id)).collect()
}

/// Endpoints read back equal (secrets and rotation window included), are listed by org in
/// id order and paged, and another org's id finds nothing to read, change or delete; a
/// duplicate id is refused.
pub async fn endpoints_are_scoped_to_their_org(_tenancy: &dyn TenancyStore, store: &dyn WebhookStore) {
    let (org, other) = (OrgId::generate(&*IDS, at(0)), OrgId::generate(&*IDS, at(0)));
    let first = endpoint_value(org, &["member.removed", "invitation.created"], true);
    let second = endpoint_value(org, &[], false);
    store.create_endpoint(&first, &created_event(org, 1)).await.unwrap();
    store.create_endpoint(&second, &created_event(org, 2)).await.unwrap();
    assert_eq!(store.get_endpoint(org, first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(
        store.get_endpoint(other, first.id).await.unwrap(),
        None,
        "another org's id finds nothing"
    );
    assert_eq!(
        store.list_endpoints(org, None, 10).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(
        store.list_endpoints(org, Some(first.id), 10).await.unwrap(),
        vec![second.clone()]
    );
    assert_eq!(store.list_endpoints(org, None, 1).await.unwrap(), vec![first.clone()]);
    assert!(store.list_endpoints(other, None, 10).await.unwrap().is_empty());

    let dup = store.create_endpoint(&first, &change_event(org, 3)).await.unwrap_err();
    assert!(
        matches!(dup, StoreError::Conflict(Conflict::AlreadyExists { .. })),
        "{dup:?}"
    );

    let mut moved = first.clone();
    moved.org = other;
    let err = store
        .update_endpoint(&moved, &change_event(other, 4))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                entity: "webhook_endpoint"
            }
        ),
        "{err:?}"
    );
    let err = store
        .delete_endpoint(other, first.id, &change_event(other, 5))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                entity: "webhook_endpoint"
            }
        ),
        "{err:?}"
    );

    let mut changed = first.clone();
    changed.url = EndpointUrl::parse("https://other.example.com/h", &UrlPolicy::default()).unwrap();
    changed.description = "changed".to_owned();
    changed.event_types = EventTypes::default();
    changed.enabled = false;
    changed.secrets.previous = None;
    changed.updated_at = at(6);
    changed.failing_since = Some(at(5));
    store.update_endpoint(&changed, &change_event(org, 6)).await.unwrap();
    assert_eq!(store.get_endpoint(org, first.id).await.unwrap(), Some(changed));

    store
        .delete_endpoint(org, first.id, &change_event(org, 7))
        .await
        .unwrap();
    assert_eq!(store.get_endpoint(org, first.id).await.unwrap(), None);
    assert_eq!(store.list_endpoints(org, None, 10).await.unwrap(), vec![second]);
}

/// An audited change of the tenancy store becomes, in its transaction, one pending
/// delivery for each enabled endpoint of its org whose filter takes its action, and none
/// for a disabled endpoint, another action's filter or another org; an endpoint's own
/// change events fan out too.
pub async fn audited_changes_fan_out_to_matching_endpoints(tenancy: &dyn TenancyStore, store: &dyn WebhookStore) {
    let owner = new_user(tenancy).await;
    let org = new_org(tenancy, &owner).await;
    let other = new_org(tenancy, &owner).await;
    let all = endpoint_value(org.id, &[], true);
    let invitations = endpoint_value(org.id, &["invitation.created"], true);
    let removals = endpoint_value(org.id, &["member.removed"], true);
    let disabled = endpoint_value(org.id, &[], false);
    let elsewhere = endpoint_value(other.id, &[], true);
    for (i, endpoint) in [&all, &invitations, &removals, &disabled, &elsewhere]
        .into_iter()
        .enumerate()
    {
        let seconds = i64::try_from(i).unwrap() + 1;
        store
            .create_endpoint(endpoint, &created_event(endpoint.org, seconds))
            .await
            .unwrap();
    }
    let user = new_user(tenancy).await;
    let mut invite = audit_event(org.id);
    invite.action = actions::INVITATION_CREATED.action();
    let invitation = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    tenancy.create_invitation(&invitation, &invite).await.unwrap();

    let claimed = claim(store, 10_000).await;
    let of_invite: BTreeSet<WebhookEndpointId> = claimed
        .iter()
        .filter(|d| d.event.id == invite.id)
        .map(|d| d.endpoint)
        .collect();
    assert_eq!(of_invite, BTreeSet::from([all.id, invitations.id]));
    let delivery = claimed
        .iter()
        .find(|d| d.event.id == invite.id && d.endpoint == all.id)
        .unwrap();
    assert_eq!(delivery.event, invite, "the delivery carries the event as written");
    assert_eq!(delivery.attempt, 1);
    assert_eq!(delivery.url, all.url);
    assert_eq!(delivery.secrets, all.secrets);
    assert_eq!(delivery.message(), message_id(invite.id));
    assert_eq!(
        claimed.iter().filter(|d| d.endpoint == all.id).count(),
        5,
        "the catch-all endpoint took its own creation event, the four later ones of its org, and the invitation"
    );
    assert!(
        claimed
            .iter()
            .all(|d| d.endpoint != removals.id && d.endpoint != disabled.id)
    );
    assert!(
        claimed
            .iter()
            .all(|d| d.event.org == d.org && d.org == if d.endpoint == elsewhere.id { other.id } else { org.id }),
        "no event crosses to another org's endpoint"
    );
}

/// A claim leases its deliveries: they are not claimed again before the lease ends, then
/// come back with the next attempt number and the same message; a finished attempt moves
/// the delivery (retry at a time, done, given up) and is logged in order; an attempt
/// finished after its lease was claimed again changes nothing but the log.
pub async fn claims_lease_and_attempts_move_deliveries(_tenancy: &dyn TenancyStore, store: &dyn WebhookStore) {
    let org = OrgId::generate(&*IDS, at(0));
    let listener = endpoint_value(org, UPDATES, true);
    store.create_endpoint(&listener, &created_event(org, 0)).await.unwrap();
    let watched = endpoint_value(org, &["member.removed"], true);
    store.create_endpoint(&watched, &created_event(org, 1)).await.unwrap();
    let event = change_event(org, 1);
    store.update_endpoint(&watched, &event).await.unwrap();

    let first = claim(store, 100).await;
    assert_eq!(keys(&first), BTreeSet::from([(listener.id, event.id)]));
    assert!(claim(store, 120).await.is_empty(), "leased until 160");
    let again = claim(store, 161).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    assert_eq!(again[0].message(), first[0].message(), "the same webhook-id");

    // The first attempt ends late: its lease was taken over, so it only joins the log.
    let stale = attempt_of(&first[0], AttemptStatus::Delivered, 170);
    assert!(!store.finish_attempt(&stale, NextStep::Done, None).await.unwrap());
    let failed = attempt_of(&again[0], AttemptStatus::Rejected, 171);
    store
        .finish_attempt(&failed, NextStep::RetryAt(at(500)), None)
        .await
        .unwrap();
    assert!(claim(store, 499).await.is_empty(), "not due before its retry time");
    let third = claim(store, 500).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].attempt, 3);
    let done = attempt_of(&third[0], AttemptStatus::Delivered, 501);
    store.finish_attempt(&done, NextStep::Done, None).await.unwrap();
    assert!(claim(store, 100_000).await.is_empty(), "a delivered message is done");

    let log = store.list_attempts(org, listener.id, None, 10).await.unwrap();
    assert_eq!(log, vec![stale.clone(), failed.clone(), done.clone()]);
    assert_eq!(
        store.list_attempts(org, listener.id, Some(stale.id), 1).await.unwrap(),
        vec![failed]
    );
    let other = OrgId::generate(&*IDS, at(0));
    assert!(
        store
            .list_attempts(other, listener.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_attempts(org, watched.id, None, 10).await.unwrap().is_empty());

    // Given up: never claimed again.
    let next = change_event(org, 600);
    let mut touched = watched.clone();
    touched.updated_at = at(600);
    store.update_endpoint(&touched, &next).await.unwrap();
    let claimed = claim(store, 700).await;
    let mine: Vec<&Delivery> = claimed.iter().filter(|d| d.event.id == next.id).collect();
    assert_eq!(mine.len(), 1, "only the listener takes updates");
    for delivery in mine {
        let attempt = attempt_of(delivery, AttemptStatus::Unreachable, 701);
        store.finish_attempt(&attempt, NextStep::GiveUp, None).await.unwrap();
    }
    assert!(
        claim(store, 1_000_000).await.is_empty(),
        "a given-up message waits for a replay"
    );
}

/// Two claims at once never take the same delivery.
pub async fn concurrent_claims_never_share_a_delivery(_tenancy: &dyn TenancyStore, store: &dyn WebhookStore) {
    let org = OrgId::generate(&*IDS, at(0));
    let listener = endpoint_value(org, UPDATES, true);
    store.create_endpoint(&listener, &created_event(org, 0)).await.unwrap();
    let mut touched = listener.clone();
    for i in 1..=20 {
        touched.updated_at = at(i);
        store.update_endpoint(&touched, &change_event(org, i)).await.unwrap();
    }
    let (a, b) = futures::join!(
        store.claim_due(at(100), at(200), 12),
        store.claim_due(at(100), at(200), 12)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 20, "every due delivery claimed once");
    assert!(keys(&a).is_disjoint(&keys(&b)), "no delivery claimed twice");
}

/// `finish_attempts` records a claim's attempts as `finish_attempt` would, each moving its
/// delivery (done, retry at a time, given up) and joining the log in order; nothing to
/// record is fine. A batch is all or nothing: one whose **last** attempt cannot be
/// recorded (its id is logged already, or the batch gives an id twice) is an error and
/// records none of the attempts before it either: no attempt joins the log, the
/// endpoint's failing state stays as it was, and the delivery they carried is claimed
/// again once its lease ends. (A store that records attempt by attempt and stops at the
/// first failure fails this clause; `portal-adapters/tests/conformance` shows it.)
pub async fn finished_attempts_are_recorded_together(_tenancy: &dyn TenancyStore, store: &dyn WebhookStore) {
    let org = OrgId::generate(&*IDS, at(0));
    let listener = endpoint_value(org, UPDATES, true);
    store.create_endpoint(&listener, &created_event(org, 0)).await.unwrap();
    let mut touched = listener.clone();
    for i in 1..=3 {
        touched.updated_at = at(i);
        store.update_endpoint(&touched, &change_event(org, i)).await.unwrap();
    }
    let mine = |claimed: Vec<Delivery>| -> Vec<Delivery> {
        let mut mine: Vec<Delivery> = claimed.into_iter().filter(|d| d.org == org).collect();
        mine.sort_by_key(|d| d.event.occurred_at);
        mine
    };
    let claimed = mine(claim(store, 100).await);
    assert_eq!(claimed.len(), 3);
    let finished = vec![
        FinishedAttempt {
            attempt: attempt_of(&claimed[0], AttemptStatus::Delivered, 101),
            next: NextStep::Done,
            disable: None,
        },
        FinishedAttempt {
            attempt: attempt_of(&claimed[1], AttemptStatus::Rejected, 102),
            next: NextStep::RetryAt(at(500)),
            disable: None,
        },
        FinishedAttempt {
            attempt: attempt_of(&claimed[2], AttemptStatus::Unreachable, 103),
            next: NextStep::GiveUp,
            disable: None,
        },
    ];
    assert_eq!(store.finish_attempts(&finished).await.unwrap(), vec![false; 3]);
    assert!(store.finish_attempts(&[]).await.unwrap().is_empty());
    let logged: Vec<DeliveryAttempt> = finished.iter().map(|f| f.attempt.clone()).collect();
    assert_eq!(store.list_attempts(org, listener.id, None, 10).await.unwrap(), logged);
    assert!(
        mine(claim(store, 499).await).is_empty(),
        "done, given up, or not due yet"
    );
    let retry = mine(claim(store, 500).await);
    assert_eq!(keys(&retry), BTreeSet::from([(listener.id, claimed[1].event.id)]));
    assert_eq!(retry[0].attempt, 2);

    let failing_since = store
        .get_endpoint(org, listener.id)
        .await
        .unwrap()
        .expect("the endpoint is there")
        .failing_since;
    assert_eq!(failing_since, Some(at(102)), "failing since the first failure");
    let delivered = FinishedAttempt {
        attempt: attempt_of(&retry[0], AttemptStatus::Delivered, 501),
        next: NextStep::Done,
        disable: None,
    };
    // The attempt that cannot be recorded comes last, so a store that records attempt by
    // attempt would have recorded the first (and cleared the failing state) before it.
    let refused = [
        [delivered.clone(), finished[0].clone()],
        [delivered.clone(), delivered.clone()],
    ];
    for (i, batch) in refused.iter().enumerate() {
        assert!(
            store.finish_attempts(batch).await.is_err(),
            "batch {i}: its last attempt id is taken"
        );
        assert_eq!(
            store.list_attempts(org, listener.id, None, 10).await.unwrap(),
            logged,
            "batch {i}: nothing of the refused batch is logged"
        );
        assert_eq!(
            store
                .get_endpoint(org, listener.id)
                .await
                .unwrap()
                .unwrap()
                .failing_since,
            failing_since,
            "batch {i}: the delivered attempt before the failure did not clear the failing state"
        );
    }
    let again = mine(claim(store, 561).await);
    assert_eq!(
        keys(&again),
        keys(&retry),
        "its delivery was not moved: claimed again after the lease"
    );
    assert_eq!(again[0].attempt, 3);
}

/// A replay queues one message (or a time range's settled messages) again, due at once
/// with a fresh schedule; a message the endpoint never had and another org's endpoint are
/// not found.
pub async fn replays_queue_messages_again(_tenancy: &dyn TenancyStore, store: &dyn WebhookStore) {
    let org = OrgId::generate(&*IDS, at(0));
    let listener = endpoint_value(org, UPDATES, true);
    store.create_endpoint(&listener, &created_event(org, 0)).await.unwrap();
    let mut touched = listener.clone();
    let events: Vec<AuditEvent> = (1..=3).map(|i| change_event(org, i * 10)).collect();
    for event in &events {
        store.update_endpoint(&touched, event).await.unwrap();
        touched.updated_at = event.occurred_at;
    }
    for delivery in claim(store, 100).await {
        let attempt = attempt_of(&delivery, AttemptStatus::Delivered, 101);
        store.finish_attempt(&attempt, NextStep::Done, None).await.unwrap();
    }
    assert_eq!(
        store
            .replay(org, listener.id, Replay::Message(message_id(events[1].id)), at(200))
            .await
            .unwrap(),
        1
    );
    let replayed = claim(store, 200).await;
    assert_eq!(keys(&replayed), BTreeSet::from([(listener.id, events[1].id)]));
    assert_eq!(replayed[0].attempt, 1, "a replay starts a fresh schedule");

    let count = store
        .replay(
            org,
            listener.id,
            Replay::Range {
                since: at(10),
                until: at(30),
            },
            at(250),
        )
        .await
        .unwrap();
    assert_eq!(
        count, 1,
        "the range's settled message; the one in flight is not settled"
    );
    assert_eq!(
        keys(&claim(store, 250).await),
        BTreeSet::from([(listener.id, events[0].id)])
    );

    let unknown = store
        .replay(
            org,
            listener.id,
            Replay::Message(message_id(AuditEventId::generate(&*IDS, at(0)))),
            at(400),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            unknown,
            StoreError::NotFound {
                entity: "webhook_message"
            }
        ),
        "{unknown:?}"
    );
    let other = OrgId::generate(&*IDS, at(0));
    let foreign = store
        .replay(other, listener.id, Replay::Message(message_id(events[0].id)), at(400))
        .await
        .unwrap_err();
    assert!(
        matches!(
            foreign,
            StoreError::NotFound {
                entity: "webhook_endpoint"
            }
        ),
        "{foreign:?}"
    );
}

/// An endpoint failing since before the disable rule's time is disabled with the rule's
/// event (which fans out like any other); one failing more recently is not; a success
/// clears its failing state; a disabled endpoint's deliveries are not claimed.
pub async fn sustained_failure_disables_the_endpoint(_tenancy: &dyn TenancyStore, store: &dyn WebhookStore) {
    let org = OrgId::generate(&*IDS, at(0));
    let failing = endpoint_value(org, UPDATES, true);
    store.create_endpoint(&failing, &created_event(org, 0)).await.unwrap();
    let witness = endpoint_value(org, &["member.removed"], true);
    store.create_endpoint(&witness, &created_event(org, 1)).await.unwrap();
    let mut touched = witness.clone();
    touched.updated_at = at(2);
    store.update_endpoint(&touched, &change_event(org, 2)).await.unwrap();
    store.update_endpoint(&touched, &change_event(org, 3)).await.unwrap();

    let claimed = claim(store, 10).await;
    let mine: Vec<&Delivery> = claimed.iter().filter(|d| d.endpoint == failing.id).collect();
    assert_eq!(mine.len(), 2, "the witness's two updates");
    let rule = |seconds: i64| DisableRule {
        before: at(seconds),
        event: {
            let mut e = change_event(org, seconds + 1_000);
            e.action = actions::WEBHOOK_ENDPOINT_DISABLED.action();
            e
        },
    };
    let first = attempt_of(mine[0], AttemptStatus::Rejected, 20);
    let early = rule(19);
    assert!(
        !store
            .finish_attempt(&first, NextStep::RetryAt(at(30)), Some(early.clone()))
            .await
            .unwrap(),
        "failing since 20, not before 19"
    );
    let stored = store.get_endpoint(org, failing.id).await.unwrap().unwrap();
    assert_eq!(stored.failing_since, Some(at(20)));
    assert!(stored.enabled);

    let second = attempt_of(mine[1], AttemptStatus::Unreachable, 40);
    let late = rule(25);
    assert!(
        store
            .finish_attempt(&second, NextStep::RetryAt(at(50)), Some(late.clone()))
            .await
            .unwrap()
    );
    let stored = store.get_endpoint(org, failing.id).await.unwrap().unwrap();
    assert!(!stored.enabled, "disabled after failing since 20 < 25");
    assert!(
        claim(store, 100_000).await.iter().all(|d| d.endpoint != failing.id),
        "a disabled endpoint's deliveries wait"
    );

    let ok = endpoint_value(org, UPDATES, true);
    store.create_endpoint(&ok, &created_event(org, 3)).await.unwrap();
    let mut touched = ok.clone();
    touched.updated_at = at(4);
    store.update_endpoint(&touched, &change_event(org, 4)).await.unwrap();
    let claimed = claim(store, 1_000_000).await;
    let delivery = claimed.iter().find(|d| d.endpoint == ok.id).unwrap();
    let failed = attempt_of(delivery, AttemptStatus::Rejected, 5);
    store
        .finish_attempt(&failed, NextStep::RetryAt(at(6)), None)
        .await
        .unwrap();
    assert_eq!(
        store.get_endpoint(org, ok.id).await.unwrap().unwrap().failing_since,
        Some(at(5))
    );
    let again = claim(store, 2_000_000).await;
    let delivery = again.iter().find(|d| d.endpoint == ok.id).unwrap();
    let success = attempt_of(delivery, AttemptStatus::Delivered, 7);
    store.finish_attempt(&success, NextStep::Done, None).await.unwrap();
    assert_eq!(
        store.get_endpoint(org, ok.id).await.unwrap().unwrap().failing_since,
        None
    );
}

/// Deleting an endpoint drops its pending deliveries and its attempt log.
pub async fn deleting_an_endpoint_drops_its_deliveries(_tenancy: &dyn TenancyStore, store: &dyn WebhookStore) {
    let org = OrgId::generate(&*IDS, at(0));
    let listener = endpoint_value(org, UPDATES, true);
    store.create_endpoint(&listener, &created_event(org, 0)).await.unwrap();
    store.update_endpoint(&listener, &change_event(org, 1)).await.unwrap();
    let claimed = claim(store, 10).await;
    assert_eq!(claimed.len(), 1);
    let attempt = attempt_of(&claimed[0], AttemptStatus::Rejected, 11);
    store
        .finish_attempt(&attempt, NextStep::RetryAt(at(12)), None)
        .await
        .unwrap();
    store
        .delete_endpoint(org, listener.id, &change_event(org, 13))
        .await
        .unwrap();
    assert!(claim(store, 1_000).await.iter().all(|d| d.endpoint != listener.id));
    assert!(
        store
            .list_attempts(org, listener.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Expands to one `#[tokio::test]` per webhook store clause. The factory is a future of
/// `Option<(tenancy, webhooks)>`, both on one database; `None` skips the suite.
///
/// The rule starting with `@` is internal.
#[macro_export]
macro_rules! webhook_store_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some((tenancy, webhooks)) = $factory.await else {
                return;
            };
            $crate::testing::webhooks::$clause(&tenancy, &webhooks).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::webhook_store_conformance! { @tests ($factory)
            endpoints_are_scoped_to_their_org,
            audited_changes_fan_out_to_matching_endpoints,
            claims_lease_and_attempts_move_deliveries,
            concurrent_claims_never_share_a_delivery,
            finished_attempts_are_recorded_together,
            replays_queue_messages_again,
            sustained_failure_disables_the_endpoint,
            deleting_an_endpoint_drops_its_deliveries,
        }
    };
}
