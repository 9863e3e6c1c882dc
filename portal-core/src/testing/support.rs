//! The `SupportGrantStore` conformance suite: one function per clause of the port's contract.
//!
//! Every function takes a store, makes grants with fresh ids, orgs and staff ids, and
//! panics with a message naming the clause if the store breaks it. Run them all with
//! [`support_grant_store_conformance!`](crate::support_grant_store_conformance).

use std::sync::LazyLock;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::context::{Principal, ServiceName};
use crate::ids::{GrantId, OrgId, RandomIds, UserId};
use crate::store::{Conflict, StoreError};
use crate::support::{SupportAccess, SupportGrant, SupportGrantStore, SupportReason};
use crate::testing::audit::audit_event;

/// `create` stores the grant and `get` reads it back exactly, revoked or not.
pub async fn create_stores_the_grant_and_get_reads_it_back(store: &dyn SupportGrantStore) {
    let org = new_org();
    let grant = grant_value(org, new_staff(), 0, SupportAccess::ReadOnly);
    store
        .create(&grant, &audit_event(grant.org))
        .await
        .expect("create succeeds");
    assert_eq!(
        store.get(org, grant.id).await.unwrap(),
        Some(grant.clone()),
        "get reads the grant back"
    );

    let granted_by_user = SupportGrant {
        granted_by: Principal::User(new_staff()),
        access: SupportAccess::ReadWrite,
        ..grant_value(org, new_staff(), 1, SupportAccess::ReadWrite)
    };
    store
        .create(&granted_by_user, &audit_event(granted_by_user.org))
        .await
        .expect("create succeeds");
    assert_eq!(
        store.get(org, granted_by_user.id).await.unwrap(),
        Some(granted_by_user),
        "the access level and a user as granter read back"
    );
}

/// `get` is scoped to the org: another org's grant id, and an unknown id, are `None`.
pub async fn get_is_scoped_to_its_org(store: &dyn SupportGrantStore) {
    let org = new_org();
    let grant = grant_value(org, new_staff(), 0, SupportAccess::ReadOnly);
    store
        .create(&grant, &audit_event(grant.org))
        .await
        .expect("create succeeds");
    assert_eq!(
        store.get(new_org(), grant.id).await.unwrap(),
        None,
        "another org sees nothing"
    );
    assert_eq!(
        store.get(org, GrantId::generate(&*IDS, t0())).await.unwrap(),
        None,
        "an unknown id is none"
    );
}

/// `create` with an id that exists is `Conflict::AlreadyExists` and changes nothing.
pub async fn create_with_a_taken_id_is_already_exists(store: &dyn SupportGrantStore) {
    let org = new_org();
    let grant = grant_value(org, new_staff(), 0, SupportAccess::ReadOnly);
    store
        .create(&grant, &audit_event(grant.org))
        .await
        .expect("create succeeds");
    let again = SupportGrant {
        access: SupportAccess::ReadWrite,
        ..grant.clone()
    };
    let err = store
        .create(&again, &audit_event(again.org))
        .await
        .expect_err("a taken id is refused");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists {
                entity: "support_grant"
            })
        ),
        "expected AlreadyExists, got {err:?}"
    );
    assert_eq!(
        store.get(org, grant.id).await.unwrap(),
        Some(grant),
        "the first grant is unchanged"
    );
}

/// `find_active` finds a grant from its `created_at` (inclusive) to its `expires_at`
/// (exclusive), and nothing outside that window.
pub async fn find_active_finds_a_grant_only_inside_its_window(store: &dyn SupportGrantStore) {
    let (org, staff) = (new_org(), new_staff());
    let grant = grant_value(org, staff, 0, SupportAccess::ReadOnly);
    store
        .create(&grant, &audit_event(grant.org))
        .await
        .expect("create succeeds");
    let micro = Duration::microseconds(1);
    let cases = [
        (grant.created_at - micro, false, "before it was given"),
        (grant.created_at, true, "when it was given"),
        (grant.expires_at - micro, true, "just before it expires"),
        (grant.expires_at, false, "when it expires"),
        (grant.expires_at + Duration::days(1), false, "after it expired"),
    ];
    for (at, active, when) in cases {
        let found = store.find_active(staff, org, at).await.unwrap();
        assert_eq!(found, active.then(|| grant.clone()), "{when}");
    }
}

/// `find_active` finds only the grant of that staff member in that org.
pub async fn find_active_ignores_other_staff_and_other_orgs(store: &dyn SupportGrantStore) {
    let (org, staff) = (new_org(), new_staff());
    let grant = grant_value(org, staff, 0, SupportAccess::ReadWrite);
    store
        .create(&grant, &audit_event(grant.org))
        .await
        .expect("create succeeds");
    let at = grant.created_at + Duration::minutes(1);
    assert_eq!(
        store.find_active(new_staff(), org, at).await.unwrap(),
        None,
        "another staff member"
    );
    assert_eq!(
        store.find_active(staff, new_org(), at).await.unwrap(),
        None,
        "another org"
    );
    assert_eq!(
        store.find_active(staff, org, at).await.unwrap(),
        Some(grant),
        "the grant itself"
    );
}

/// A revoked grant is active before its `revoked_at` and not from then on.
pub async fn find_active_ignores_a_grant_from_its_revocation(store: &dyn SupportGrantStore) {
    let (org, staff) = (new_org(), new_staff());
    let grant = grant_value(org, staff, 0, SupportAccess::ReadOnly);
    store
        .create(&grant, &audit_event(grant.org))
        .await
        .expect("create succeeds");
    let revoked_at = grant.created_at + Duration::hours(1);
    let revoked = store
        .revoke(org, grant.id, revoked_at, &audit_event(org))
        .await
        .expect("revoke succeeds");
    let micro = Duration::microseconds(1);
    assert_eq!(
        store.find_active(staff, org, revoked_at - micro).await.unwrap(),
        Some(revoked),
        "active just before the revocation"
    );
    assert_eq!(
        store.find_active(staff, org, revoked_at).await.unwrap(),
        None,
        "not active at the revocation"
    );
    assert_eq!(
        store
            .find_active(staff, org, revoked_at + Duration::hours(1))
            .await
            .unwrap(),
        None,
        "not active after the revocation"
    );
}

/// Of several active grants for one staff member and org, `find_active` returns the one
/// created last (the highest id).
pub async fn find_active_prefers_the_grant_created_last(store: &dyn SupportGrantStore) {
    let (org, staff) = (new_org(), new_staff());
    let first = grant_value(org, staff, 0, SupportAccess::ReadWrite);
    let second = grant_value(org, staff, 60, SupportAccess::ReadOnly);
    store
        .create(&second, &audit_event(second.org))
        .await
        .expect("create succeeds");
    store
        .create(&first, &audit_event(first.org))
        .await
        .expect("create succeeds");
    let at = second.created_at + Duration::minutes(1);
    assert_eq!(
        store.find_active(staff, org, at).await.unwrap(),
        Some(second),
        "the later grant"
    );
}

/// `list` returns every grant of the org, active, expired or revoked, ordered by id, and
/// none of another org's; pages (`after` the last id read, `limit`) hold at most `limit`
/// and together every grant once.
pub async fn list_returns_the_orgs_grants_ordered_by_id(store: &dyn SupportGrantStore) {
    let org = new_org();
    let grants: Vec<SupportGrant> = (0..3)
        .map(|i| grant_value(org, new_staff(), i * 10, SupportAccess::ReadOnly))
        .collect();
    for grant in grants.iter().rev() {
        store
            .create(grant, &audit_event(grant.org))
            .await
            .expect("create succeeds");
    }
    let elsewhere = grant_value(new_org(), new_staff(), 5, SupportAccess::ReadOnly);
    store
        .create(&elsewhere, &audit_event(elsewhere.org))
        .await
        .expect("create succeeds");
    let revoked = store
        .revoke(
            org,
            grants[1].id,
            grants[1].created_at + Duration::minutes(5),
            &audit_event(org),
        )
        .await
        .expect("revoke succeeds");
    let expected = vec![grants[0].clone(), revoked, grants[2].clone()];
    assert_eq!(
        store.list(org, None, 100).await.unwrap(),
        expected,
        "the org's grants by id"
    );
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(org, after, 2).await.unwrap();
        assert!(page.len() <= 2, "a page holds at most `limit`: {page:?}");
        after = page.last().map(|g| g.id);
        let done = page.len() < 2;
        paged.extend(page);
        if done {
            break;
        }
        assert!(paged.len() <= expected.len(), "the pages end");
    }
    assert_eq!(paged, expected, "the pages hold every grant once, by id");
    assert_eq!(
        store.list(org, Some(grants[1].id), 1).await.unwrap(),
        vec![grants[2].clone()],
        "after a cursor, the next grant"
    );
    assert_eq!(
        store.list(new_org(), None, 100).await.unwrap(),
        vec![],
        "an org without grants lists none"
    );
}

/// `revoke` sets `revoked_at` and returns the grant as stored; revoking again keeps the
/// first `revoked_at`.
pub async fn revoke_sets_revoked_at_once(store: &dyn SupportGrantStore) {
    let org = new_org();
    let grant = grant_value(org, new_staff(), 0, SupportAccess::ReadWrite);
    store
        .create(&grant, &audit_event(grant.org))
        .await
        .expect("create succeeds");
    let first = grant.created_at + Duration::minutes(10);
    let revoked = store
        .revoke(org, grant.id, first, &audit_event(org))
        .await
        .expect("revoke succeeds");
    assert_eq!(
        revoked,
        SupportGrant {
            revoked_at: Some(first),
            ..grant.clone()
        },
        "revoke returns the grant with revoked_at"
    );
    assert_eq!(
        store.get(org, grant.id).await.unwrap(),
        Some(revoked.clone()),
        "get reads the revocation"
    );
    let again = store
        .revoke(org, grant.id, first + Duration::minutes(10), &audit_event(org))
        .await
        .expect("revoking again succeeds");
    assert_eq!(again, revoked, "the first revoked_at is kept");
}

/// `revoke` of an unknown id, or of another org's grant, is `NotFound` and changes nothing.
pub async fn revoke_of_an_unknown_or_other_orgs_grant_is_not_found(store: &dyn SupportGrantStore) {
    let org = new_org();
    let grant = grant_value(org, new_staff(), 0, SupportAccess::ReadOnly);
    store
        .create(&grant, &audit_event(grant.org))
        .await
        .expect("create succeeds");
    for (other_org, id, what) in [
        (new_org(), grant.id, "another org's grant"),
        (org, GrantId::generate(&*IDS, t0()), "an unknown id"),
    ] {
        let err = store
            .revoke(other_org, id, at(60), &audit_event(other_org))
            .await
            .expect_err(what);
        assert!(
            matches!(
                err,
                StoreError::NotFound {
                    entity: "support_grant"
                }
            ),
            "{what}: expected NotFound, got {err:?}"
        );
    }
    assert_eq!(
        store.get(org, grant.id).await.unwrap(),
        Some(grant),
        "the grant is not revoked"
    );
}

static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

/// The suite's reference time, with six significant sub-second digits so a store that
/// loses microseconds fails the round trips.
fn t0() -> OffsetDateTime {
    datetime!(2025-03-14 15:09:26.535_897 UTC)
}

/// `seconds` after [`t0`].
fn at(seconds: i64) -> OffsetDateTime {
    t0() + Duration::seconds(seconds)
}

fn new_org() -> OrgId {
    OrgId::generate(&*IDS, t0())
}

pub(crate) fn new_staff() -> UserId {
    UserId::generate(&*IDS, t0())
}

/// A grant given `seconds` after [`t0`] for 72 hours, by a service principal; its id is
/// made at its creation time, so ids sort as grants were given.
pub(crate) fn grant_value(org: OrgId, staff: UserId, seconds: i64, access: SupportAccess) -> SupportGrant {
    let created_at = at(seconds);
    SupportGrant {
        id: GrantId::generate(&*IDS, created_at),
        staff,
        org,
        reason: SupportReason::new("ticket 4711: export fails").expect("a valid reason"),
        access,
        granted_by: Principal::Service(ServiceName::new("vendor-console").expect("a valid name")),
        created_at,
        expires_at: created_at + Duration::hours(72),
        revoked_at: None,
        first_used_at: None,
    }
}

/// `record_first_use` sets a grant's `first_used_at` once: the first call answers `true`
/// and the time reads back with the grant (`get`, `find_active`, `list`), a later call
/// answers `false` and keeps the first time; of eight concurrent first uses of another
/// grant exactly one answers `true`. Another org's grant id and an unknown id are
/// `NotFound` and change nothing.
pub async fn record_first_use_sets_first_used_at_once(store: &dyn SupportGrantStore) {
    let (org, staff) = (new_org(), new_staff());
    let grant = grant_value(org, staff, 0, SupportAccess::ReadOnly);
    store
        .create(&grant, &audit_event(grant.org))
        .await
        .expect("create succeeds");
    assert_eq!(
        store
            .find_active(staff, org, at(10))
            .await
            .unwrap()
            .map(|g| g.first_used_at),
        Some(None),
        "a new grant has no first use"
    );
    let first = at(10);
    assert!(
        store
            .record_first_use(org, grant.id, first, &audit_event(org))
            .await
            .expect("the first use is recorded"),
        "the first call sets it"
    );
    assert!(
        !store
            .record_first_use(org, grant.id, at(20), &audit_event(org))
            .await
            .expect("a later use is fine"),
        "a later call sets nothing"
    );
    let used = SupportGrant {
        first_used_at: Some(first),
        ..grant.clone()
    };
    assert_eq!(
        store.get(org, grant.id).await.unwrap(),
        Some(used.clone()),
        "get reads it"
    );
    assert_eq!(
        store.find_active(staff, org, at(30)).await.unwrap(),
        Some(used.clone()),
        "find_active carries it, so the gate needs no other read"
    );
    assert_eq!(store.list(org, None, 10).await.unwrap(), vec![used], "list reads it");

    for (other_org, id, what) in [
        (new_org(), grant.id, "another org's grant"),
        (org, GrantId::generate(&*IDS, t0()), "an unknown grant"),
    ] {
        let err = store
            .record_first_use(other_org, id, at(40), &audit_event(other_org))
            .await
            .expect_err(what);
        assert!(
            matches!(
                err,
                StoreError::NotFound {
                    entity: "support_grant"
                }
            ),
            "{what}: {err:?}"
        );
    }

    let raced = grant_value(org, new_staff(), 1, SupportAccess::ReadWrite);
    store
        .create(&raced, &audit_event(raced.org))
        .await
        .expect("create succeeds");
    let events: Vec<_> = (0..8).map(|_| audit_event(org)).collect();
    let answers = futures::future::join_all(
        events
            .iter()
            .enumerate()
            .map(|(i, event)| store.record_first_use(org, raced.id, at(50 + i64::try_from(i).unwrap_or(0)), event)),
    )
    .await;
    let set: Vec<bool> = answers
        .into_iter()
        .map(|answer| answer.expect("every concurrent first use succeeds"))
        .collect();
    assert_eq!(
        set.iter().filter(|set| **set).count(),
        1,
        "exactly one of the concurrent first uses sets it: {set:?}"
    );
    let stored = store.get(org, raced.id).await.unwrap().expect("the grant is there");
    let winner = set.iter().position(|set| *set).unwrap_or(usize::MAX);
    assert_eq!(
        stored.first_used_at,
        Some(at(50 + i64::try_from(winner).unwrap_or(0))),
        "the time of the call that set it"
    );
}

/// Expands to one `#[tokio::test]` per clause of the
/// [`SupportGrantStore`](crate::support::SupportGrantStore) contract, each on a fresh
/// store from `$factory` (a future of `Option<S>`; `None` skips the test). Call it inside
/// a module, since it defines functions named after the clauses:
///
/// ```ignore
/// mod memory {
///     use portal_adapters::memory::InMemorySupportGrantStore;
///     portal_core::support_grant_store_conformance!(async { Some(InMemorySupportGrantStore::new()) });
/// }
/// ```
///
/// The rule starting with `@` is internal.
#[macro_export]
macro_rules! support_grant_store_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some(store) = $factory.await else {
                return;
            };
            $crate::testing::support::$clause(&store).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::support_grant_store_conformance! { @tests ($factory)
            create_stores_the_grant_and_get_reads_it_back,
            get_is_scoped_to_its_org,
            create_with_a_taken_id_is_already_exists,
            find_active_finds_a_grant_only_inside_its_window,
            find_active_ignores_other_staff_and_other_orgs,
            find_active_ignores_a_grant_from_its_revocation,
            find_active_prefers_the_grant_created_last,
            list_returns_the_orgs_grants_ordered_by_id,
            revoke_sets_revoked_at_once,
            revoke_of_an_unknown_or_other_orgs_grant_is_not_found,
            record_first_use_sets_first_used_at_once,
        }
    };
}
