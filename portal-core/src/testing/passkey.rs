//! The [`PasskeyStore`] conformance suite: one function per clause of the port's contract.
//!
//! Every clause takes the tenancy store (for users, orgs and memberships), the passkey
//! store (for the MFA policy clause, also the [`MfaPolicyStore`] of the same database) and
//! the audit log, all on one database, as the identity outbox suite does. Run
//! them all with [`passkey_store_conformance!`](crate::passkey_store_conformance), whose
//! factory returns `Option<(tenancy, passkeys, log)>`.

use std::sync::{Arc, LazyLock};

use secrecy::{ExposeSecret, SecretString};
use time::Duration;

use crate::audit::{AuditEvent, AuditLog, AuditQuery, actions};
use crate::identity::{
    CeremonyPurpose, CeremonyUse, MfaPolicyStore, PasskeyCeremonyRecord, PasskeyName, PasskeyRecord, PasskeyStore,
    PasskeyUse,
};
use crate::ids::{IdGenerator, OrgId, PasskeyId, RandomIds, UserId};
use crate::store::{Conflict, StoreError};
use crate::tenancy::{TenancyStore, TokenHash};
use crate::testing::audit::audit_event;
use crate::testing::identity_audit::user_event;
use crate::testing::tenancy::{add_member, at, new_org, new_user, roles_of};

static IDS: LazyLock<Arc<RandomIds>> = LazyLock::new(|| Arc::new(RandomIds::default()));

/// A fresh credential id (16 random-looking bytes, different every call).
fn new_credential_id() -> Vec<u8> {
    IDS.generate(at(0)).as_bytes().to_vec()
}

/// A passkey of `user` named `name`, registered at `seconds`, counter 0.
fn passkey_of(user: UserId, name: &str, seconds: i64) -> PasskeyRecord {
    PasskeyRecord {
        id: PasskeyId::generate(&**IDS, at(seconds)),
        user,
        credential_id: new_credential_id(),
        name: PasskeyName::new(name).expect("a valid name"),
        credential: format!("{{\"cred\":\"{name}\",\"counter\":0}}"),
        sign_count: 0,
        created_at: at(seconds),
        last_used_at: None,
    }
}

/// A ceremony of `purpose` for `user`, begun at 0 and valid 5 minutes.
fn ceremony(purpose: CeremonyPurpose, user: Option<UserId>) -> PasskeyCeremonyRecord {
    PasskeyCeremonyRecord {
        token_hash: TokenHash::of(&IDS.generate(at(0)).to_string()),
        purpose,
        user,
        state: SecretString::from(format!("{{\"challenge\":\"{}\"}}", IDS.generate(at(0)))),
        created_at: at(0),
        expires_at: at(300),
        used_at: None,
    }
}

/// The `user.passkey_*` events of `org`'s log, in id order.
async fn passkey_events(log: &dyn AuditLog, org: OrgId) -> Vec<AuditEvent> {
    let mut out = log
        .list(org, &AuditQuery::default(), None, 500)
        .await
        .expect("the audit log reads");
    out.retain(|e| e.action.as_str().starts_with("user.passkey_"));
    out
}

/// A passkey added is listed (oldest first, exactly as stored) and found by its
/// credential id; its addition writes `user.passkey_added` once in each org of the user
/// and none elsewhere.
pub async fn an_added_passkey_is_listed_found_and_audited_per_org(
    tenancy: &dyn TenancyStore,
    store: &dyn PasskeyStore,
    log: &dyn AuditLog,
) {
    let owner = new_user(tenancy).await;
    let first = new_org(tenancy, &owner).await;
    let second = new_org(tenancy, &owner).await;
    let other = new_org(tenancy, &owner).await;
    let user = new_user(tenancy).await;
    add_member(tenancy, &first, &user, roles_of(&["member"]), at(1)).await;
    add_member(tenancy, &second, &user, roles_of(&["viewer"]), at(1)).await;

    let laptop = passkey_of(user.id, "Laptop", 10);
    let phone = passkey_of(user.id, "Phone", 11);
    store
        .add_passkey(&laptop, &user_event(user.id, actions::USER_PASSKEY_ADDED, 10))
        .await
        .expect("add succeeds");
    store
        .add_passkey(&phone, &user_event(user.id, actions::USER_PASSKEY_ADDED, 11))
        .await
        .expect("add succeeds");

    assert_eq!(
        store.passkeys(user.id).await.unwrap(),
        vec![laptop.clone(), phone.clone()]
    );
    assert_eq!(store.find_passkey(&phone.credential_id).await.unwrap(), Some(phone));
    assert_eq!(store.find_passkey(&new_credential_id()).await.unwrap(), None);
    for org in [first.id, second.id] {
        let events = passkey_events(log, org).await;
        assert_eq!(events.len(), 2, "one event per addition in each org: {events:?}");
        assert!(events.iter().all(|e| e.action.as_str() == "user.passkey_added"));
    }
    assert!(passkey_events(log, other.id).await.is_empty(), "none in another org");
}

/// A credential id is unique across every user (and a passkey id is unique): adding a
/// taken one is `AlreadyExists` (`passkey`) and changes and writes nothing.
pub async fn a_credential_id_is_unique_across_users(
    tenancy: &dyn TenancyStore,
    store: &dyn PasskeyStore,
    log: &dyn AuditLog,
) {
    let owner = new_user(tenancy).await;
    let org = new_org(tenancy, &owner).await;
    let ana = new_user(tenancy).await;
    let bob = new_user(tenancy).await;
    add_member(tenancy, &org, &bob, roles_of(&["member"]), at(1)).await;
    let first = passkey_of(ana.id, "Ana's key", 10);
    store
        .add_passkey(&first, &user_event(ana.id, actions::USER_PASSKEY_ADDED, 10))
        .await
        .unwrap();

    let mut stolen = passkey_of(bob.id, "Bob's copy", 11);
    stolen.credential_id = first.credential_id.clone();
    let err = store
        .add_passkey(&stolen, &user_event(bob.id, actions::USER_PASSKEY_ADDED, 11))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::AlreadyExists { entity: "passkey" })),
        "{err:?}"
    );
    let mut same_id = passkey_of(bob.id, "Same id", 12);
    same_id.id = first.id;
    let err = store
        .add_passkey(&same_id, &user_event(bob.id, actions::USER_PASSKEY_ADDED, 12))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::AlreadyExists { entity: "passkey" })),
        "{err:?}"
    );

    assert!(store.passkeys(bob.id).await.unwrap().is_empty(), "Bob has none");
    assert_eq!(
        store.find_passkey(&first.credential_id).await.unwrap().map(|p| p.user),
        Some(ana.id),
        "the credential is still Ana's"
    );
    assert!(
        passkey_events(log, org.id).await.is_empty(),
        "a refused addition writes no event"
    );
}

/// Another user's passkey is invisible: not listed for them, and renaming or removing it
/// by its id answers `false`, changes nothing and writes no event.
pub async fn another_users_passkey_can_be_neither_renamed_nor_removed(
    tenancy: &dyn TenancyStore,
    store: &dyn PasskeyStore,
    log: &dyn AuditLog,
) {
    let owner = new_user(tenancy).await;
    let org = new_org(tenancy, &owner).await;
    let ana = new_user(tenancy).await;
    let mallory = new_user(tenancy).await;
    add_member(tenancy, &org, &ana, roles_of(&["member"]), at(1)).await;
    add_member(tenancy, &org, &mallory, roles_of(&["member"]), at(1)).await;
    let key = passkey_of(ana.id, "Ana's key", 10);
    store
        .add_passkey(&key, &user_event(ana.id, actions::USER_PASSKEY_ADDED, 10))
        .await
        .unwrap();

    assert!(store.passkeys(mallory.id).await.unwrap().is_empty());
    let renamed = PasskeyName::new("pwned").unwrap();
    assert!(!store.rename_passkey(mallory.id, key.id, &renamed).await.unwrap());
    assert!(
        !store
            .remove_passkey(
                mallory.id,
                key.id,
                &user_event(mallory.id, actions::USER_PASSKEY_REMOVED, 11)
            )
            .await
            .unwrap()
    );
    assert_eq!(store.passkeys(ana.id).await.unwrap(), vec![key], "unchanged");
    let events = passkey_events(log, org.id).await;
    assert_eq!(events.len(), 1, "only the addition: {events:?}");
}

/// The owner renames and removes their own passkey; a removal writes
/// `user.passkey_removed` once per org, and removing it again is `false` and writes
/// nothing.
pub async fn the_owner_renames_and_removes_their_passkey(
    tenancy: &dyn TenancyStore,
    store: &dyn PasskeyStore,
    log: &dyn AuditLog,
) {
    let owner = new_user(tenancy).await;
    let org = new_org(tenancy, &owner).await;
    let user = new_user(tenancy).await;
    add_member(tenancy, &org, &user, roles_of(&["member"]), at(1)).await;
    let key = passkey_of(user.id, "Old name", 10);
    let kept = passkey_of(user.id, "Kept", 11);
    for (p, s) in [(&key, 10), (&kept, 11)] {
        store
            .add_passkey(p, &user_event(user.id, actions::USER_PASSKEY_ADDED, s))
            .await
            .unwrap();
    }
    let name = PasskeyName::new("New name").unwrap();
    assert!(store.rename_passkey(user.id, key.id, &name).await.unwrap());
    assert_eq!(store.passkeys(user.id).await.unwrap()[0].name, name);

    let removed = user_event(user.id, actions::USER_PASSKEY_REMOVED, 12);
    assert!(store.remove_passkey(user.id, key.id, &removed).await.unwrap());
    assert_eq!(store.passkeys(user.id).await.unwrap(), vec![kept], "the other stays");
    assert_eq!(store.find_passkey(&key.credential_id).await.unwrap(), None);
    assert!(
        !store
            .remove_passkey(user.id, key.id, &user_event(user.id, actions::USER_PASSKEY_REMOVED, 13))
            .await
            .unwrap()
    );
    assert!(!store.rename_passkey(user.id, key.id, &name).await.unwrap());
    let actions: Vec<String> = passkey_events(log, org.id)
        .await
        .iter()
        .map(|e| e.action.as_str().to_owned())
        .collect();
    assert_eq!(
        actions,
        ["user.passkey_added", "user.passkey_added", "user.passkey_removed"],
        "one removal event"
    );
}

/// The signature counter only moves forward: a higher counter is recorded with the new
/// credential and `last_used_at`; an equal or lower one is `CounterRegressed` and
/// changes nothing; 0 over a stored 0 is recorded (an authenticator without a counter);
/// an unknown id is `Unknown`.
pub async fn the_signature_counter_only_moves_forward(
    tenancy: &dyn TenancyStore,
    store: &dyn PasskeyStore,
    _log: &dyn AuditLog,
) {
    let user = new_user(tenancy).await;
    let counted = passkey_of(user.id, "Counted", 10);
    let uncounted = passkey_of(user.id, "Uncounted", 11);
    for (p, s) in [(&counted, 10), (&uncounted, 11)] {
        store
            .add_passkey(p, &user_event(user.id, actions::USER_PASSKEY_ADDED, s))
            .await
            .unwrap();
    }
    let find = |id: &[u8]| {
        let id = id.to_vec();
        async move { store.find_passkey(&id).await.unwrap().expect("stored") }
    };

    assert_eq!(
        store
            .record_passkey_use(counted.id, 5, "{\"c\":5}", at(20))
            .await
            .unwrap(),
        PasskeyUse::Recorded
    );
    let after = find(&counted.credential_id).await;
    assert_eq!(
        (after.sign_count, after.credential.as_str(), after.last_used_at),
        (5, "{\"c\":5}", Some(at(20)))
    );
    for (count, seconds) in [(5, 21), (4, 22), (0, 23)] {
        assert_eq!(
            store
                .record_passkey_use(counted.id, count, "{\"c\":\"clone\"}", at(seconds))
                .await
                .unwrap(),
            PasskeyUse::CounterRegressed,
            "counter {count} over 5"
        );
    }
    assert_eq!(
        find(&counted.credential_id).await,
        after,
        "unchanged by the regressions"
    );

    assert_eq!(
        store
            .record_passkey_use(uncounted.id, 0, "{\"c\":0}", at(30))
            .await
            .unwrap(),
        PasskeyUse::Recorded
    );
    assert_eq!(find(&uncounted.credential_id).await.last_used_at, Some(at(30)));
    assert_eq!(
        store
            .record_passkey_use(PasskeyId::generate(&**IDS, at(0)), 9, "{}", at(31))
            .await
            .unwrap(),
        PasskeyUse::Unknown
    );
}

/// Of concurrent uses reporting one counter, exactly one is recorded.
pub async fn concurrent_uses_of_one_counter_record_once(
    tenancy: &dyn TenancyStore,
    store: &dyn PasskeyStore,
    _log: &dyn AuditLog,
) {
    let user = new_user(tenancy).await;
    let key = passkey_of(user.id, "Raced", 10);
    store
        .add_passkey(&key, &user_event(user.id, actions::USER_PASSKEY_ADDED, 10))
        .await
        .unwrap();
    let uses = futures::future::join_all((0..4).map(|_| store.record_passkey_use(key.id, 7, "{}", at(20)))).await;
    let recorded = uses
        .into_iter()
        .map(|r| r.expect("each use answers"))
        .filter(|u| *u == PasskeyUse::Recorded)
        .count();
    assert_eq!(recorded, 1);
}

/// A ceremony is taken once, only for its own purpose, only before its expiry, and
/// comes back exactly as begun (its state and user); a taken hash cannot begin another.
pub async fn a_ceremony_is_taken_once_before_its_expiry(
    tenancy: &dyn TenancyStore,
    store: &dyn PasskeyStore,
    _log: &dyn AuditLog,
) {
    let user = new_user(tenancy).await;
    let registration = ceremony(CeremonyPurpose::Registration, Some(user.id));
    store.begin_ceremony(&registration).await.expect("begins");
    let err = store.begin_ceremony(&registration).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists {
                entity: "passkey_ceremony"
            })
        ),
        "{err:?}"
    );
    assert!(
        matches!(
            store
                .take_ceremony(CeremonyPurpose::SignIn, &registration.token_hash, at(1))
                .await
                .unwrap(),
            CeremonyUse::Unknown
        ),
        "another purpose does not find it"
    );
    match store
        .take_ceremony(CeremonyPurpose::Registration, &registration.token_hash, at(2))
        .await
        .unwrap()
    {
        CeremonyUse::Taken(taken) => {
            assert_eq!(taken.user, Some(user.id));
            assert_eq!(taken.state.expose_secret(), registration.state.expose_secret());
            assert_eq!(taken.expires_at, registration.expires_at);
            assert_eq!(taken.used_at, Some(at(2)));
        }
        other => panic!("expected Taken, got {other:?}"),
    }
    assert!(matches!(
        store
            .take_ceremony(CeremonyPurpose::Registration, &registration.token_hash, at(3))
            .await
            .unwrap(),
        CeremonyUse::AlreadyUsed
    ));

    let sign_in = ceremony(CeremonyPurpose::SignIn, None);
    store.begin_ceremony(&sign_in).await.unwrap();
    assert!(matches!(
        store
            .take_ceremony(CeremonyPurpose::SignIn, &sign_in.token_hash, at(300))
            .await
            .unwrap(),
        CeremonyUse::Expired
    ));
    assert!(matches!(
        store
            .take_ceremony(CeremonyPurpose::SignIn, &TokenHash([9; 32]), at(1))
            .await
            .unwrap(),
        CeremonyUse::Unknown
    ));
}

/// Of concurrent takes of one ceremony, exactly one is `Taken`.
pub async fn concurrent_takes_of_a_ceremony_take_it_once(
    _tenancy: &dyn TenancyStore,
    store: &dyn PasskeyStore,
    _log: &dyn AuditLog,
) {
    let sign_in = ceremony(CeremonyPurpose::SignIn, None);
    store.begin_ceremony(&sign_in).await.unwrap();
    let takes = futures::future::join_all(
        (0..4).map(|_| store.take_ceremony(CeremonyPurpose::SignIn, &sign_in.token_hash, at(1))),
    )
    .await;
    let taken = takes
        .into_iter()
        .map(|r| r.expect("each take answers"))
        .filter(|t| matches!(t, CeremonyUse::Taken(_)))
        .count();
    assert_eq!(taken, 1);
}

/// Pruning deletes the ceremonies that expired before the cut (used or not) and keeps
/// the live ones.
pub async fn pruning_deletes_expired_ceremonies_only(
    _tenancy: &dyn TenancyStore,
    store: &dyn PasskeyStore,
    _log: &dyn AuditLog,
) {
    let old = ceremony(CeremonyPurpose::SignIn, None);
    let live = PasskeyCeremonyRecord {
        expires_at: at(300) + Duration::days(1),
        ..ceremony(CeremonyPurpose::SignIn, None)
    };
    store.begin_ceremony(&old).await.unwrap();
    store.begin_ceremony(&live).await.unwrap();
    let pruned = store.prune_ceremonies(at(301)).await.unwrap();
    assert!(pruned >= 1, "at least the old one: {pruned}");
    assert!(matches!(
        store
            .take_ceremony(CeremonyPurpose::SignIn, &old.token_hash, at(1))
            .await
            .unwrap(),
        CeremonyUse::Unknown
    ));
    assert!(matches!(
        store
            .take_ceremony(CeremonyPurpose::SignIn, &live.token_hash, at(302))
            .await
            .unwrap(),
        CeremonyUse::Taken(_)
    ));
}

/// A passkey is a second factor for an org's MFA policy: a member of an org that requires
/// one, with neither a confirmed TOTP factor nor a passkey, falls short (`mfa_unmet`); a
/// passkey of their own meets it from its addition, another user's passkey never does, a
/// removal refused (another user's attempt) changes nothing, one of two removed still
/// meets it, and with the last one removed they fall short again.
pub async fn a_passkey_meets_an_orgs_mfa_policy_until_the_last_is_removed<S>(
    tenancy: &dyn TenancyStore,
    store: &S,
    _log: &dyn AuditLog,
) where
    S: PasskeyStore + MfaPolicyStore,
{
    let owner = new_user(tenancy).await;
    let org = new_org(tenancy, &owner).await;
    let elsewhere = new_org(tenancy, &owner).await;
    let ana = new_user(tenancy).await;
    let bob = new_user(tenancy).await;
    add_member(tenancy, &org, &ana, roles_of(&["member"]), at(1)).await;
    add_member(tenancy, &org, &bob, roles_of(&["member"]), at(1)).await;
    add_member(tenancy, &elsewhere, &ana, roles_of(&["member"]), at(1)).await;
    store
        .set_mfa_required(org.id, true, at(2), &audit_event(org.id))
        .await
        .expect("the policy is set");
    let org_id = org.id;
    let unmet = move |user: UserId| async move { store.mfa_unmet(org_id, user).await.expect("mfa_unmet reads") };
    assert!(unmet(ana.id).await, "no factor: unmet");

    let bobs = passkey_of(bob.id, "Bob's key", 10);
    store
        .add_passkey(&bobs, &user_event(bob.id, actions::USER_PASSKEY_ADDED, 10))
        .await
        .expect("add succeeds");
    assert!(!unmet(bob.id).await, "Bob's passkey meets it for Bob");
    assert!(unmet(ana.id).await, "another user's passkey does not count for Ana");

    let laptop = passkey_of(ana.id, "Laptop", 11);
    let phone = passkey_of(ana.id, "Phone", 12);
    for (p, s) in [(&laptop, 11), (&phone, 12)] {
        store
            .add_passkey(p, &user_event(ana.id, actions::USER_PASSKEY_ADDED, s))
            .await
            .expect("add succeeds");
    }
    assert!(!unmet(ana.id).await, "her own passkeys meet it");
    assert!(
        !store.mfa_unmet(elsewhere.id, ana.id).await.unwrap(),
        "an org without the policy asks nothing"
    );
    assert!(
        !store
            .remove_passkey(
                bob.id,
                laptop.id,
                &user_event(bob.id, actions::USER_PASSKEY_REMOVED, 13)
            )
            .await
            .unwrap(),
        "Bob cannot remove Ana's passkey"
    );
    assert!(!unmet(ana.id).await, "a refused removal changes nothing");
    assert!(
        store
            .remove_passkey(
                ana.id,
                laptop.id,
                &user_event(ana.id, actions::USER_PASSKEY_REMOVED, 14)
            )
            .await
            .unwrap()
    );
    assert!(!unmet(ana.id).await, "one passkey left still meets it");
    assert!(
        store
            .remove_passkey(ana.id, phone.id, &user_event(ana.id, actions::USER_PASSKEY_REMOVED, 15))
            .await
            .unwrap()
    );
    assert!(unmet(ana.id).await, "her last passkey removed: unmet again");
    assert!(!unmet(bob.id).await, "Bob's passkey still counts for Bob");

    store
        .set_mfa_required(org.id, false, at(16), &audit_event(org.id))
        .await
        .expect("the policy is unset");
    assert!(!unmet(ana.id).await, "no policy, nobody falls short");
}

/// Expands to one `#[tokio::test]` per clause of the [`PasskeyStore`] suite.
///
/// `$factory` is a future of `Option<(Arc<T>, P, L)>`: the tenancy store, the passkey
/// store (also the [`MfaPolicyStore`] of the same database) and the audit log, on one
/// database; `None` skips.
#[macro_export]
macro_rules! passkey_store_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some((tenancy, passkeys, log)) = $factory.await else {
                return;
            };
            $crate::testing::passkey::$clause(&*tenancy, &passkeys, &log).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::passkey_store_conformance! { @tests ($factory)
            an_added_passkey_is_listed_found_and_audited_per_org,
            a_credential_id_is_unique_across_users,
            another_users_passkey_can_be_neither_renamed_nor_removed,
            the_owner_renames_and_removes_their_passkey,
            the_signature_counter_only_moves_forward,
            concurrent_uses_of_one_counter_record_once,
            a_ceremony_is_taken_once_before_its_expiry,
            concurrent_takes_of_a_ceremony_take_it_once,
            pruning_deletes_expired_ceremonies_only,
            a_passkey_meets_an_orgs_mfa_policy_until_the_last_is_removed,
        }
    };
}

#[cfg(test)]
mod tests {
    /// Every clause function is in the macro's list, and the list names nothing else.
    #[test]
    fn the_macro_lists_every_clause() {
        let source = include_str!("passkey.rs");
        let mut functions: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split(['(', '<']).next())
            .collect();
        let start = source.find("@tests ($factory)\n").expect("the macro's list");
        let mut listed: Vec<&str> = source[start..]
            .lines()
            .skip(1)
            .map(str::trim)
            .take_while(|line| line.ends_with(','))
            .map(|line| line.trim_end_matches(','))
            .collect();
        functions.sort_unstable();
        listed.sort_unstable();
        assert_eq!(functions, listed);
    }
}
