//! The `Journal` conformance suite: one function per clause of the port's contract.
//!
//! Every function takes a journal, appends events of fresh orgs, actors and requests, and
//! panics with a message naming the clause if the journal breaks it. Run them all with
//! [`journal_store_conformance!`](crate::journal_store_conformance).

use std::sync::LazyLock;

use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::context::{ClientRequestId, Principal, ServiceName};
use crate::diagnostics::{DiagnosticEvent, EventKind, EventPosition, Journal, Outcome, RequestQuery, TimelineQuery};
use crate::error::ErrorCode;
use crate::ids::{EventId, OrgId, RandomIds, RequestId, UserId};

/// `append` stores every field, and `by_request` reads the events back exactly, in time
/// order whatever the order of appending.
pub async fn append_then_by_request_reads_every_field_back(journal: &dyn Journal) {
    let (org, user, request) = (new_org(), new_user(), new_request());
    let mut rich = event(
        Some(org),
        Some(Principal::User(user)),
        EventKind::WorkflowTransition,
        at(2),
        request,
    );
    rich.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned());
    rich.client_request_id = ClientRequestId::new("client-req:42");
    rich.real_actor = Some(Principal::User(new_user()));
    rich.outcome = Outcome::Rejected;
    rich.code = Some(ErrorCode::TransitionNotAllowed);
    rich.duration = Some(std::time::Duration::from_micros(1_234));
    rich.schema = "error.v1".into();
    rich.detail = json!({ "message": "no", "details": { "state": "open", "available": ["close"] } }).into();
    let first = event(
        Some(org),
        Some(Principal::User(user)),
        EventKind::PermissionDecision,
        at(1),
        request,
    );
    let bare = event(None, None, EventKind::Host, at(3), request);
    journal
        .append(&mut vec![rich.clone(), bare.clone(), first.clone()])
        .await
        .expect("append succeeds");
    assert_eq!(
        all_of(journal, request).await.unwrap(),
        vec![first, rich, bare],
        "the request's events read back exactly, in time order"
    );
}

/// `by_request` returns only that request's events, and nothing for an unknown request.
pub async fn by_request_finds_only_that_request(journal: &dyn Journal) {
    let org = new_org();
    let (a, b) = (new_request(), new_request());
    let ea = event(Some(org), None, EventKind::Query, at(0), a);
    let eb = event(Some(org), None, EventKind::Query, at(0), b);
    journal
        .append(&mut vec![ea.clone(), eb])
        .await
        .expect("append succeeds");
    assert_eq!(all_of(journal, a).await.unwrap(), vec![ea], "only request a");
    assert!(
        all_of(journal, new_request()).await.unwrap().is_empty(),
        "an unknown request has no events"
    );
}

/// `by_request` reads a request page by page: at most `limit` events, in journal order,
/// after the position given; with an org, only that org's events (never org-less ones).
pub async fn by_request_pages_and_filters_by_org(journal: &dyn Journal) {
    let (org, other, request) = (new_org(), new_org(), new_request());
    let mut ours = Vec::new();
    let mut batch = Vec::new();
    for n in 0..7 {
        let e = event(Some(org), None, EventKind::Query, at(n), request);
        ours.push(e.clone());
        batch.push(e);
    }
    batch.push(event(None, None, EventKind::Authentication, at(2), request));
    batch.push(event(Some(other), None, EventKind::Query, at(3), request));
    journal.append(&mut batch).await.expect("append succeeds");
    let first = journal.by_request(&RequestQuery::first(request, 3)).await.unwrap();
    assert_eq!(first.len(), 3, "never more than the limit");
    let mut query = RequestQuery {
        request_id: request,
        org: Some(org),
        after: None,
        limit: 3,
    };
    let mut read = Vec::new();
    loop {
        let page = journal.by_request(&query).await.unwrap();
        assert!(page.len() <= 3, "a page holds at most the limit: {}", page.len());
        let done = page.len() < 3;
        query.after = page.last().map(EventPosition::of);
        read.extend(page);
        if done {
            break;
        }
    }
    assert_eq!(read, ours, "the org's events, each once, in journal order");
    assert_eq!(
        all_of(journal, request).await.unwrap().len(),
        9,
        "without an org: every event"
    );
}

/// Every event of `request` (at most 10,000), as the clauses above read it.
async fn all_of(journal: &dyn Journal, request: RequestId) -> Result<Vec<DiagnosticEvent>, crate::store::StoreError> {
    journal.by_request(&RequestQuery::first(request, 10_000)).await
}

/// `append` skips an event whose id is already stored, so a retried batch is stored once;
/// a successful append leaves the batch empty (the journal took its events); an empty
/// batch is fine.
pub async fn append_skips_events_already_stored(journal: &dyn Journal) {
    let (org, request) = (new_org(), new_request());
    let one = event(Some(org), None, EventKind::Query, at(0), request);
    let two = event(Some(org), None, EventKind::Query, at(1), request);
    journal.append(&mut vec![one.clone()]).await.expect("append succeeds");
    let mut batch = vec![one.clone(), two.clone()];
    journal
        .append(&mut batch)
        .await
        .expect("a batch holding a stored event succeeds");
    assert!(batch.is_empty(), "a successful append takes the batch's events");
    journal.append(&mut Vec::new()).await.expect("an empty batch succeeds");
    assert_eq!(
        all_of(journal, request).await.unwrap(),
        vec![one, two],
        "each event is stored once"
    );
}

/// `timeline` returns the org's events in `[from, until)` only.
pub async fn timeline_filters_by_org_and_window(journal: &dyn Journal) {
    let (org, other) = (new_org(), new_org());
    let request = new_request();
    let events: Vec<DiagnosticEvent> = (0..5)
        .map(|i| event(Some(org), None, EventKind::Query, at(i), request))
        .collect();
    let elsewhere = event(Some(other), None, EventKind::Query, at(2), request);
    let mut batch = events.clone();
    batch.push(elsewhere);
    journal.append(&mut batch).await.expect("append succeeds");
    let found = journal.timeline(&query(Some(org), at(1), at(4))).await.unwrap();
    assert_eq!(
        found,
        events[1..4].to_vec(),
        "from is inclusive, until exclusive, other orgs left out"
    );
}

/// `timeline` with an actor returns the events where it is the actor or the real actor.
pub async fn timeline_filters_by_actor_or_real_actor(journal: &dyn Journal) {
    let (org, user, staff) = (new_org(), new_user(), new_user());
    let request = new_request();
    let own = event(Some(org), Some(Principal::User(user)), EventKind::Query, at(0), request);
    let mut acted_for = event(
        Some(org),
        Some(Principal::User(new_user())),
        EventKind::Query,
        at(1),
        request,
    );
    acted_for.real_actor = Some(Principal::User(user));
    let staff_event = event(
        Some(org),
        Some(Principal::User(staff)),
        EventKind::Query,
        at(2),
        request,
    );
    let by_service = event(Some(org), Some(service()), EventKind::Query, at(3), request);
    journal
        .append(&mut vec![
            own.clone(),
            acted_for.clone(),
            staff_event,
            by_service.clone(),
        ])
        .await
        .expect("append succeeds");
    let mut q = query(Some(org), at(0), at(10));
    q.actor = Some(Principal::User(user));
    assert_eq!(
        journal.timeline(&q).await.unwrap(),
        vec![own, acted_for],
        "actor or real actor"
    );
    q.actor = Some(service());
    assert_eq!(
        journal.timeline(&q).await.unwrap(),
        vec![by_service],
        "a service principal"
    );
    q.org = None;
    q.actor = Some(Principal::User(new_user()));
    assert!(
        journal.timeline(&q).await.unwrap().is_empty(),
        "an actor with no events"
    );
}

/// `timeline` with kinds returns only events of those kinds; with none, every kind.
pub async fn timeline_filters_by_kind(journal: &dyn Journal) {
    let org = new_org();
    let request = new_request();
    let kinds = [
        EventKind::Request,
        EventKind::Authentication,
        EventKind::PermissionDecision,
        EventKind::StorageFault,
        EventKind::Host,
    ];
    let events: Vec<DiagnosticEvent> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| event(Some(org), None, *kind, at(i as i64), request))
        .collect();
    journal.append(&mut events.clone()).await.expect("append succeeds");
    let mut q = query(Some(org), at(0), at(10));
    q.kinds = vec![EventKind::Authentication, EventKind::StorageFault];
    assert_eq!(
        journal.timeline(&q).await.unwrap(),
        vec![events[1].clone(), events[3].clone()],
        "only the kinds asked for"
    );
    q.kinds = Vec::new();
    assert_eq!(journal.timeline(&q).await.unwrap(), events, "every kind");
}

/// `timeline` orders by time then id, honours `limit`, and `after` continues exactly
/// after the position given: pages neither overlap nor skip, even among events of one
/// instant.
pub async fn timeline_pages_in_time_then_id_order(journal: &dyn Journal) {
    let org = new_org();
    let request = new_request();
    // Three events share one instant; their ids decide their order.
    let mut events: Vec<DiagnosticEvent> = [0, 1, 1, 1, 2, 3, 3]
        .into_iter()
        .map(|s| event(Some(org), None, EventKind::Query, at(s), request))
        .collect();
    // Append in reverse, so insertion order cannot pass for journal order.
    let mut reversed: Vec<DiagnosticEvent> = events.iter().rev().cloned().collect();
    journal.append(&mut reversed).await.expect("append succeeds");
    events.sort_by_key(EventPosition::of);
    let mut q = query(Some(org), at(0), at(10));
    q.limit = 3;
    let mut pages = Vec::new();
    loop {
        let page = journal.timeline(&q).await.unwrap();
        assert!(page.len() <= 3, "a page holds at most `limit` events");
        let Some(last) = page.last() else { break };
        q.after = Some(EventPosition::of(last));
        pages.extend(page);
    }
    assert_eq!(pages, events, "the pages together are every event once, in order");
}

/// `purge` removes only that org's events from before `before`, and counts them.
pub async fn purge_removes_only_the_orgs_older_events(journal: &dyn Journal) {
    let (org, other) = (new_org(), new_org());
    let request = new_request();
    let old = event(Some(org), None, EventKind::Query, at(0), request);
    let edge = event(Some(org), None, EventKind::Query, at(5), request);
    let other_old = event(Some(other), None, EventKind::Query, at(0), request);
    journal
        .append(&mut vec![old, edge.clone(), other_old.clone()])
        .await
        .expect("append succeeds");
    assert_eq!(journal.purge(org, at(5)).await.unwrap(), 1, "one event was older");
    assert_eq!(
        all_of(journal, request).await.unwrap(),
        vec![other_old, edge],
        "the event at `before` and the other org's stay"
    );
    assert_eq!(journal.purge(org, at(5)).await.unwrap(), 0, "nothing left to purge");
}

/// Reads agree with a model of the journal (every event appended, each once) in many
/// random cases: events of a few requests, orgs (and none) and actors (and none, and one
/// of two real actors behind some), their times equal, microseconds, seconds or minutes apart,
/// appended in several batches in any order, some events in two batches and some batches
/// twice. Each case then reads every request page by page (every org, and each org), an
/// org's and an actor's timelines over random windows and kinds page by page, purges an
/// org's older events (the count is the model's) and reads every request again.
///
/// A journal that groups events into rows (the SQLite journal keeps a row per request and
/// org, with up to two actors) must answer as one that keeps them one by one: this is the
/// clause that tells.
pub async fn reads_agree_with_a_model_of_overlapping_appends(journal: &dyn Journal) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for case in 0..48 {
        let orgs = [new_org(), new_org()];
        let (user, other, staff, lead) = (
            Principal::User(new_user()),
            Principal::User(new_user()),
            Principal::User(new_user()),
            Principal::User(new_user()),
        );
        let actors = [Some(user.clone()), Some(service()), Some(other.clone()), None];
        let requests = [new_request(), new_request(), new_request()];
        let kinds = [
            EventKind::Authentication,
            EventKind::PermissionDecision,
            EventKind::Query,
        ];
        let mut model: Vec<DiagnosticEvent> = Vec::new();
        for _ in 0..4 + rng.below(36) {
            let seconds = match rng.below(4) {
                0 => 0,
                1 => rng.below(3),
                2 => 50 + rng.below(80),
                _ => 59 + rng.below(5),
            };
            let when = at(seconds as i64) + Duration::microseconds(rng.below(3) as i64);
            let org = (rng.below(6) > 0).then(|| orgs[rng.below(2)]);
            let mut e = event(
                org,
                actors[rng.below(4)].clone(),
                kinds[rng.below(3)],
                when,
                requests[rng.below(3)],
            );
            e.real_actor = match rng.below(8) {
                0 | 1 => Some(staff.clone()),
                2 | 3 => Some(lead.clone()),
                _ => None,
            };
            model.push(e);
        }
        let mut batches: Vec<Vec<DiagnosticEvent>> = vec![Vec::new(); 1 + rng.below(3)];
        for e in &model {
            let n = batches.len();
            batches[rng.below(n)].push(e.clone());
            if rng.below(4) == 0 {
                batches[rng.below(n)].push(e.clone());
            }
        }
        for batch in &mut batches {
            for i in (1..batch.len()).rev() {
                batch.swap(i, rng.below(i + 1));
            }
        }
        for batch in &batches {
            journal.append(&mut batch.clone()).await.expect("append succeeds");
            if rng.below(4) == 0 {
                journal
                    .append(&mut batch.clone())
                    .await
                    .expect("an append again succeeds");
            }
        }
        model.sort_by_key(EventPosition::of);

        let read_requests = |model: &[DiagnosticEvent], limit: usize| {
            let model = model.to_vec();
            async move {
                for request in requests {
                    for org in [None, Some(orgs[0]), Some(orgs[1])] {
                        let mut q = RequestQuery {
                            request_id: request,
                            org,
                            after: None,
                            limit,
                        };
                        let expected: Vec<DiagnosticEvent> = model.iter().filter(|e| q.matches(e)).cloned().collect();
                        let mut read = Vec::new();
                        loop {
                            let page = journal.by_request(&q).await.expect("by_request succeeds");
                            assert!(page.len() <= limit, "case {case}: a page holds at most `limit` events");
                            let Some(last) = page.last() else { break };
                            q.after = Some(EventPosition::of(last));
                            read.extend(page);
                        }
                        assert_eq!(
                            read, expected,
                            "case {case}: request {request}, org {org:?}, pages of {limit}"
                        );
                    }
                }
            }
        };
        read_requests(&model, 1 + rng.below(3)).await;

        for _ in 0..6 {
            let (a, b) = (rng.below(200) as i64 - 10, rng.below(200) as i64 - 10);
            let (from, until) = (at(a.min(b)), at(a.max(b) + 1));
            let limit = 1 + rng.below(3);
            let mut q = query(Some(orgs[rng.below(2)]), from, until);
            q.limit = limit;
            if rng.below(3) == 0 {
                q.org = None;
                q.actor = Some([&user, &other, &staff, &lead][rng.below(4)].clone());
            } else if rng.below(3) == 0 {
                q.actor = actors[rng.below(4)].clone();
            }
            if rng.below(2) == 0 {
                q.kinds = vec![kinds[rng.below(3)]];
            }
            let expected: Vec<DiagnosticEvent> = model.iter().filter(|e| q.matches(e)).cloned().collect();
            let mut read = Vec::new();
            loop {
                let page = journal.timeline(&q).await.expect("timeline succeeds");
                assert!(page.len() <= limit, "case {case}: a page holds at most `limit` events");
                let Some(last) = page.last() else { break };
                q.after = Some(EventPosition::of(last));
                read.extend(page);
            }
            q.after = None;
            assert_eq!(read, expected, "case {case}: timeline {q:?}");
        }

        let before = at(rng.below(200) as i64);
        let purged = model.iter().filter(|e| e.org == Some(orgs[0]) && e.at < before).count();
        let count = journal.purge(orgs[0], before).await.expect("purge succeeds");
        assert_eq!(
            count, purged as u64,
            "case {case}: the purge counts the events it removed"
        );
        model.retain(|e| !(e.org == Some(orgs[0]) && e.at < before));
        read_requests(&model, 100).await;
    }
}

/// A small deterministic generator (xorshift64), so every backend meets the same cases.
struct Rng(u64);

impl Rng {
    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

/// The suite's reference time, with microseconds so a store that loses them fails.
fn t0() -> OffsetDateTime {
    datetime!(2025-06-01 08:30:00.123_456 UTC)
}

fn at(seconds: i64) -> OffsetDateTime {
    t0() + Duration::seconds(seconds)
}

fn new_org() -> OrgId {
    OrgId::generate(&*IDS, t0())
}

fn new_user() -> UserId {
    UserId::generate(&*IDS, t0())
}

fn new_request() -> RequestId {
    RequestId::generate(&*IDS, t0())
}

fn service() -> Principal {
    Principal::Service(ServiceName::new("vendor-console").expect("a valid name"))
}

fn event(
    org: Option<OrgId>,
    actor: Option<Principal>,
    kind: EventKind,
    when: OffsetDateTime,
    request: RequestId,
) -> DiagnosticEvent {
    DiagnosticEvent {
        id: EventId::generate(&*IDS, when),
        at: when,
        request_id: request,
        client_request_id: None,
        trace_id: None,
        org,
        actor,
        real_actor: None,
        kind,
        name: format!("test.{}", kind.as_str()).into(),
        outcome: Outcome::Succeeded,
        code: None,
        duration: None,
        schema: "test.v1".into(),
        detail: json!({ "n": 1 }).into(),
    }
}

fn query(org: Option<OrgId>, from: OffsetDateTime, until: OffsetDateTime) -> TimelineQuery {
    TimelineQuery {
        org,
        actor: None,
        from,
        until,
        kinds: Vec::new(),
        after: None,
        limit: 100,
    }
}

/// Expands to one `#[tokio::test]` per clause of the [`Journal`] contract, each on a
/// fresh journal from `$factory` (a future of `Option<J>`; `None` skips the test). Call it
/// inside a module, since it defines functions named after the clauses:
///
/// ```ignore
/// mod memory {
///     portal_core::journal_store_conformance!(async { Some(MemoryJournal::default()) });
/// }
/// ```
///
/// The rule starting with `@` is internal.
#[macro_export]
macro_rules! journal_store_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some(journal) = $factory.await else {
                return;
            };
            $crate::testing::journal::$clause(&journal).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::journal_store_conformance! { @tests ($factory)
            append_then_by_request_reads_every_field_back,
            by_request_finds_only_that_request,
            by_request_pages_and_filters_by_org,
            append_skips_events_already_stored,
            timeline_filters_by_org_and_window,
            timeline_filters_by_actor_or_real_actor,
            timeline_filters_by_kind,
            timeline_pages_in_time_then_id_order,
            purge_removes_only_the_orgs_older_events,
            reads_agree_with_a_model_of_overlapping_appends,
        }
    };
}
