//! The `IdempotencyStore` conformance suite: one function per clause of the port's
//! contract.
//!
//! Every function takes a store, claims keys in scopes of fresh orgs and principals, and
//! panics with a message naming the clause if the store breaks it. Run them all with
//! [`idempotency_store_conformance!`](crate::idempotency_store_conformance).

use std::sync::LazyLock;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::context::IdempotencyKey;
use crate::idempotency::{Claim, Hold, IdempotencyScope, IdempotencyStore, StoredAnswer};
use crate::ids::{OrgId, RandomIds, UserId};
use crate::principal::{Principal, ServiceName};
use crate::store::StoreError;

/// A free key is held by the first claim; a second claim, with the same request or
/// another, finds it in flight with the first request's fingerprint.
pub async fn a_free_key_is_held_once_and_then_in_flight(store: &dyn IdempotencyStore) {
    let scope = new_scope();
    let key = key("k-1");
    assert_eq!(claim(store, &scope, &key, [1; 32], hold(1), 0).await, Claim::Held);
    assert_eq!(
        claim(store, &scope, &key, [1; 32], hold(2), 1).await,
        Claim::InFlight { fingerprint: [1; 32] },
        "the same request finds it in flight"
    );
    assert_eq!(
        claim(store, &scope, &key, [2; 32], hold(3), 1).await,
        Claim::InFlight { fingerprint: [1; 32] },
        "another request finds the first one's fingerprint"
    );
}

/// `complete` keeps the answer exactly (status, headers in order, body bytes that are not
/// UTF-8), and a later claim reads it back with the request's fingerprint; an answer not
/// kept reads back as `None`.
pub async fn complete_keeps_the_answer_and_a_claim_reads_it_back(store: &dyn IdempotencyStore) {
    let scope = new_scope();
    let answer = StoredAnswer {
        status: 201,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("etag".to_owned(), "\"w/1\"".to_owned()),
            ("vary".to_owned(), "a".to_owned()),
            ("vary".to_owned(), "b".to_owned()),
        ],
        body: vec![0, 159, 146, 150, b'{', b'}'],
    };
    let kept = key("kept");
    assert_eq!(claim(store, &scope, &kept, [7; 32], hold(1), 0).await, Claim::Held);
    store
        .complete(&scope, &kept, hold(1), Some(answer.clone()), at(86_400))
        .await
        .expect("the holder completes");
    assert_eq!(
        claim(store, &scope, &kept, [8; 32], hold(2), 10).await,
        Claim::Done {
            fingerprint: [7; 32],
            answer: Some(answer)
        },
        "the answer reads back exactly"
    );

    let secret = key("secret");
    assert_eq!(claim(store, &scope, &secret, [9; 32], hold(3), 0).await, Claim::Held);
    store
        .complete(&scope, &secret, hold(3), None, at(86_400))
        .await
        .expect("the holder completes");
    assert_eq!(
        claim(store, &scope, &secret, [9; 32], hold(4), 10).await,
        Claim::Done {
            fingerprint: [9; 32],
            answer: None
        },
        "an answer not kept reads back as none"
    );
}

/// A key is scoped to (org, principal, operation): the same key in another org, by another
/// principal, for another operation, or with no org, is another record.
pub async fn a_key_is_scoped_to_org_principal_and_operation(store: &dyn IdempotencyStore) {
    let scope = new_scope();
    let key = key("shared");
    assert_eq!(claim(store, &scope, &key, [1; 32], hold(1), 0).await, Claim::Held);
    let others = [
        IdempotencyScope {
            org: Some(new_org()),
            ..scope.clone()
        },
        IdempotencyScope {
            org: None,
            ..scope.clone()
        },
        IdempotencyScope {
            principal: Principal::User(new_user()),
            ..scope.clone()
        },
        IdempotencyScope {
            principal: Principal::Service(ServiceName::new("replica-b").expect("a valid name")),
            ..scope.clone()
        },
        IdempotencyScope {
            operation: "another_operation".to_owned(),
            ..scope.clone()
        },
    ];
    for (i, other) in others.iter().enumerate() {
        assert_eq!(
            claim(store, other, &key, [2; 32], hold(10 + i as u8), 0).await,
            Claim::Held,
            "another scope holds its own record: {other:?}"
        );
    }
}

/// `release` frees the key for the next claim, but only when its hold still holds it: a
/// stranger's hold changes nothing.
pub async fn release_frees_the_key_only_for_its_hold(store: &dyn IdempotencyStore) {
    let scope = new_scope();
    let key = key("released");
    assert_eq!(claim(store, &scope, &key, [1; 32], hold(1), 0).await, Claim::Held);
    store.release(&scope, &key, hold(9)).await.expect("release succeeds");
    assert_eq!(
        claim(store, &scope, &key, [2; 32], hold(2), 1).await,
        Claim::InFlight { fingerprint: [1; 32] },
        "another hold's release changes nothing"
    );
    store.release(&scope, &key, hold(1)).await.expect("release succeeds");
    assert_eq!(
        claim(store, &scope, &key, [2; 32], hold(2), 2).await,
        Claim::Held,
        "the key is free after its holder released it"
    );
}

/// `complete` by a hold that does not hold the key (another request's, or one released)
/// is `NotFound` and keeps nothing.
pub async fn complete_without_the_hold_is_not_found(store: &dyn IdempotencyStore) {
    let scope = new_scope();
    let key = key("stranger");
    assert_eq!(claim(store, &scope, &key, [1; 32], hold(1), 0).await, Claim::Held);
    let err = store
        .complete(&scope, &key, hold(2), None, at(100))
        .await
        .expect_err("a stranger's hold cannot complete");
    assert!(
        matches!(err, StoreError::NotFound { .. }),
        "expected NotFound, got {err:?}"
    );
    store.release(&scope, &key, hold(1)).await.expect("release succeeds");
    let err = store
        .complete(&scope, &key, hold(1), None, at(100))
        .await
        .expect_err("a released hold cannot complete");
    assert!(
        matches!(err, StoreError::NotFound { .. }),
        "expected NotFound, got {err:?}"
    );
    assert_eq!(
        claim(store, &scope, &key, [3; 32], hold(3), 1).await,
        Claim::Held,
        "nothing was kept"
    );
}

/// A hold past its deadline (its server died) and a record at its expiry are taken over by
/// the next claim; the old hold can no longer complete.
pub async fn an_expired_hold_or_record_is_taken_over(store: &dyn IdempotencyStore) {
    let scope = new_scope();
    let key = key("expiring");
    assert_eq!(
        store
            .claim(&scope, &key, [1; 32], hold(1), at(0), at(30))
            .await
            .unwrap(),
        Claim::Held
    );
    assert_eq!(
        store
            .claim(&scope, &key, [2; 32], hold(2), at(29), at(59))
            .await
            .unwrap(),
        Claim::InFlight { fingerprint: [1; 32] },
        "held until its deadline"
    );
    assert_eq!(
        store
            .claim(&scope, &key, [2; 32], hold(2), at(30), at(60))
            .await
            .unwrap(),
        Claim::Held,
        "taken over at the deadline"
    );
    let err = store
        .complete(&scope, &key, hold(1), None, at(100))
        .await
        .expect_err("the old hold lost the key");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    store
        .complete(&scope, &key, hold(2), None, at(100))
        .await
        .expect("the new holder completes");
    assert_eq!(
        store
            .claim(&scope, &key, [3; 32], hold(3), at(99), at(129))
            .await
            .unwrap(),
        Claim::Done {
            fingerprint: [2; 32],
            answer: None
        },
        "kept until its expiry"
    );
    assert_eq!(
        store
            .claim(&scope, &key, [3; 32], hold(3), at(100), at(130))
            .await
            .unwrap(),
        Claim::Held,
        "free again at its expiry"
    );
}

/// Of concurrent claims of one free key, exactly one holds it; the others find it in flight.
pub async fn concurrent_claims_hold_once(store: &dyn IdempotencyStore) {
    let scope = new_scope();
    let key = key("raced");
    let (a, b, c, d) = futures::join!(
        claim(store, &scope, &key, [1; 32], hold(1), 0),
        claim(store, &scope, &key, [1; 32], hold(2), 0),
        claim(store, &scope, &key, [1; 32], hold(3), 0),
        claim(store, &scope, &key, [1; 32], hold(4), 0),
    );
    let claims = [a, b, c, d];
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::Held).count(),
        1,
        "exactly one holds: {claims:?}"
    );
    assert_eq!(
        claims
            .iter()
            .filter(|c| **c == Claim::InFlight { fingerprint: [1; 32] })
            .count(),
        3,
        "the others find it in flight: {claims:?}"
    );
}

/// `purge_expired` deletes the records and holds expired at its time and keeps the rest.
pub async fn purge_expired_deletes_only_what_expired(store: &dyn IdempotencyStore) {
    let scope = new_scope();
    let (old, young, held) = (key("old"), key("young"), key("held"));
    for (k, h) in [(&old, 1), (&young, 2)] {
        assert_eq!(claim(store, &scope, k, [h; 32], hold(h), 0).await, Claim::Held);
    }
    store.complete(&scope, &old, hold(1), None, at(50)).await.unwrap();
    store.complete(&scope, &young, hold(2), None, at(500)).await.unwrap();
    assert_eq!(
        store
            .claim(&scope, &held, [3; 32], hold(3), at(0), at(40))
            .await
            .unwrap(),
        Claim::Held
    );
    assert_eq!(
        store.purge_expired(at(100)).await.unwrap(),
        2,
        "the old record and the hold"
    );
    assert_eq!(
        claim(store, &scope, &young, [9; 32], hold(9), 101).await,
        Claim::Done {
            fingerprint: [2; 32],
            answer: None
        },
        "the young record stays"
    );
}

static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

/// Claims `key` at `seconds` after [`t0`], held for 30 seconds.
async fn claim(
    store: &dyn IdempotencyStore,
    scope: &IdempotencyScope,
    key: &IdempotencyKey,
    fingerprint: [u8; 32],
    hold: Hold,
    seconds: i64,
) -> Claim {
    store
        .claim(scope, key, fingerprint, hold, at(seconds), at(seconds + 30))
        .await
        .expect("claim succeeds")
}

/// A time with microseconds, so that a store that loses them fails the clauses.
fn t0() -> OffsetDateTime {
    datetime!(2025-03-14 15:09:26.535_897 UTC)
}

/// `seconds` after [`t0`].
fn at(seconds: i64) -> OffsetDateTime {
    t0() + Duration::seconds(seconds)
}

fn hold(n: u8) -> Hold {
    Hold([n; 16])
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text).expect("a valid key")
}

fn new_org() -> OrgId {
    OrgId::generate(&*IDS, t0())
}

fn new_user() -> UserId {
    UserId::generate(&*IDS, t0())
}

fn new_scope() -> IdempotencyScope {
    IdempotencyScope {
        org: Some(new_org()),
        principal: Principal::User(new_user()),
        operation: "create_thing".to_owned(),
    }
}

/// Expands to one `#[tokio::test]` per clause of the
/// [`IdempotencyStore`](crate::idempotency::IdempotencyStore) contract, each on a fresh
/// store from `$factory` (a future of `Option<S>`; `None` skips the test). Call it inside
/// a module, since it defines functions named after the clauses:
///
/// ```ignore
/// mod idempotency {
///     portal_core::idempotency_store_conformance!(async { Some(InMemoryIdempotencyStore::new()) });
/// }
/// ```
///
/// The rule starting with `@` is internal.
#[macro_export]
macro_rules! idempotency_store_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some(store) = $factory.await else {
                return;
            };
            $crate::testing::idempotency::$clause(&store).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::idempotency_store_conformance! { @tests ($factory)
            a_free_key_is_held_once_and_then_in_flight,
            complete_keeps_the_answer_and_a_claim_reads_it_back,
            a_key_is_scoped_to_org_principal_and_operation,
            release_frees_the_key_only_for_its_hold,
            complete_without_the_hold_is_not_found,
            an_expired_hold_or_record_is_taken_over,
            concurrent_claims_hold_once,
            purge_expired_deletes_only_what_expired,
        }
    };
}
