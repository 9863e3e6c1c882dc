//! The [`EmailChangeStore`] conformance suite: one function per clause of the port's
//! contract.
//!
//! The switch spans the user's row, their password record and their verified address, so
//! every clause takes the change store together with the tenancy store that keeps the
//! users and the identity store's credential and verification ports over the same data
//! (for the SQL adapters: stores on one pool). Run them all with
//! [`email_change_store_conformance!`](crate::email_change_store_conformance).

use std::sync::LazyLock;

use secrecy::SecretString;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::identity::{
    CredentialStore, EmailChangeRecord, EmailChangeStore, EmailChangeUse, EmailVerificationStore, PasswordRecord,
};
use crate::ids::{IdGenerator, RandomIds, UserId};
use crate::store::{Conflict, StoreError};
use crate::tenancy::{DisplayName, Email, TenancyStore, TokenHash, User};

static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

fn t0() -> OffsetDateTime {
    datetime!(2026-03-01 12:00 UTC)
}

fn at(seconds: i64) -> OffsetDateTime {
    t0() + Duration::seconds(seconds)
}

fn new_email() -> Email {
    Email::new(&format!("c{}@example.com", IDS.generate(t0()).simple())).expect("a valid email")
}

/// A fresh `user.email_changed` event of `user` (a new id each time).
fn changed(user: UserId) -> crate::identity::UserAuditEvent {
    crate::testing::identity_audit::user_event(user, crate::audit::actions::USER_EMAIL_CHANGED, 60)
}

fn new_hash() -> TokenHash {
    TokenHash::of(&IDS.generate(t0()).to_string())
}

/// A stored user with a password record under their address.
async fn user_with_password(tenancy: &dyn TenancyStore, credentials: &dyn CredentialStore) -> User {
    let user = User {
        id: UserId::generate(&*IDS, t0()),
        email: new_email(),
        display_name: DisplayName::new("Ada Lovelace").expect("a valid name"),
        created_at: t0(),
    };
    tenancy.create_user(&user).await.expect("fixture: create_user");
    credentials
        .set_password(
            &PasswordRecord {
                user: user.id,
                email: user.email.clone(),
                hash: SecretString::from("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
                updated_at: t0(),
            },
            None,
        )
        .await
        .expect("fixture: set_password");
    user
}

/// A change token of `user` from their address to `to`, issued at 0, valid an hour.
fn change(user: &User, to: &Email) -> EmailChangeRecord {
    EmailChangeRecord {
        token_hash: new_hash(),
        user: user.id,
        old_email: user.email.clone(),
        new_email: to.clone(),
        created_at: t0(),
        expires_at: at(3600),
        used_at: None,
    }
}

/// Asserts that `user` still has `email` everywhere: their row, their password record,
/// and no record under `not`.
async fn assert_address(
    tenancy: &dyn TenancyStore,
    credentials: &dyn CredentialStore,
    user: UserId,
    email: &Email,
    not: &Email,
    what: &str,
) {
    let row = tenancy.get_user(user).await.unwrap().expect("the user exists");
    assert_eq!(&row.email, email, "{what}: the user's row");
    let found = tenancy.find_user_by_email(email).await.unwrap().map(|u| u.id);
    assert_eq!(found, Some(user), "{what}: found by the address");
    let password = credentials.find_password(email).await.unwrap().map(|p| p.user);
    assert_eq!(password, Some(user), "{what}: the password record's login email");
    let other = credentials.find_password(not).await.unwrap().map(|p| p.user);
    assert_ne!(other, Some(user), "{what}: no password record of the user under {not}");
}

/// Using a live token switches the user's row, their password record and their verified
/// address to the new address in one step, and marks the token used.
pub async fn email_change_switches_the_user_password_and_verified_address(
    store: &dyn EmailChangeStore,
    credentials: &dyn CredentialStore,
    verification: &dyn EmailVerificationStore,
    tenancy: &dyn TenancyStore,
) {
    let user = user_with_password(tenancy, credentials).await;
    let to = new_email();
    let token = change(&user, &to);
    store.issue_email_change(&token).await.expect("issue succeeds");
    assert_eq!(
        store.find_email_change(&token.token_hash).await.unwrap(),
        Some(token.clone()),
        "found as issued"
    );
    let used = store
        .change_email(&token.token_hash, user.id, at(60), &changed(user.id))
        .await
        .unwrap();
    let expected = EmailChangeRecord {
        used_at: Some(at(60)),
        ..token.clone()
    };
    assert_eq!(used, EmailChangeUse::Changed(expected.clone()));
    assert_address(tenancy, credentials, user.id, &to, &user.email, "after the change").await;
    assert_eq!(
        tenancy.find_user_by_email(&user.email).await.unwrap(),
        None,
        "the old address finds nobody"
    );
    let verified = verification.verified_email(user.id).await.unwrap().expect("verified");
    assert_eq!((verified.email, verified.verified_at), (to.clone(), at(60)));
    assert_eq!(
        store.find_email_change(&token.token_hash).await.unwrap(),
        Some(expected),
        "found as used"
    );
    assert_eq!(store.find_email_change(&new_hash()).await.unwrap(), None, "unknown");
}

/// A token works once, and a new request retires the user's earlier unused tokens (only
/// the latest works); another user's tokens are untouched.
pub async fn email_change_works_once_and_only_the_latest_request(
    store: &dyn EmailChangeStore,
    credentials: &dyn CredentialStore,
    _verification: &dyn EmailVerificationStore,
    tenancy: &dyn TenancyStore,
) {
    let user = user_with_password(tenancy, credentials).await;
    let other = user_with_password(tenancy, credentials).await;
    let first = change(&user, &new_email());
    let theirs = change(&other, &new_email());
    store.issue_email_change(&first).await.expect("issue succeeds");
    store.issue_email_change(&theirs).await.expect("issue succeeds");
    let latest = change(&user, &new_email());
    store.issue_email_change(&latest).await.expect("issue succeeds");
    let retired = store
        .change_email(&first.token_hash, user.id, at(10), &changed(user.id))
        .await
        .unwrap();
    assert!(
        matches!(retired, EmailChangeUse::AlreadyUsed(ref r) if r.used_at.is_some()),
        "an earlier request is retired by a later one: {retired:?}"
    );
    assert_address(
        tenancy,
        credentials,
        user.id,
        &user.email,
        &first.new_email,
        "nothing changed",
    )
    .await;
    let used = store
        .change_email(&latest.token_hash, user.id, at(11), &changed(user.id))
        .await
        .unwrap();
    assert!(matches!(used, EmailChangeUse::Changed(_)), "the latest works: {used:?}");
    let again = store
        .change_email(&latest.token_hash, user.id, at(12), &changed(user.id))
        .await
        .unwrap();
    assert_eq!(
        again,
        EmailChangeUse::AlreadyUsed(EmailChangeRecord {
            used_at: Some(at(11)),
            ..latest.clone()
        }),
        "a second use"
    );
    let theirs_used = store
        .change_email(&theirs.token_hash, other.id, at(13), &changed(other.id))
        .await
        .unwrap();
    assert!(
        matches!(theirs_used, EmailChangeUse::Changed(_)),
        "another user's token was not retired: {theirs_used:?}"
    );
}

/// A token past its expiry is `Expired`, another user's is `OtherUser` (and stays usable
/// by its own user), an unknown hash is `Unknown`; none changes anything.
pub async fn email_change_expired_other_users_and_unknown_tokens_change_nothing(
    store: &dyn EmailChangeStore,
    credentials: &dyn CredentialStore,
    _verification: &dyn EmailVerificationStore,
    tenancy: &dyn TenancyStore,
) {
    let user = user_with_password(tenancy, credentials).await;
    let bob = user_with_password(tenancy, credentials).await;
    let token = change(&user, &new_email());
    store.issue_email_change(&token).await.expect("issue succeeds");
    let late = store
        .change_email(&token.token_hash, user.id, token.expires_at, &changed(user.id))
        .await
        .unwrap();
    assert_eq!(late, EmailChangeUse::Expired(token.clone()), "at its expiry");
    let stolen = store
        .change_email(&token.token_hash, bob.id, at(1), &changed(bob.id))
        .await
        .unwrap();
    assert_eq!(stolen, EmailChangeUse::OtherUser, "another user's token");
    assert_address(tenancy, credentials, bob.id, &bob.email, &token.new_email, "bob").await;
    assert_eq!(
        store
            .change_email(&new_hash(), user.id, at(1), &changed(user.id))
            .await
            .unwrap(),
        EmailChangeUse::Unknown
    );
    assert_address(
        tenancy,
        credentials,
        user.id,
        &user.email,
        &token.new_email,
        "nothing yet",
    )
    .await;
    let used = store
        .change_email(&token.token_hash, user.id, at(2), &changed(user.id))
        .await
        .unwrap();
    assert!(
        matches!(used, EmailChangeUse::Changed(_)),
        "still usable by its own user: {used:?}"
    );
}

/// When another user, or another user's password record, has the new address by the time
/// the token is used, the answer is `AddressTaken`, nothing changes and the token stays
/// unused.
pub async fn email_change_to_an_address_taken_since_changes_nothing(
    store: &dyn EmailChangeStore,
    credentials: &dyn CredentialStore,
    verification: &dyn EmailVerificationStore,
    tenancy: &dyn TenancyStore,
) {
    let user = user_with_password(tenancy, credentials).await;
    let token = change(&user, &new_email());
    store.issue_email_change(&token).await.expect("issue succeeds");
    let taker = User {
        id: UserId::generate(&*IDS, t0()),
        email: token.new_email.clone(),
        display_name: DisplayName::new("Taker").expect("a valid name"),
        created_at: t0(),
    };
    tenancy.create_user(&taker).await.expect("the address is free then");
    let taken = store
        .change_email(&token.token_hash, user.id, at(5), &changed(user.id))
        .await
        .unwrap();
    assert_eq!(taken, EmailChangeUse::AddressTaken(token.clone()));
    assert_address(tenancy, credentials, user.id, &user.email, &token.new_email, "taken").await;
    assert_eq!(
        verification.verified_email(user.id).await.unwrap(),
        None,
        "nothing verified"
    );
    assert_eq!(
        store.find_email_change(&token.token_hash).await.unwrap(),
        Some(token.clone()),
        "the token stays unused"
    );

    // A password record alone (the identity store stands alone) also holds the address.
    let second = user_with_password(tenancy, credentials).await;
    let to = new_email();
    credentials
        .set_password(
            &PasswordRecord {
                user: UserId::generate(&*IDS, t0()),
                email: to.clone(),
                hash: SecretString::from("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
                updated_at: t0(),
            },
            None,
        )
        .await
        .expect("fixture: a password record of another user");
    let token = change(&second, &to);
    store.issue_email_change(&token).await.expect("issue succeeds");
    let taken = store
        .change_email(&token.token_hash, second.id, at(6), &changed(second.id))
        .await
        .unwrap();
    assert_eq!(taken, EmailChangeUse::AddressTaken(token.clone()));
    assert_address(
        tenancy,
        credentials,
        second.id,
        &second.email,
        &to,
        "taken by a password",
    )
    .await;
}

/// A token whose user's address is no longer the one they had when they asked is
/// `OtherAddress`, and changes nothing.
pub async fn email_change_after_the_address_moved_on_is_other_address(
    store: &dyn EmailChangeStore,
    credentials: &dyn CredentialStore,
    _verification: &dyn EmailVerificationStore,
    tenancy: &dyn TenancyStore,
) {
    let user = user_with_password(tenancy, credentials).await;
    let first = change(&user, &new_email());
    store.issue_email_change(&first).await.expect("issue succeeds");
    let used = store
        .change_email(&first.token_hash, user.id, at(1), &changed(user.id))
        .await
        .unwrap();
    assert!(matches!(used, EmailChangeUse::Changed(_)), "{used:?}");
    // Issued from the old address (as a request that read the user before the change).
    let stale = change(&user, &new_email());
    store.issue_email_change(&stale).await.expect("issue succeeds");
    let refused = store
        .change_email(&stale.token_hash, user.id, at(2), &changed(user.id))
        .await
        .unwrap();
    assert_eq!(refused, EmailChangeUse::OtherAddress(stale.clone()));
    assert_address(
        tenancy,
        credentials,
        user.id,
        &first.new_email,
        &stale.new_email,
        "moved on",
    )
    .await;
}

/// Issuing a token whose hash is taken is `AlreadyExists` (`email_change`) and changes
/// nothing.
pub async fn email_change_issue_with_a_taken_hash_is_already_exists(
    store: &dyn EmailChangeStore,
    credentials: &dyn CredentialStore,
    _verification: &dyn EmailVerificationStore,
    tenancy: &dyn TenancyStore,
) {
    let user = user_with_password(tenancy, credentials).await;
    let token = change(&user, &new_email());
    store.issue_email_change(&token).await.expect("issue succeeds");
    let twin = EmailChangeRecord {
        new_email: new_email(),
        ..token.clone()
    };
    let err = store.issue_email_change(&twin).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "email_change" })
        ),
        "{err:?}"
    );
    assert_eq!(
        store.find_email_change(&token.token_hash).await.unwrap(),
        Some(token),
        "the first is kept"
    );
}

/// Of two concurrent uses of one token, one is `Changed` and the other `AlreadyUsed`.
pub async fn email_change_used_twice_at_once_changes_once(
    store: &dyn EmailChangeStore,
    credentials: &dyn CredentialStore,
    _verification: &dyn EmailVerificationStore,
    tenancy: &dyn TenancyStore,
) {
    let user = user_with_password(tenancy, credentials).await;
    let token = change(&user, &new_email());
    store.issue_email_change(&token).await.expect("issue succeeds");
    let (first, second) = (changed(user.id), changed(user.id));
    let (a, b) = futures::join!(
        store.change_email(&token.token_hash, user.id, at(1), &first),
        store.change_email(&token.token_hash, user.id, at(2), &second),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let changed = outcomes
        .iter()
        .filter(|o| matches!(o, EmailChangeUse::Changed(_)))
        .count();
    let used = outcomes
        .iter()
        .filter(|o| matches!(o, EmailChangeUse::AlreadyUsed(_)))
        .count();
    assert_eq!((changed, used), (1, 1), "{outcomes:?}");
}

/// A change racing a sign-up (a new user) with the same address: exactly one gets it.
/// Either the change wins and the new user is `EmailTaken`, or the user is made and the
/// change is `AddressTaken` with nothing changed.
pub async fn email_change_racing_a_sign_up_of_the_address_lets_one_win(
    store: &dyn EmailChangeStore,
    credentials: &dyn CredentialStore,
    _verification: &dyn EmailVerificationStore,
    tenancy: &dyn TenancyStore,
) {
    for round in 0..8 {
        let user = user_with_password(tenancy, credentials).await;
        let token = change(&user, &new_email());
        store.issue_email_change(&token).await.expect("issue succeeds");
        let newcomer = User {
            id: UserId::generate(&*IDS, t0()),
            email: token.new_email.clone(),
            display_name: DisplayName::new("Newcomer").expect("a valid name"),
            created_at: t0(),
        };
        let event = changed(user.id);
        let (changed, created) = futures::join!(
            store.change_email(&token.token_hash, user.id, at(1), &event),
            tenancy.create_user(&newcomer),
        );
        let holder = tenancy
            .find_user_by_email(&token.new_email)
            .await
            .unwrap()
            .map(|u| u.id);
        match (changed.unwrap(), created) {
            (EmailChangeUse::Changed(_), Err(StoreError::Conflict(Conflict::EmailTaken))) => {
                assert_eq!(holder, Some(user.id), "round {round}: the change won");
                assert_address(tenancy, credentials, user.id, &token.new_email, &user.email, "won").await;
            }
            (EmailChangeUse::AddressTaken(_), Ok(())) => {
                assert_eq!(holder, Some(newcomer.id), "round {round}: the sign-up won");
                assert_address(tenancy, credentials, user.id, &user.email, &token.new_email, "lost").await;
            }
            (changed, created) => panic!("round {round}: both or neither won: {changed:?}, {created:?}"),
        }
    }
}

/// Runs every [`EmailChangeStore`] clause as its own `#[tokio::test]`. `$factory` is a
/// future of `Option<(S, Arc<T>)>`: `S` the identity store (an [`EmailChangeStore`],
/// [`CredentialStore`] and [`EmailVerificationStore`]) and `T` the [`TenancyStore`] over
/// the same users; `None` skips.
#[macro_export]
macro_rules! email_change_store_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some((identity, tenancy)) = $factory.await else {
                return;
            };
            $crate::testing::email_change::$clause(&identity, &identity, &identity, &*tenancy).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::email_change_store_conformance! { @tests ($factory)
            email_change_switches_the_user_password_and_verified_address,
            email_change_works_once_and_only_the_latest_request,
            email_change_expired_other_users_and_unknown_tokens_change_nothing,
            email_change_to_an_address_taken_since_changes_nothing,
            email_change_after_the_address_moved_on_is_other_address,
            email_change_issue_with_a_taken_hash_is_already_exists,
            email_change_used_twice_at_once_changes_once,
            email_change_racing_a_sign_up_of_the_address_lets_one_win,
        }
    };
}
