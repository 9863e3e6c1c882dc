//! The `WorkflowStore` conformance suite: one function per clause of the port's contract.
//!
//! Every function takes a store, makes the instances it needs in a fresh org with fresh
//! ids, and panics with a message naming the clause if the store breaks it. Run them all
//! with [`workflow_store_conformance!`](crate::workflow_store_conformance); the list of
//! clauses is in that macro. The store needs no tenancy data: the workflow store keeps
//! no foreign keys to organizations or users.

use std::sync::LazyLock;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::audit::{ActorKind, AuditActor, AuditContext, AuditEvent, AuditTarget, CatalogEntry, actions};
use crate::context::{IdempotencyKey, Principal};
use crate::ids::{AuditEventId, OrgId, RandomIds, RequestId, UserId, WorkflowId};
use crate::store::{Conflict, StoreError};
use crate::workflow::{
    Applied, CreateRecord, Delegation, EntryKind, HistoryEntry, IdempotencyRecord, Instance, ListFilter,
    TransitionRecord, WorkflowStore,
};

static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

fn t0() -> OffsetDateTime {
    datetime!(2030-03-01 09:30:00.123_456 UTC)
}

/// A fresh org id.
pub fn new_org() -> OrgId {
    OrgId::generate(&*IDS, t0())
}

/// A fresh user principal.
pub fn new_user() -> Principal {
    Principal::User(UserId::generate(&*IDS, t0()))
}

/// An instance of `definition` in `state` at version 1 in `org`, with a fresh id.
pub fn instance_value(org: OrgId, definition: &str, state: &str) -> Instance {
    Instance {
        id: WorkflowId::generate(&*IDS, t0()),
        org,
        definition: definition.to_owned(),
        definition_version: 1,
        state: state.to_owned(),
        version: 1,
        assignee: None,
        payload: serde_json::json!({ "subject": "printer on fire", "n": 1 }),
        created_by: new_user(),
        created_at: t0(),
        updated_at: t0(),
        state_entered_at: t0(),
        due_at: None,
        votes: Vec::new(),
    }
}

/// The customer audit event `entry` (a `workflow.*` action) about `instance`, with a
/// fresh id, at the instance's `updated_at`: what the suites hand every store write.
pub fn outbox_event(instance: &Instance, entry: CatalogEntry) -> AuditEvent {
    let when = instance.updated_at;
    AuditEvent {
        id: AuditEventId::generate(&*IDS, when),
        org: instance.org,
        action: entry.action(),
        version: entry.version,
        actor: AuditActor {
            id: instance.created_by.to_string(),
            kind: ActorKind::User,
            name: Some("Grace Hopper".to_owned()),
        },
        targets: vec![AuditTarget::new("workflow", instance.id)],
        context: AuditContext {
            request_id: RequestId::generate(&*IDS, when),
            client_request_id: None,
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("conformance/1.0".to_owned()),
        },
        occurred_at: when,
        metadata: serde_json::json!({
            "definition": instance.definition, "state": instance.state, "version": instance.version,
        }),
    }
}

fn created_entry(instance: &Instance) -> HistoryEntry {
    HistoryEntry {
        version: 1,
        kind: EntryKind::Created,
        transition: String::new(),
        from: String::new(),
        to: instance.state.clone(),
        actor: instance.created_by.clone(),
        at: instance.created_at,
        input: serde_json::Value::Null,
        request_id: RequestId::generate(&*IDS, t0()),
        idempotency_key: None,
    }
}

/// The record creating `instance`, with its creation entry and its event, unkeyed.
pub fn creation(instance: &Instance) -> CreateRecord {
    CreateRecord {
        instance: instance.clone(),
        history: created_entry(instance),
        event: outbox_event(instance, actions::WORKFLOW_CREATED),
        idempotency: None,
    }
}

/// Creates `instance` with its creation entry and its event.
async fn create(store: &dyn WorkflowStore, instance: &Instance) {
    committed(
        store.create(&creation(instance)).await.expect("create succeeds"),
        "create",
    );
}

/// A change moving `current` to `to` at the next version, by `actor`, with an optional key.
pub fn change(current: &Instance, to: &str, actor: &Principal, key: Option<(&str, u8)>) -> TransitionRecord {
    let at = current.updated_at + Duration::minutes(1);
    let next = Instance {
        state: to.to_owned(),
        version: current.version + 1,
        updated_at: at,
        state_entered_at: at,
        ..current.clone()
    };
    let key = key.map(|(key, fingerprint)| (IdempotencyKey::new(key).unwrap(), fingerprint));
    TransitionRecord {
        expected_version: current.version,
        history: HistoryEntry {
            version: next.version,
            kind: EntryKind::transition(),
            transition: format!("to_{to}"),
            from: current.state.clone(),
            to: to.to_owned(),
            actor: actor.clone(),
            at,
            input: serde_json::json!({ "note": "n" }),
            request_id: RequestId::generate(&*IDS, t0()),
            idempotency_key: key.as_ref().map(|(k, _)| k.clone()),
        },
        event: outbox_event(&next, actions::WORKFLOW_TRANSITIONED),
        idempotency: key.map(|(key, fingerprint)| IdempotencyRecord {
            principal: actor.clone(),
            key,
            fingerprint: [fingerprint; 32],
            response: next.clone(),
            created_at: at,
        }),
        next,
    }
}

/// The instance of a commit; panics on a replay.
pub(crate) fn committed(applied: Applied, what: &str) -> Instance {
    match applied {
        Applied::Committed(instance) => instance,
        Applied::Replayed(record) => panic!("{what}: expected a commit, got a replay of {record:?}"),
    }
}

/// The error of `result`; panics on success.
pub(crate) fn expect_err<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) -> StoreError {
    match result {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(err) => err,
    }
}

async fn all(store: &dyn WorkflowStore, org: OrgId, filter: &ListFilter) -> Vec<Instance> {
    store.list(org, filter, None, 1000).await.unwrap()
}

// ---------------------------------------------------------------------------------------
// Create and get
// ---------------------------------------------------------------------------------------

/// `create` stores the instance and its creation history entry together; `get` reads
/// the instance back exactly.
pub async fn create_stores_the_instance_and_its_history(store: &dyn WorkflowStore) {
    let org = new_org();
    let mut instance = instance_value(org, "support_case", "open");
    instance.assignee = Some(UserId::generate(&*IDS, t0()));
    instance.due_at = Some(t0() + Duration::days(1));
    let entry = created_entry(&instance);
    let record = CreateRecord {
        instance: instance.clone(),
        history: entry.clone(),
        event: outbox_event(&instance, actions::WORKFLOW_CREATED),
        idempotency: None,
    };
    assert_eq!(
        store.create(&record).await.expect("create succeeds"),
        Applied::Committed(instance.clone()),
        "create answers the instance"
    );

    assert_eq!(
        store.get(org, instance.id).await.unwrap(),
        Some(instance.clone()),
        "get reads it back"
    );
    assert_eq!(
        store.history(org, instance.id, None, 10_000).await.unwrap(),
        vec![entry],
        "the creation entry is stored"
    );
}

/// `get` and `history` are scoped to the instance's org: asked in another org
/// they answer `None` and empty lists.
pub async fn get_is_scoped_to_its_org(store: &dyn WorkflowStore) {
    let org = new_org();
    let instance = instance_value(org, "support_case", "open");
    create(store, &instance).await;
    let other = new_org();
    assert_eq!(
        store.get(other, instance.id).await.unwrap(),
        None,
        "another org's get is None"
    );
    assert!(
        store
            .history(other, instance.id, None, 10_000)
            .await
            .unwrap()
            .is_empty(),
        "history is scoped"
    );
    assert_eq!(
        store.get(org, WorkflowId::generate(&*IDS, t0())).await.unwrap(),
        None,
        "an unknown id is None"
    );
}

/// `create` with an id that exists fails with [`Conflict::AlreadyExists`] (`workflow`)
/// and leaves the first instance as it was.
pub async fn create_with_a_duplicate_id_is_already_exists(store: &dyn WorkflowStore) {
    let org = new_org();
    let first = instance_value(org, "support_case", "open");
    create(store, &first).await;
    let second = Instance {
        state: "triaged".to_owned(),
        ..first.clone()
    };
    let err = expect_err(store.create(&creation(&second)).await, "create with a duplicate id");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "workflow" })
        ),
        "expected AlreadyExists, got {err:?}"
    );
    assert_eq!(
        store.get(org, first.id).await.unwrap(),
        Some(first.clone()),
        "the first is unchanged"
    );
    assert_eq!(
        store.history(org, first.id, None, 10_000).await.unwrap().len(),
        1,
        "no second creation entry"
    );
}

// ---------------------------------------------------------------------------------------
// Apply
// ---------------------------------------------------------------------------------------

/// `apply` at the current version writes the new instance, appends the history entry,
/// and returns the instance as committed.
pub async fn apply_commits_the_instance_and_its_history_together(store: &dyn WorkflowStore) {
    let org = new_org();
    let instance = instance_value(org, "support_case", "open");
    create(store, &instance).await;
    let actor = new_user();
    let record = change(&instance, "triaged", &actor, None);
    let now = committed(store.apply(&record).await.expect("apply succeeds"), "apply");

    assert_eq!(now, record.next, "apply returns the committed instance");
    assert_eq!(
        store.get(org, instance.id).await.unwrap(),
        Some(record.next.clone()),
        "get sees it"
    );
    let history = store.history(org, instance.id, None, 10_000).await.unwrap();
    assert_eq!(history.len(), 2, "one entry more");
    assert_eq!(history[1], record.history, "the entry is stored as given");
}

/// `apply` with a stale `expected_version` fails with [`Conflict::Version`] carrying the
/// current version, and writes nothing: no state, history or idempotency record.
pub async fn apply_with_a_stale_version_is_a_version_conflict_and_writes_nothing(store: &dyn WorkflowStore) {
    let org = new_org();
    let instance = instance_value(org, "support_case", "open");
    create(store, &instance).await;
    let actor = new_user();
    let first = change(&instance, "triaged", &actor, None);
    let after_first = committed(store.apply(&first).await.unwrap(), "first apply");

    let stale = change(&instance, "closed", &actor, Some(("stale-key", 7)));
    let err = expect_err(store.apply(&stale).await, "apply at a stale version");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Version {
                expected: 1,
                current: 2
            })
        ),
        "expected Version {{ expected: 1, current: 2 }}, got {err:?}"
    );
    assert_eq!(
        store.get(org, instance.id).await.unwrap(),
        Some(after_first),
        "the state is unchanged"
    );
    assert_eq!(
        store.history(org, instance.id, None, 10_000).await.unwrap().len(),
        2,
        "no history entry"
    );
    let key = IdempotencyKey::new("stale-key").unwrap();
    assert_eq!(
        store.find_idempotency(org, &actor, &key).await.unwrap(),
        None,
        "no idempotency record"
    );
}

/// `apply` to an instance unknown in its org fails with [`StoreError::NotFound`]
/// (`workflow`), also when the id exists in another org.
pub async fn apply_to_an_unknown_instance_is_not_found(store: &dyn WorkflowStore) {
    let org = new_org();
    let instance = instance_value(org, "support_case", "open");
    let actor = new_user();
    let err = expect_err(
        store.apply(&change(&instance, "triaged", &actor, None)).await,
        "unknown",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "workflow" }),
        "got {err:?}"
    );

    create(store, &instance).await;
    let mut elsewhere = change(&instance, "triaged", &actor, None);
    elsewhere.next.org = new_org();
    let err = expect_err(store.apply(&elsewhere).await, "another org");
    assert!(
        matches!(err, StoreError::NotFound { entity: "workflow" }),
        "got {err:?}"
    );
    assert_eq!(
        store.get(org, instance.id).await.unwrap(),
        Some(instance),
        "the instance is unchanged"
    );
}

/// `history` lists entries oldest first, by version, one per committed change, a page at
/// a time: at most `limit`, after the version given.
pub async fn history_is_in_version_order(store: &dyn WorkflowStore) {
    let org = new_org();
    let mut current = instance_value(org, "support_case", "open");
    create(store, &current).await;
    let actor = new_user();
    for state in [
        "triaged",
        "in_progress",
        "waiting_on_customer",
        "in_progress",
        "resolved",
    ] {
        current = committed(
            store.apply(&change(&current, state, &actor, None)).await.unwrap(),
            state,
        );
    }
    let history = store.history(org, current.id, None, 10_000).await.unwrap();
    let versions: Vec<u64> = history.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6], "one entry per version, in order");
    // A page holds at most `limit` entries, after the version given.
    let first = store.history(org, current.id, None, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2],
        "the first page"
    );
    let next = store.history(org, current.id, Some(2), 3).await.unwrap();
    assert_eq!(
        next.iter().map(|e| e.version).collect::<Vec<_>>(),
        [3, 4, 5],
        "after version 2"
    );
    assert!(
        store.history(org, current.id, Some(6), 3).await.unwrap().is_empty(),
        "nothing after the last version"
    );
    let states: Vec<&str> = history.iter().map(|e| e.to.as_str()).collect();
    assert_eq!(
        states,
        [
            "open",
            "triaged",
            "in_progress",
            "waiting_on_customer",
            "in_progress",
            "resolved"
        ],
        "entries in the order they were applied"
    );
}

// ---------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------

/// `apply` with a key the principal already used, with the same fingerprint, returns
/// [`Applied::Replayed`] with the stored record and writes nothing, even though its
/// expected version is now stale (the key is checked before the version).
pub async fn apply_with_a_used_key_and_the_same_fingerprint_replays(store: &dyn WorkflowStore) {
    let org = new_org();
    let instance = instance_value(org, "support_case", "open");
    create(store, &instance).await;
    let actor = new_user();
    let record = change(&instance, "triaged", &actor, Some(("key-1", 1)));
    committed(store.apply(&record).await.unwrap(), "first apply");

    let again = change(&instance, "triaged", &actor, Some(("key-1", 1)));
    match store.apply(&again).await.expect("the retry succeeds") {
        Applied::Replayed(stored) => assert_eq!(Some(stored), record.idempotency, "the stored record"),
        Applied::Committed(instance) => panic!("the retry committed again: {instance:?}"),
    }
    assert_eq!(
        store.history(org, instance.id, None, 10_000).await.unwrap().len(),
        2,
        "no second effect"
    );
    assert_eq!(
        store.get(org, instance.id).await.unwrap(),
        Some(record.next),
        "state as after the first"
    );
}

/// `apply` with a key the principal already used for another fingerprint fails with
/// [`Conflict::IdempotencyKeyReused`] and writes nothing, even at the current version.
pub async fn apply_with_a_used_key_and_another_fingerprint_is_key_reused(store: &dyn WorkflowStore) {
    let org = new_org();
    let instance = instance_value(org, "support_case", "open");
    create(store, &instance).await;
    let actor = new_user();
    let first = committed(
        store
            .apply(&change(&instance, "triaged", &actor, Some(("key-2", 1))))
            .await
            .unwrap(),
        "first apply",
    );
    let other = change(&first, "in_progress", &actor, Some(("key-2", 2)));
    let err = expect_err(store.apply(&other).await, "a reused key");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::IdempotencyKeyReused)),
        "expected IdempotencyKeyReused, got {err:?}"
    );
    assert_eq!(
        store.get(org, instance.id).await.unwrap(),
        Some(first),
        "nothing written"
    );
    assert_eq!(
        store.history(org, instance.id, None, 10_000).await.unwrap().len(),
        2,
        "no history entry"
    );
}

/// Idempotency records are scoped to the org and the principal: another principal, or
/// the same principal in another org, may use the same key; `find_idempotency` reads a
/// record back exactly.
pub async fn idempotency_keys_are_scoped_to_org_and_principal(store: &dyn WorkflowStore) {
    let org = new_org();
    let instance = instance_value(org, "support_case", "open");
    create(store, &instance).await;
    let (ada, bob) = (new_user(), new_user());
    let record = change(&instance, "triaged", &ada, Some(("shared", 1)));
    let after = committed(store.apply(&record).await.unwrap(), "ada");
    let key = IdempotencyKey::new("shared").unwrap();
    assert_eq!(
        store.find_idempotency(org, &ada, &key).await.unwrap(),
        record.idempotency,
        "read back"
    );
    assert_eq!(
        store.find_idempotency(org, &bob, &key).await.unwrap(),
        None,
        "not bob's"
    );
    assert_eq!(
        store.find_idempotency(new_org(), &ada, &key).await.unwrap(),
        None,
        "not in another org"
    );

    let bobs = change(&after, "in_progress", &bob, Some(("shared", 2)));
    committed(store.apply(&bobs).await.expect("bob may use the same key"), "bob");
}

/// Two `apply` calls racing at the same expected version: exactly one commits, the other
/// fails with [`Conflict::Version`]; the history holds one entry for that version.
pub async fn concurrent_applies_at_one_version_commit_once(store: &dyn WorkflowStore) {
    let org = new_org();
    let instance = instance_value(org, "support_case", "open");
    create(store, &instance).await;
    let (ada, bob) = (new_user(), new_user());
    let (a, b) = (
        change(&instance, "triaged", &ada, None),
        change(&instance, "closed", &bob, None),
    );
    let (ra, rb) = futures::join!(store.apply(&a), store.apply(&b));
    let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one commits: {ra:?} / {rb:?}");
    let loser = if ra.is_err() { ra } else { rb };
    assert!(
        matches!(loser, Err(StoreError::Conflict(Conflict::Version { .. }))),
        "the other is a version conflict: {loser:?}"
    );
    assert_eq!(
        store.history(org, instance.id, None, 10_000).await.unwrap().len(),
        2,
        "one entry for version 2"
    );
}

/// Two identical `apply` calls racing under one key: one commits, the other replays its
/// record; there is one effect.
pub async fn concurrent_duplicates_under_one_key_commit_once(store: &dyn WorkflowStore) {
    let org = new_org();
    let instance = instance_value(org, "support_case", "open");
    create(store, &instance).await;
    let actor = new_user();
    let record = change(&instance, "triaged", &actor, Some(("dup", 9)));
    let (ra, rb) = futures::join!(store.apply(&record), store.apply(&record));
    let (ra, rb) = (ra.expect("first succeeds"), rb.expect("second succeeds"));
    let commits = [&ra, &rb].iter().filter(|r| matches!(r, Applied::Committed(_))).count();
    assert_eq!(commits, 1, "exactly one commits: {ra:?} / {rb:?}");
    assert_eq!(
        store.history(org, instance.id, None, 10_000).await.unwrap().len(),
        2,
        "one effect"
    );
}

/// Two different requests racing under one key, on two instances, both at their
/// current version: exactly one commits; the other is
/// [`Conflict::IdempotencyKeyReused`] and leaves its instance and history as they
/// were (the key is claimed in the same atomic step as the rest).
pub async fn concurrent_applies_under_one_key_on_two_instances_commit_once(store: &dyn WorkflowStore) {
    let org = new_org();
    let actor = new_user();
    for round in 0..5 {
        let (x, y) = (
            instance_value(org, "support_case", "open"),
            instance_value(org, "support_case", "open"),
        );
        create(store, &x).await;
        create(store, &y).await;
        let key = format!("shared-{round}");
        let (a, b) = (
            change(&x, "triaged", &actor, Some((&key, 1))),
            change(&y, "triaged", &actor, Some((&key, 2))),
        );
        let (ra, rb) = futures::join!(store.apply(&a), store.apply(&b));
        let wins = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Ok(Applied::Committed(_))))
            .count();
        assert_eq!(wins, 1, "exactly one commits: {ra:?} / {rb:?}");
        let (loser, untouched) = if ra.is_err() { (ra, &x) } else { (rb, &y) };
        assert!(
            matches!(loser, Err(StoreError::Conflict(Conflict::IdempotencyKeyReused))),
            "the other is a reused key: {loser:?}"
        );
        assert_eq!(
            store.get(org, untouched.id).await.unwrap().as_ref(),
            Some(untouched),
            "the loser's instance is unchanged"
        );
        assert_eq!(
            store.history(org, untouched.id, None, 10_000).await.unwrap().len(),
            1,
            "no entry"
        );
    }
}

/// A refused `apply` (here a stale version) stores nothing under its key: the key stays
/// free, and a request under it at the current version commits.
pub async fn a_refused_apply_stores_no_key(store: &dyn WorkflowStore) {
    let org = new_org();
    let instance = instance_value(org, "support_case", "open");
    create(store, &instance).await;
    let actor = new_user();
    let mut stale = change(&instance, "triaged", &actor, Some(("r-5", 1)));
    stale.expected_version = 7;
    let err = expect_err(store.apply(&stale).await, "a stale version");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Version {
                expected: 7,
                current: 1
            })
        ),
        "expected a version conflict, got {err:?}"
    );
    assert_eq!(
        store
            .find_idempotency(org, &actor, &IdempotencyKey::new("r-5").unwrap())
            .await
            .unwrap(),
        None,
        "no record"
    );
    let fresh = change(&instance, "triaged", &actor, Some(("r-5", 2)));
    committed(store.apply(&fresh).await.unwrap(), "the key is free");
}

/// `create` with an idempotency record stores it; a second `create` under the key replays with the same fingerprint (writing nothing,
/// even with another id) and is [`Conflict::IdempotencyKeyReused`] with another.
pub async fn create_with_a_key_records_it_and_replays(store: &dyn WorkflowStore) {
    let org = new_org();
    let actor = new_user();
    let instance = instance_value(org, "support_case", "open");
    let keyed = |instance: &Instance, fingerprint: u8| CreateRecord {
        idempotency: Some(IdempotencyRecord {
            principal: actor.clone(),
            key: IdempotencyKey::new("c-1").unwrap(),
            fingerprint: [fingerprint; 32],
            response: instance.clone(),
            created_at: t0(),
        }),
        ..creation(instance)
    };
    let first = keyed(&instance, 3);
    committed(store.create(&first).await.unwrap(), "keyed create");
    let Some(stored) = first.idempotency.clone() else {
        unreachable!("keyed")
    };
    assert_eq!(
        store
            .find_idempotency(org, &actor, &IdempotencyKey::new("c-1").unwrap())
            .await
            .unwrap()
            .as_ref(),
        Some(&stored),
        "the record is stored"
    );
    let twin = instance_value(org, "support_case", "open");
    assert_eq!(
        store.create(&keyed(&twin, 3)).await.unwrap(),
        Applied::Replayed(stored),
        "the same request replays"
    );
    assert_eq!(store.get(org, twin.id).await.unwrap(), None, "the replay wrote nothing");
    let err = expect_err(store.create(&keyed(&twin, 4)).await, "another request");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::IdempotencyKeyReused)),
        "expected IdempotencyKeyReused, got {err:?}"
    );
    assert_eq!(store.get(org, twin.id).await.unwrap(), None, "nothing written");
}

// ---------------------------------------------------------------------------------------
// List
// ---------------------------------------------------------------------------------------

/// `list` returns an org's instances in id order, `limit` at a time, after a cursor, and
/// never another org's.
pub async fn list_orders_by_id_and_pages_after_a_cursor(store: &dyn WorkflowStore) {
    let org = new_org();
    let mut made = Vec::new();
    for _ in 0..5 {
        let instance = instance_value(org, "support_case", "open");
        create(store, &instance).await;
        made.push(instance);
    }
    create(store, &instance_value(new_org(), "support_case", "open")).await;
    made.sort_by_key(|i| i.id);
    let filter = ListFilter::default();
    assert_eq!(all(store, org, &filter).await, made, "all of the org's, by id");
    let first = store.list(org, &filter, None, 2).await.unwrap();
    assert_eq!(first, made[..2].to_vec(), "the first page");
    let second = store.list(org, &filter, Some(first[1].id), 2).await.unwrap();
    assert_eq!(second, made[2..4].to_vec(), "the page after the cursor");
    let last = store.list(org, &filter, Some(made[4].id), 2).await.unwrap();
    assert!(last.is_empty(), "nothing after the last");
}

/// `list` filters by definitions, state, assignee and due time together, as
/// [`ListFilter::matches`] defines.
pub async fn list_filters_by_definition_state_assignee_and_due(store: &dyn WorkflowStore) {
    let org = new_org();
    let user = UserId::generate(&*IDS, t0());
    let mut case = instance_value(org, "support_case", "open");
    case.assignee = Some(user);
    case.due_at = Some(t0() + Duration::hours(1));
    let mut quote = instance_value(org, "quote_approval", "draft");
    quote.due_at = Some(t0() + Duration::hours(3));
    let other = instance_value(org, "support_case", "triaged");
    for instance in [&case, &quote, &other] {
        create(store, instance).await;
    }
    let ids = |items: Vec<Instance>| items.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let by_def = ListFilter {
        definitions: vec!["quote_approval".to_owned()],
        ..ListFilter::default()
    };
    assert_eq!(ids(all(store, org, &by_def).await), vec![quote.id], "by definition");
    let by_state = ListFilter {
        state: Some("triaged".to_owned()),
        ..ListFilter::default()
    };
    assert_eq!(ids(all(store, org, &by_state).await), vec![other.id], "by state");
    let by_assignee = ListFilter {
        assignee: Some(user),
        ..ListFilter::default()
    };
    assert_eq!(ids(all(store, org, &by_assignee).await), vec![case.id], "by assignee");
    let due = ListFilter {
        due_at_or_before: Some(t0() + Duration::hours(1)),
        ..ListFilter::default()
    };
    assert_eq!(
        ids(all(store, org, &due).await),
        vec![case.id],
        "due at or before, inclusive"
    );
    let both = ListFilter {
        definitions: vec!["support_case".to_owned(), "quote_approval".to_owned()],
        due_at_or_before: Some(t0() + Duration::hours(5)),
        ..ListFilter::default()
    };
    let mut expected = vec![case.id, quote.id];
    expected.sort();
    assert_eq!(
        ids(all(store, org, &both).await),
        expected,
        "several definitions and due"
    );
}

// ---------------------------------------------------------------------------------------
// Delegations
// ---------------------------------------------------------------------------------------

/// `put_delegation` stores a delegation that `find_delegation` reads back, scoped to its
/// org and direction, and a second one between the same members replaces the first.
pub async fn delegations_are_stored_scoped_and_replaced(store: &dyn WorkflowStore) {
    let org = new_org();
    let (ada, bob) = (UserId::generate(&*IDS, t0()), UserId::generate(&*IDS, t0()));
    let first = Delegation {
        org,
        from: ada,
        to: bob,
        starts_at: t0(),
        ends_at: t0() + Duration::days(7),
        created_at: t0(),
    };
    store.put_delegation(&first).await.unwrap();
    assert_eq!(
        store.find_delegation(org, ada, bob).await.unwrap(),
        Some(first.clone()),
        "read back"
    );
    assert_eq!(
        store.find_delegation(org, bob, ada).await.unwrap(),
        None,
        "one direction only"
    );
    assert_eq!(
        store.find_delegation(new_org(), ada, bob).await.unwrap(),
        None,
        "one org only"
    );
    let second = Delegation {
        ends_at: t0() + Duration::days(1),
        ..first
    };
    store.put_delegation(&second).await.unwrap();
    assert_eq!(
        store.find_delegation(org, ada, bob).await.unwrap(),
        Some(second),
        "replaced"
    );
}

/// Runs every clause of the [`WorkflowStore`] conformance suite as its own
/// `#[tokio::test]`, each with a fresh store.
///
/// The argument is an expression evaluating to a future of `Option<S>` where `S:
/// WorkflowStore`; `None` skips the test (for a database whose URL is not set).
///
/// ```ignore
/// mod memory {
///     portal_core::workflow_store_conformance!(async {
///         Some(portal_adapters::memory::InMemoryWorkflowStore::default())
///     });
/// }
/// ```
#[macro_export]
macro_rules! workflow_store_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some(store) = $factory.await else {
                return;
            };
            $crate::testing::workflow::$clause(&store).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::workflow_store_conformance! { @tests ($factory)
            create_stores_the_instance_and_its_history,
            get_is_scoped_to_its_org,
            create_with_a_duplicate_id_is_already_exists,
            apply_commits_the_instance_and_its_history_together,
            apply_with_a_stale_version_is_a_version_conflict_and_writes_nothing,
            apply_to_an_unknown_instance_is_not_found,
            history_is_in_version_order,
            apply_with_a_used_key_and_the_same_fingerprint_replays,
            apply_with_a_used_key_and_another_fingerprint_is_key_reused,
            idempotency_keys_are_scoped_to_org_and_principal,
            concurrent_applies_at_one_version_commit_once,
            concurrent_duplicates_under_one_key_commit_once,
            concurrent_applies_under_one_key_on_two_instances_commit_once,
            a_refused_apply_stores_no_key,
            create_with_a_key_records_it_and_replays,
            list_orders_by_id_and_pages_after_a_cursor,
            list_filters_by_definition_state_assignee_and_due,
            delegations_are_stored_scoped_and_replaced,
        }
    };
}
