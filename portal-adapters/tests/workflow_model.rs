//! Model-based property test of workflows on every store (memory, SQLite, Postgres):
//! random interleavings of transitions and votes by several actors, working from views
//! that go stale, with retries under idempotency keys.
//!
//! After every step the store must agree with a model that only follows committed
//! results, and must never show an invalid state, a lost update (a commit from a stale
//! version), a duplicate effect (a retried request changing anything twice, or a history
//! longer than the version), or a history that disagrees with the state.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;
mod workflow_world;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use portal_core::ErrorCode;
use portal_core::audit::{AuditLog, AuditQuery};
use portal_core::tenancy::User;
use portal_core::workflow::catalog::{Quote, SupportCase};
use portal_core::workflow::{EntryKind, Instance, NewInstance, VoteDecision, VoteRequest, WorkflowStore};
use proptest::prelude::*;
use serde_json::json;
use workflow_world::World;

const ACTORS: usize = 6;
const CASE_TRANSITIONS: [&str; 7] = [
    "triage",
    "start",
    "ask_customer",
    "customer_replied",
    "resolve",
    "close",
    "reopen",
];
const QUOTE_TRANSITIONS: [&str; 5] = ["submit", "approve", "reject", "revise", "send"];

#[derive(Debug, Clone)]
enum Op {
    /// The actor refreshes their view of an instance.
    Read { actor: usize, instance: usize },
    /// The actor fires a transition from their view (or, when `legal`, one the current
    /// state allows, as a screen would offer), with or without the inputs.
    Fire {
        actor: usize,
        instance: usize,
        transition: usize,
        legal: bool,
        with_input: bool,
        key: Option<u8>,
    },
    /// The actor votes on the quote's approval from their view.
    Vote {
        actor: usize,
        approve: bool,
        key: Option<u8>,
    },
    /// The actor sends their last request again, under the same key.
    Retry { actor: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let actor = 0..ACTORS;
    let key = proptest::option::weighted(0.7, 0..6u8);
    prop_oneof![
        4 => (actor.clone(), 0..2usize).prop_map(|(actor, instance)| Op::Read { actor, instance }),
        6 => (
            (actor.clone(), 0..2usize, 0..7usize),
            (proptest::bool::weighted(0.7), proptest::bool::weighted(0.85), key.clone()),
        )
            .prop_map(|((actor, instance, transition), (legal, with_input, key))| Op::Fire {
                actor,
                instance,
                transition,
                legal,
                with_input,
                key,
            }),
        3 => (actor.clone(), any::<bool>(), key).prop_map(|(actor, approve, key)| Op::Vote { actor, approve, key }),
        2 => actor.prop_map(|actor| Op::Retry { actor }),
    ]
}

/// One request as the service fingerprints it, without its key.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Fire {
        instance: usize,
        name: &'static str,
        expected: u64,
        input: serde_json::Value,
    },
    Vote {
        decision: VoteDecision,
        expected: u64,
    },
}

struct Model {
    /// Each instance as the last commit left it.
    instances: [Instance; 2],
    /// What each actor last read of each instance.
    views: Vec<[u64; 2]>,
    /// The actor's last request and its key.
    last: Vec<Option<(Call, Option<u8>)>>,
    /// Requests committed under a key, and their results.
    keyed: BTreeMap<(usize, u8), (Call, Instance)>,
}

async fn run(store: Arc<dyn WorkflowStore>, audit: Arc<dyn AuditLog>, ops: Vec<Op>) {
    let w = World::over(store).await;
    let actors: Vec<User> = vec![
        w.members[0].clone(),
        w.members[1].clone(),
        w.admins[0].clone(),
        w.admins[1].clone(),
        w.admins[2].clone(),
        w.viewer.clone(),
    ];
    let case = NewInstance::new(
        "support_case",
        &SupportCase {
            subject: "s".into(),
            customer_reference: None,
        },
    )
    .unwrap()
    .assigned_to(w.members[0].id);
    let quote = NewInstance::new(
        "quote_approval",
        &Quote {
            customer: "c".into(),
            amount_cents: 10,
        },
    )
    .unwrap();
    let case = w
        .workflows()
        .create(&w.as_user(&actors[1]), w.acme.id, case)
        .await
        .unwrap();
    let quote = w
        .workflows()
        .create(&w.as_user(&actors[0]), w.acme.id, quote)
        .await
        .unwrap();
    let mut model = Model {
        instances: [case, quote],
        views: vec![[1, 1]; ACTORS],
        last: vec![None; ACTORS],
        keyed: BTreeMap::new(),
    };

    for op in ops {
        let (actor, call, key) = match op {
            Op::Read { actor, instance } => {
                let id = model.instances[instance].id;
                let seen = w
                    .workflows()
                    .get(&w.as_user(&actors[actor]), w.acme.id, id)
                    .await
                    .unwrap();
                model.views[actor][instance] = seen.version;
                continue;
            }
            Op::Fire {
                actor,
                instance,
                transition,
                legal,
                with_input,
                key,
            } => {
                let names: &[&'static str] = if instance == 0 {
                    &CASE_TRANSITIONS
                } else {
                    &QUOTE_TRANSITIONS
                };
                let current = &model.instances[instance];
                let definition = w.workflows().definition(&current.definition).unwrap();
                let allowed: Vec<&'static str> = names
                    .iter()
                    .copied()
                    .filter(|n| definition.transition(n).is_some_and(|t| t.leaves(&current.state)))
                    .collect();
                let name = if legal && !allowed.is_empty() {
                    allowed[transition % allowed.len()]
                } else {
                    names[transition % names.len()]
                };
                let input = if with_input {
                    json!({ "priority": "p", "question": "q", "resolution": "r" })
                } else {
                    json!({})
                };
                let expected = model.views[actor][instance];
                (
                    actor,
                    Call::Fire {
                        instance,
                        name,
                        expected,
                        input,
                    },
                    key,
                )
            }
            Op::Vote { actor, approve, key } => {
                let decision = if approve {
                    VoteDecision::Approve
                } else {
                    VoteDecision::Reject
                };
                (
                    actor,
                    Call::Vote {
                        decision,
                        expected: model.views[actor][1],
                    },
                    key,
                )
            }
            Op::Retry { actor } => match model.last[actor].clone() {
                Some((call, key)) => (actor, call, key),
                None => continue,
            },
        };
        model.last[actor] = Some((call.clone(), key));
        let ctx = match key {
            Some(k) => w.with_key(&actors[actor], &format!("k{k}")),
            None => w.as_user(&actors[actor]),
        };
        let instance = match &call {
            Call::Fire { instance, .. } => *instance,
            Call::Vote { .. } => 1,
        };
        let id = model.instances[instance].id;
        let result = match &call {
            Call::Fire {
                name, expected, input, ..
            } => {
                w.workflows()
                    .transition(&ctx, w.acme.id, id, name, *expected, input.clone())
                    .await
            }
            Call::Vote { decision, expected } => {
                let vote = VoteRequest {
                    transition: "approve".into(),
                    decision: *decision,
                    expected_version: *expected,
                    input: json!({}),
                    on_behalf_of: None,
                };
                w.workflows().vote(&ctx, w.acme.id, id, vote).await
            }
        };
        let expected_version = match &call {
            Call::Fire { expected, .. } | Call::Vote { expected, .. } => *expected,
        };

        let stored = key.and_then(|k| model.keyed.get(&(actor, k)).cloned());
        match (stored, result) {
            (Some((earlier, response)), result) if earlier == call => {
                let replay = result.expect("a retry of a committed request succeeds");
                assert_eq!(replay, response, "a retry receives the stored result");
            }
            (Some(_), result) => {
                let err = result.expect_err("a key reused for another request is refused");
                assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused, "{err:?}");
            }
            (None, Ok(committed)) => {
                let before = &model.instances[instance];
                assert_eq!(expected_version, before.version, "a stale version never commits");
                assert_eq!(committed.version, before.version + 1, "one commit, one version");
                let definition = w.workflows().definition(&committed.definition).unwrap();
                assert!(definition.state(&committed.state).is_some(), "a declared state");
                model.instances[instance] = committed.clone();
                model.views[actor][instance] = committed.version;
                if let Some(k) = key {
                    model.keyed.insert((actor, k), (call.clone(), committed));
                }
            }
            (None, Err(err)) => {
                if expected_version != model.instances[instance].version {
                    assert_eq!(err.code(), ErrorCode::VersionConflict, "{err:?}");
                    assert_eq!(err.details()["current_version"], model.instances[instance].version);
                }
            }
        }
        check(&w, &*audit, &model).await;
    }
}

/// The store agrees with the model, and each history agrees with its instance.
async fn check(w: &World, audit: &dyn AuditLog, model: &Model) {
    for instance in &model.instances {
        let stored = w.store.get(w.acme.id, instance.id).await.unwrap().unwrap();
        assert_eq!(&stored, instance, "the store holds exactly what was committed");
        let history = w.store.history(w.acme.id, instance.id, None, 10_000).await.unwrap();
        let versions: Vec<u64> = history.iter().map(|e| e.version).collect();
        assert_eq!(
            versions,
            (1..=instance.version).collect::<Vec<_>>(),
            "one entry per version"
        );
        assert_eq!(
            history.last().unwrap().to,
            instance.state,
            "the history ends in the state"
        );
        let definition = w.workflows().definition(&instance.definition).unwrap();
        for pair in history.windows(2) {
            assert_eq!(pair[0].to, pair[1].from, "entries chain");
        }
        for entry in &history {
            assert!(
                definition.state(&entry.to).is_some(),
                "every entry names a declared state"
            );
            if matches!(entry.kind, EntryKind::Transition { .. }) || entry.from != entry.to {
                if entry.kind == EntryKind::Created {
                    continue;
                }
                let t = definition.transition(&entry.transition).expect("a declared transition");
                assert!(t.leaves(&entry.from) && t.to() == entry.to, "a legal move: {entry:?}");
            }
        }
        let mut keys = BTreeSet::new();
        for entry in history.iter().filter(|e| e.idempotency_key.is_some()) {
            let fresh = keys.insert((entry.actor.clone(), entry.idempotency_key.clone()));
            assert!(fresh, "one effect per key: {entry:?}");
        }
        let about = AuditQuery {
            target: Some(instance.id.to_string()),
            ..AuditQuery::default()
        };
        let events = audit.list(w.acme.id, &about, None, 10_000).await.unwrap();
        assert_eq!(events.len(), history.len(), "a customer audit event per history entry");
        for (event, entry) in events.iter().zip(&history) {
            assert_eq!(
                event.context.request_id, entry.request_id,
                "in the entry's request: {entry:?}"
            );
        }
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn interleaved_actors_with_retries_keep_every_invariant(ops in proptest::collection::vec(op(), 1..60)) {
        let store = portal_adapters::memory::InMemoryWorkflowStore::new();
        let audit = Arc::new(store.audit_log());
        block_on(run(Arc::new(store), audit, ops));
    }
}

#[cfg(feature = "sqlite")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn on_sqlite_interleaved_actors_with_retries_keep_every_invariant(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        block_on(async {
            let pool = common::fresh_sqlite_pool().await;
            let audit = Arc::new(portal_adapters::sqlite::SqliteAuditLog::new(pool.clone()));
            run(Arc::new(portal_adapters::sqlite::SqliteWorkflowStore::new(pool)), audit, ops).await;
        });
    }
}

#[cfg(feature = "postgres")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn on_postgres_interleaved_actors_with_retries_keep_every_invariant(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        if common::postgres_url().is_none() {
            return Ok(());
        }
        block_on(async {
            let Some(pool) = common::fresh_pg_pool().await else {
                return;
            };
            let audit = Arc::new(portal_adapters::postgres::PgAuditLog::new(pool.clone()));
            run(Arc::new(portal_adapters::postgres::PgWorkflowStore::new(pool)), audit, ops).await;
        });
    }
}
