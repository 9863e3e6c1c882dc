//! The identity stores' conformance suite ([`CredentialStore`], [`SessionStore`],
//! [`ApiKeyStore`], [`LoginAttemptStore`], [`OneTimeTokenStore`], [`EmailVerificationStore`],
//! [`TotpFactorStore`], [`MfaPolicyStore`], and the optional
//! [`SessionMembershipStore`]):
//! one function per clause of the ports' contracts.
//!
//! Every function takes the one port it tests, makes its records with fresh ids, emails
//! and token hashes, and panics with a message naming the clause if the store breaks it.
//! Run them all with [`identity_store_conformance!`](crate::identity_store_conformance),
//! on a value that implements the four ports (every backend has one such store).

use std::sync::LazyLock;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::context::{Principal, ServiceName};
use crate::identity::{
    ApiKeyRecord, ApiKeyStore, CredentialStore, LoginAttemptStore, MfaPolicyStore, OneTimeTokenRecord,
    OneTimeTokenStore, PasswordRecord, Scope, SessionMembershipStore, SessionRecord, SessionStore,
    SessionWithMembership, ThrottleKey, TokenPurpose, TokenUse, TotpFactorRecord, TotpFactorStore,
};
use crate::identity::{EmailTokenRecord, EmailTokenUse, EmailVerificationStore, VerifiedEmail};
use crate::identity::{PasskeyName, PasskeyRecord, PasskeyStore};
use crate::ids::{ApiKeyId, IdGenerator, OrgId, PasskeyId, RandomIds, SessionId, UserId};
use crate::store::{Conflict, StoreError};
use crate::tenancy::{Email, TenancyStore, TokenHash};
use crate::testing::audit::audit_event;
use crate::testing::identity_audit::user_event;
use secrecy::{ExposeSecret, SecretBox, SecretString};

// ---------------------------------------------------------------------------------------
// CredentialStore
// ---------------------------------------------------------------------------------------

/// `set_password` stores a record `find_password` reads back by email; setting it again
/// replaces the hash, the time and the email (the old email then finds nothing).
pub async fn set_password_then_find_reads_it_back_and_replaces(store: &dyn CredentialStore) {
    let (user, email) = (new_user(), new_email());
    let first = password(user, &email, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", at(0));
    store.set_password(&first, None).await.expect("set_password succeeds");
    let found = store.find_password(&email).await.unwrap().expect("the record is found");
    assert_same_password(&found, &first, "the first record");

    let other_email = new_email();
    let second = password(
        user,
        &other_email,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaDI",
        at(60),
    );
    store.set_password(&second, None).await.expect("replacing succeeds");
    let found = store
        .find_password(&other_email)
        .await
        .unwrap()
        .expect("found by the new email");
    assert_same_password(&found, &second, "the replaced record");
    assert!(
        store.find_password(&email).await.unwrap().is_none(),
        "the old email finds nothing"
    );
}

/// `find_password` of an email nobody has is `None`.
pub async fn find_password_of_an_unknown_email_is_none(store: &dyn CredentialStore) {
    assert!(store.find_password(&new_email()).await.unwrap().is_none());
}

/// `set_password` with another user's email is `Conflict::EmailTaken` and changes nothing.
pub async fn set_password_with_another_users_email_is_email_taken(store: &dyn CredentialStore) {
    let email = new_email();
    let first = password(new_user(), &email, "$argon2id$first", at(0));
    store.set_password(&first, None).await.expect("set_password succeeds");
    let err = store
        .set_password(&password(new_user(), &email, "$argon2id$second", at(1)), None)
        .await
        .expect_err("another user's email is refused");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::EmailTaken)),
        "expected EmailTaken, got {err:?}"
    );
    let found = store.find_password(&email).await.unwrap().expect("still found");
    assert_same_password(&found, &first, "the first record is unchanged");
}

// ---------------------------------------------------------------------------------------
// SessionStore
// ---------------------------------------------------------------------------------------

/// `create` stores a session `find_by_token` reads back exactly; an unknown hash is `None`.
pub async fn session_create_then_find_by_token_reads_it_back(store: &dyn SessionStore) {
    let session = session_value(new_user(), 0);
    store.create(&session, None).await.expect("create succeeds");
    assert_eq!(
        store.find_by_token(&session.token_hash).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(store.find_by_token(&new_hash()).await.unwrap(), None, "an unknown hash");
    let with_org = SessionRecord {
        active_org: Some(new_org()),
        ..session_value(new_user(), 5)
    };
    store.create(&with_org, None).await.expect("create succeeds");
    assert_eq!(store.find_by_token(&with_org.token_hash).await.unwrap(), Some(with_org));
}

/// `create` with a taken id or token hash is `Conflict::AlreadyExists` (`session`).
pub async fn session_create_with_a_taken_id_or_hash_is_already_exists(store: &dyn SessionStore) {
    let session = session_value(new_user(), 0);
    store.create(&session, None).await.expect("create succeeds");
    for (again, what) in [
        (
            SessionRecord {
                token_hash: new_hash(),
                ..session.clone()
            },
            "a taken id",
        ),
        (
            SessionRecord {
                id: SessionId::generate(&*IDS, t0()),
                ..session.clone()
            },
            "a taken token hash",
        ),
    ] {
        let err = store.create(&again, None).await.expect_err(what);
        assert!(
            matches!(err, StoreError::Conflict(Conflict::AlreadyExists { entity: "session" })),
            "{what}: expected AlreadyExists, got {err:?}"
        );
    }
    assert_eq!(store.find_by_token(&session.token_hash).await.unwrap(), Some(session));
}

/// `touch` sets `last_seen_at` (never moving it back) and the active org; it is
/// `NotFound` for an unknown or revoked session.
pub async fn session_touch_records_use_and_the_active_org(store: &dyn SessionStore) {
    let user = new_user();
    let session = session_value(user, 0);
    store.create(&session, None).await.expect("create succeeds");
    let org = new_org();
    store
        .touch(session.id, at(100), Some(org))
        .await
        .expect("touch succeeds");
    let read = store.find_by_token(&session.token_hash).await.unwrap().expect("found");
    assert_eq!((read.last_seen_at, read.active_org), (at(100), Some(org)));
    store.touch(session.id, at(50), None).await.expect("touch succeeds");
    let read = store.find_by_token(&session.token_hash).await.unwrap().expect("found");
    assert_eq!(
        (read.last_seen_at, read.active_org),
        (at(100), None),
        "an earlier time is not kept; the org is"
    );

    let err = store
        .touch(SessionId::generate(&*IDS, t0()), at(1), None)
        .await
        .expect_err("an unknown session");
    assert!(matches!(err, StoreError::NotFound { entity: "session" }), "{err:?}");
    store
        .revoke(user, session.id, at(200), None)
        .await
        .expect("revoke succeeds");
    let err = store
        .touch(session.id, at(300), None)
        .await
        .expect_err("a revoked session");
    assert!(matches!(err, StoreError::NotFound { entity: "session" }), "{err:?}");
    let read = store.find_by_token(&session.token_hash).await.unwrap().expect("found");
    assert_eq!(read.last_seen_at, at(100), "a revoked session is not touched");
}

/// `revoke` sets `revoked_at` once and returns the session; another user's session or an
/// unknown id is `NotFound` and changes nothing.
pub async fn session_revoke_is_scoped_to_its_user_and_keeps_the_first_time(store: &dyn SessionStore) {
    let user = new_user();
    let session = session_value(user, 0);
    store.create(&session, None).await.expect("create succeeds");
    for (who, id, what) in [
        (new_user(), session.id, "another user's session"),
        (user, SessionId::generate(&*IDS, t0()), "an unknown id"),
    ] {
        let err = store.revoke(who, id, at(10), None).await.expect_err(what);
        assert!(
            matches!(err, StoreError::NotFound { entity: "session" }),
            "{what}: {err:?}"
        );
    }
    assert_eq!(
        store.find_by_token(&session.token_hash).await.unwrap(),
        Some(session.clone()),
        "not revoked by a refused call"
    );
    let revoked = store
        .revoke(user, session.id, at(20), None)
        .await
        .expect("revoke succeeds");
    assert_eq!(
        revoked,
        SessionRecord {
            revoked_at: Some(at(20)),
            ..session.clone()
        }
    );
    let again = store
        .revoke(user, session.id, at(30), None)
        .await
        .expect("revoking again succeeds");
    assert_eq!(again.revoked_at, Some(at(20)), "the first time is kept");
}

/// `revoke_all` revokes every unrevoked session of the user and no one else's, and
/// returns how many it revoked.
pub async fn session_revoke_all_revokes_only_that_users_sessions(store: &dyn SessionStore) {
    let (user, other) = (new_user(), new_user());
    let mine: Vec<SessionRecord> = (0..3).map(|i| session_value(user, i)).collect();
    for session in &mine {
        store.create(session, None).await.expect("create succeeds");
    }
    let theirs = session_value(other, 0);
    store.create(&theirs, None).await.expect("create succeeds");
    store
        .revoke(user, mine[0].id, at(5), None)
        .await
        .expect("revoke succeeds");
    assert_eq!(store.revoke_all(user, at(10), None).await.unwrap(), 2, "two were live");
    for session in &mine[1..] {
        let read = store.find_by_token(&session.token_hash).await.unwrap().expect("found");
        assert_eq!(read.revoked_at, Some(at(10)));
    }
    let first = store.find_by_token(&mine[0].token_hash).await.unwrap().expect("found");
    assert_eq!(first.revoked_at, Some(at(5)), "an earlier revocation is kept");
    assert_eq!(
        store.find_by_token(&theirs.token_hash).await.unwrap(),
        Some(theirs),
        "another user's session is untouched"
    );
    assert_eq!(store.revoke_all(user, at(20), None).await.unwrap(), 0, "none left");
}

/// `rotate` revokes the old session and stores the new one together; rotating a revoked
/// or unknown session is `NotFound` and stores nothing.
pub async fn session_rotate_replaces_the_old_session_atomically(store: &dyn SessionStore) {
    let user = new_user();
    let old = session_value(user, 0);
    store.create(&old, None).await.expect("create succeeds");
    let new = session_value(user, 10);
    store.rotate(old.id, &new, at(10), None).await.expect("rotate succeeds");
    let read_old = store.find_by_token(&old.token_hash).await.unwrap().expect("found");
    assert_eq!(read_old.revoked_at, Some(at(10)), "the old session is revoked");
    assert_eq!(store.find_by_token(&new.token_hash).await.unwrap(), Some(new));

    let late = session_value(user, 20);
    let err = store
        .rotate(old.id, &late, at(20), None)
        .await
        .expect_err("the old one is revoked");
    assert!(matches!(err, StoreError::NotFound { entity: "session" }), "{err:?}");
    assert_eq!(
        store.find_by_token(&late.token_hash).await.unwrap(),
        None,
        "a refused rotation stores nothing"
    );
    let unknown = session_value(user, 30);
    let err = store
        .rotate(SessionId::generate(&*IDS, t0()), &unknown, at(30), None)
        .await
        .expect_err("an unknown session");
    assert!(matches!(err, StoreError::NotFound { entity: "session" }), "{err:?}");
    assert_eq!(store.find_by_token(&unknown.token_hash).await.unwrap(), None);
}

/// Of two rotations of one session at once, exactly one succeeds.
pub async fn session_rotate_twice_at_once_succeeds_once(store: &dyn SessionStore) {
    let user = new_user();
    let old = session_value(user, 0);
    store.create(&old, None).await.expect("create succeeds");
    let (a, b) = (session_value(user, 1), session_value(user, 2));
    let (ra, rb) = futures::join!(
        store.rotate(old.id, &a, at(1), None),
        store.rotate(old.id, &b, at(2), None)
    );
    assert!(ra.is_ok() != rb.is_ok(), "exactly one wins: {ra:?} / {rb:?}");
    let stored = [
        store.find_by_token(&a.token_hash).await.unwrap().is_some(),
        store.find_by_token(&b.token_hash).await.unwrap().is_some(),
    ];
    assert_eq!(stored, [ra.is_ok(), rb.is_ok()], "only the winner's session is stored");
}

/// `list` returns the user's sessions that are neither revoked nor past their absolute
/// expiry at `at`, newest first; pages (`before` the last id read, `limit`) hold at most
/// `limit` and together every live session once.
pub async fn session_list_returns_live_sessions_newest_first(store: &dyn SessionStore) {
    let user = new_user();
    let sessions: Vec<SessionRecord> = (0..4).map(|i| session_value(user, i * 10)).collect();
    for session in &sessions {
        store.create(session, None).await.expect("create succeeds");
    }
    store
        .create(&session_value(new_user(), 0), None)
        .await
        .expect("create succeeds");
    store
        .revoke(user, sessions[1].id, at(50), None)
        .await
        .expect("revoke succeeds");
    let expired = SessionRecord {
        absolute_expires_at: at(60),
        ..session_value(user, 40)
    };
    store.create(&expired, None).await.expect("create succeeds");
    let listed = store.list(user, at(100), None, 100).await.unwrap();
    let live = vec![sessions[3].clone(), sessions[2].clone(), sessions[0].clone()];
    assert_eq!(listed, live, "live sessions, newest first");
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store.list(user, at(100), before, 2).await.unwrap();
        assert!(page.len() <= 2, "a page holds at most `limit`: {page:?}");
        before = page.last().map(|s| s.id);
        let done = page.len() < 2;
        paged.extend(page);
        if done {
            break;
        }
        assert!(paged.len() <= live.len(), "the pages end");
    }
    assert_eq!(paged, live, "the pages hold every live session once, in order");
    assert_eq!(
        store.list(user, at(100), Some(sessions[2].id), 1).await.unwrap(),
        vec![sessions[0].clone()],
        "after a cursor, the next live session (revoked and expired ones skipped)"
    );
    assert_eq!(store.list(new_user(), at(100), None, 100).await.unwrap(), vec![]);
}

/// `find_session_with_membership` answers exactly what `find_by_token`, then
/// `get_membership` (the session's user in its active org) and `mfa_unmet` (the same org
/// and user) answer: for an unknown hash, a session without an active org, a member with
/// several roles, an active org the user is not a member of, a member since removed, a
/// revoked session, and a member of an org that requires a second factor: without one,
/// with a pending TOTP factor, with another user's passkey, with a passkey of their own
/// (which meets it) and with it removed again, and with a TOTP factor confirmed.
///
/// `sessions`, `joined` and `factors` must be stores over the same sessions, factors and
/// passkeys, and `tenancy` over the memberships `joined` reads (for the SQL adapters:
/// stores on one pool).
pub async fn session_membership_reads_equal_the_two_reads<F>(
    sessions: &dyn SessionStore,
    joined: &dyn SessionMembershipStore,
    tenancy: &dyn TenancyStore,
    factors: &F,
) where
    F: MfaPolicyStore + TotpFactorStore + PasskeyStore,
{
    async fn separate_reads(
        sessions: &dyn SessionStore,
        tenancy: &dyn TenancyStore,
        policies: &dyn MfaPolicyStore,
        hash: &TokenHash,
    ) -> Option<SessionWithMembership> {
        let session = sessions.find_by_token(hash).await.expect("find_by_token")?;
        let (membership, mfa_unmet) = match session.active_org {
            Some(org) => (
                tenancy.get_membership(org, session.user).await.expect("get_membership"),
                policies.mfa_unmet(org, session.user).await.expect("mfa_unmet"),
            ),
            None => (None, false),
        };
        Some(SessionWithMembership {
            session,
            membership,
            mfa_unmet,
        })
    }
    async fn check(
        sessions: &dyn SessionStore,
        joined: &dyn SessionMembershipStore,
        tenancy: &dyn TenancyStore,
        policies: &dyn MfaPolicyStore,
        hash: &TokenHash,
        what: &str,
    ) -> Option<SessionWithMembership> {
        let found = joined
            .find_session_with_membership(hash)
            .await
            .unwrap_or_else(|err| panic!("{what}: find_session_with_membership failed: {err:?}"));
        assert_eq!(found, separate_reads(sessions, tenancy, policies, hash).await, "{what}");
        found
    }
    let read = |hash: TokenHash, what: &'static str| async move {
        check(sessions, joined, tenancy, factors, &hash, what).await
    };

    assert_eq!(read(new_hash(), "an unknown hash").await, None);

    let owner = super::tenancy::new_user(tenancy).await;
    let org = super::tenancy::new_org(tenancy, &owner).await;
    let member = super::tenancy::new_user(tenancy).await;
    let roles = super::tenancy::roles_of(&["admin", "billing"]);
    super::tenancy::add_member(tenancy, &org, &member, roles.clone(), at(1)).await;
    let elsewhere = super::tenancy::new_org(tenancy, &owner).await;

    let no_org = session_value(member.id, 2);
    sessions.create(&no_org, None).await.expect("create succeeds");
    let found = read(no_org.token_hash, "no active org").await;
    assert_eq!(
        found,
        Some(SessionWithMembership {
            session: no_org.clone(),
            membership: None,
            mfa_unmet: false,
        }),
        "no active org: the session, no membership"
    );

    let in_org = SessionRecord {
        active_org: Some(org.id),
        ..session_value(member.id, 3)
    };
    sessions.create(&in_org, None).await.expect("create succeeds");
    let found = read(in_org.token_hash, "a member with two roles").await;
    let found = found.expect("a member with two roles: the session is found");
    let membership = found
        .membership
        .expect("a member with two roles: the membership is read");
    assert_eq!(membership.roles, roles, "both roles");
    assert_eq!((membership.org, membership.user), (org.id, member.id));
    assert!(!found.mfa_unmet, "an org without an MFA policy asks for nothing");

    let not_member = SessionRecord {
        active_org: Some(elsewhere.id),
        ..session_value(member.id, 4)
    };
    sessions.create(&not_member, None).await.expect("create succeeds");
    let found = read(not_member.token_hash, "an org of others").await;
    assert_eq!(
        found.map(|found| (found.session, found.membership)),
        Some((not_member, None)),
        "an org of others: no membership"
    );

    let revoked = SessionRecord {
        active_org: Some(org.id),
        ..session_value(member.id, 5)
    };
    sessions.create(&revoked, None).await.expect("create succeeds");
    sessions
        .revoke(member.id, revoked.id, at(6), None)
        .await
        .expect("revoke succeeds");
    let found = read(revoked.token_hash, "a revoked session").await;
    let found = found.expect("a revoked session is still found");
    assert_eq!(found.session.revoked_at, Some(at(6)), "a revoked session: revoked");
    assert!(
        found.membership.is_some(),
        "a revoked session: the membership is read too"
    );

    factors
        .set_mfa_required(org.id, true, at(7), &audit_event(org.id))
        .await
        .expect("set_mfa_required succeeds");
    let found = read(in_org.token_hash, "a member without a factor in an org requiring one").await;
    assert!(
        found.is_some_and(|found| found.mfa_unmet && found.membership.is_some()),
        "a member without a factor in an org requiring one: unmet"
    );
    let found = read(no_org.token_hash, "the same member without an active org").await;
    assert!(
        found.is_some_and(|found| !found.mfa_unmet),
        "without an active org, no policy applies"
    );
    factors
        .begin_enrollment(&totp_value(member.id, 8, 0))
        .await
        .expect("enrollment begins");
    let found = read(in_org.token_hash, "a member with a pending factor").await;
    assert!(
        found.is_some_and(|found| found.mfa_unmet),
        "a pending factor does not meet the policy"
    );
    let others = passkey_value(owner.id, 8);
    factors
        .add_passkey(
            &others,
            &user_event(owner.id, crate::audit::actions::USER_PASSKEY_ADDED, 8),
        )
        .await
        .expect("add_passkey succeeds");
    let found = read(in_org.token_hash, "a member beside another user's passkey").await;
    assert!(
        found.is_some_and(|found| found.mfa_unmet),
        "another user's passkey does not meet the member's policy"
    );
    let own = passkey_value(member.id, 8);
    factors
        .add_passkey(
            &own,
            &user_event(member.id, crate::audit::actions::USER_PASSKEY_ADDED, 8),
        )
        .await
        .expect("add_passkey succeeds");
    let found = read(in_org.token_hash, "a member with a passkey").await;
    assert!(
        found.is_some_and(|found| !found.mfa_unmet),
        "a passkey of one's own meets the policy"
    );
    assert!(
        factors
            .remove_passkey(
                member.id,
                own.id,
                &user_event(member.id, crate::audit::actions::USER_PASSKEY_REMOVED, 8)
            )
            .await
            .expect("remove_passkey succeeds")
    );
    let found = read(in_org.token_hash, "a member whose passkey was removed").await;
    assert!(
        found.is_some_and(|found| found.mfa_unmet),
        "a removed passkey no longer meets the policy"
    );
    assert!(
        factors
            .confirm_totp(member.id, 100, &[new_hash()], at(9), &unaudited(member.id))
            .await
            .expect("confirm_totp succeeds")
    );
    let found = read(in_org.token_hash, "a member with a confirmed factor").await;
    assert!(
        found.is_some_and(|found| !found.mfa_unmet),
        "a confirmed factor meets the policy"
    );

    tenancy
        .remove_member(org.id, member.id, &audit_event(org.id))
        .await
        .expect("remove_member succeeds");
    let found = read(in_org.token_hash, "a removed member").await;
    assert_eq!(
        found.map(|found| found.membership),
        Some(None),
        "a removed member: the session, no membership"
    );
}

// ---------------------------------------------------------------------------------------
// ApiKeyStore
// ---------------------------------------------------------------------------------------

/// `create` stores a key `find_by_token` reads back exactly (scopes in order, expiry,
/// creator); an unknown hash is `None`.
pub async fn api_key_create_then_find_by_token_reads_it_back(store: &dyn ApiKeyStore) {
    let key = key_value(new_org(), 0);
    store
        .create(&key, &audit_event(key.org))
        .await
        .expect("create succeeds");
    assert_eq!(store.find_by_token(&key.token_hash).await.unwrap(), Some(key));
    let bare = ApiKeyRecord {
        expires_at: None,
        scopes: vec![scope("*", "*")],
        created_by: Principal::User(new_user()),
        ..key_value(new_org(), 1)
    };
    store
        .create(&bare, &audit_event(bare.org))
        .await
        .expect("create succeeds");
    assert_eq!(store.find_by_token(&bare.token_hash).await.unwrap(), Some(bare));
    assert_eq!(store.find_by_token(&new_hash()).await.unwrap(), None);
}

/// `create` with a taken id or token hash is `Conflict::AlreadyExists` (`api_key`).
pub async fn api_key_create_with_a_taken_id_or_hash_is_already_exists(store: &dyn ApiKeyStore) {
    let key = key_value(new_org(), 0);
    store
        .create(&key, &audit_event(key.org))
        .await
        .expect("create succeeds");
    for (again, what) in [
        (
            ApiKeyRecord {
                token_hash: new_hash(),
                ..key.clone()
            },
            "a taken id",
        ),
        (
            ApiKeyRecord {
                id: ApiKeyId::generate(&*IDS, t0()),
                ..key.clone()
            },
            "a taken token hash",
        ),
    ] {
        let err = store.create(&again, &audit_event(again.org)).await.expect_err(what);
        assert!(
            matches!(err, StoreError::Conflict(Conflict::AlreadyExists { entity: "api_key" })),
            "{what}: expected AlreadyExists, got {err:?}"
        );
    }
}

/// `touch` sets `last_used_at`, never moving it back; an unknown key is `NotFound`.
pub async fn api_key_touch_records_the_last_use(store: &dyn ApiKeyStore) {
    let key = key_value(new_org(), 0);
    store
        .create(&key, &audit_event(key.org))
        .await
        .expect("create succeeds");
    store.touch(key.id, at(100)).await.expect("touch succeeds");
    store.touch(key.id, at(50)).await.expect("touch succeeds");
    let read = store.find_by_token(&key.token_hash).await.unwrap().expect("found");
    assert_eq!(read.last_used_at, Some(at(100)));
    let err = store
        .touch(ApiKeyId::generate(&*IDS, t0()), at(1))
        .await
        .expect_err("an unknown key");
    assert!(matches!(err, StoreError::NotFound { entity: "api_key" }), "{err:?}");
}

/// `revoke` sets `revoked_at` once and returns the key; another org's key or an unknown
/// id is `NotFound` and changes nothing.
pub async fn api_key_revoke_is_scoped_to_its_org_and_keeps_the_first_time(store: &dyn ApiKeyStore) {
    let org = new_org();
    let key = key_value(org, 0);
    store
        .create(&key, &audit_event(key.org))
        .await
        .expect("create succeeds");
    for (which, id, what) in [
        (new_org(), key.id, "another org's key"),
        (org, ApiKeyId::generate(&*IDS, t0()), "an unknown id"),
    ] {
        let err = store
            .revoke(which, id, at(10), &audit_event(which))
            .await
            .expect_err(what);
        assert!(
            matches!(err, StoreError::NotFound { entity: "api_key" }),
            "{what}: {err:?}"
        );
    }
    assert_eq!(store.find_by_token(&key.token_hash).await.unwrap(), Some(key.clone()));
    let revoked = store
        .revoke(org, key.id, at(20), &audit_event(org))
        .await
        .expect("revoke succeeds");
    assert_eq!(
        revoked,
        ApiKeyRecord {
            revoked_at: Some(at(20)),
            ..key.clone()
        }
    );
    let again = store
        .revoke(org, key.id, at(30), &audit_event(org))
        .await
        .expect("revoking again succeeds");
    assert_eq!(again.revoked_at, Some(at(20)), "the first time is kept");
}

/// `list` returns every key of the org, revoked ones too, by id, and none of another
/// org's; pages (`after` the last id read, `limit`) hold at most `limit` and together
/// every key once.
pub async fn api_key_list_returns_the_orgs_keys_by_id(store: &dyn ApiKeyStore) {
    let org = new_org();
    let keys: Vec<ApiKeyRecord> = (0..3).map(|i| key_value(org, i * 10)).collect();
    for key in keys.iter().rev() {
        store.create(key, &audit_event(key.org)).await.expect("create succeeds");
    }
    let elsewhere = key_value(new_org(), 5);
    store
        .create(&elsewhere, &audit_event(elsewhere.org))
        .await
        .expect("create succeeds");
    let revoked = store
        .revoke(org, keys[1].id, at(40), &audit_event(org))
        .await
        .expect("revoke succeeds");
    let every = vec![keys[0].clone(), revoked, keys[2].clone()];
    assert_eq!(store.list(org, None, 100).await.unwrap(), every);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(org, after, 2).await.unwrap();
        assert!(page.len() <= 2, "a page holds at most `limit`: {page:?}");
        after = page.last().map(|k| k.id);
        let done = page.len() < 2;
        paged.extend(page);
        if done {
            break;
        }
        assert!(paged.len() <= every.len(), "the pages end");
    }
    assert_eq!(paged, every, "the pages hold every key once, by id");
    assert_eq!(
        store.list(org, Some(keys[1].id), 1).await.unwrap(),
        vec![keys[2].clone()],
        "after a cursor, the next key"
    );
    assert_eq!(store.list(new_org(), None, 100).await.unwrap(), vec![]);
}

// ---------------------------------------------------------------------------------------
// LoginAttemptStore
// ---------------------------------------------------------------------------------------

/// `failures_since` counts the failures of one key at or after a time, and no other key's.
pub async fn login_failures_are_counted_per_key_since_a_time(store: &dyn LoginAttemptStore) {
    let account = ThrottleKey::Account(new_email());
    let source = ThrottleKey::source(&format!("203.0.113.{}", new_user().as_uuid().as_u128() % 250)).unwrap();
    for seconds in [0, 10, 20] {
        store
            .record_failure(&account, at(seconds))
            .await
            .expect("record succeeds");
    }
    store.record_failure(&source, at(15)).await.expect("record succeeds");
    assert_eq!(store.failures_since(&account, at(0)).await.unwrap(), 3);
    assert_eq!(store.failures_since(&account, at(10)).await.unwrap(), 2, "inclusive");
    assert_eq!(store.failures_since(&account, at(21)).await.unwrap(), 0);
    assert_eq!(store.failures_since(&source, at(0)).await.unwrap(), 1);
    assert_eq!(
        store
            .failures_since(&ThrottleKey::Account(new_email()), at(0))
            .await
            .unwrap(),
        0
    );
    // The account from one source is a key of its own, apart from the account and the
    // source.
    let email = new_email();
    let v6 = ThrottleKey::source(&format!("2001:db8:{:x}::1", new_user().as_uuid().as_u128() % 0xffff)).unwrap();
    let pair = v6.with_account(&email).expect("a source key pairs with an account");
    store.record_failure(&pair, at(5)).await.expect("record succeeds");
    assert_eq!(store.failures_since(&pair, at(0)).await.unwrap(), 1);
    assert_eq!(
        store
            .failures_since(&ThrottleKey::Account(email.clone()), at(0))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.failures_since(&v6, at(0)).await.unwrap(), 0);
}

/// Two failures of one key at the same instant are both counted.
pub async fn login_failures_at_the_same_time_are_all_counted(store: &dyn LoginAttemptStore) {
    let account = ThrottleKey::Account(new_email());
    let (a, b) = futures::join!(
        store.record_failure(&account, at(0)),
        store.record_failure(&account, at(0))
    );
    a.expect("record succeeds");
    b.expect("record succeeds");
    assert_eq!(store.failures_since(&account, at(0)).await.unwrap(), 2);
}

/// `clear` forgets one key's failures and no other key's.
pub async fn login_clear_forgets_only_that_key(store: &dyn LoginAttemptStore) {
    let (a, b) = (ThrottleKey::Account(new_email()), ThrottleKey::Account(new_email()));
    store.record_failure(&a, at(0)).await.expect("record succeeds");
    store.record_failure(&b, at(0)).await.expect("record succeeds");
    store.clear(&a).await.expect("clear succeeds");
    assert_eq!(store.failures_since(&a, at(0)).await.unwrap(), 0);
    assert_eq!(store.failures_since(&b, at(0)).await.unwrap(), 1);
}

/// `prune` forgets the failures recorded before a time, of every key, and counts them.
pub async fn login_prune_forgets_old_failures(store: &dyn LoginAttemptStore) {
    // Far in the past of the other clauses' times, so a shared database is not disturbed.
    let old = t0() - Duration::days(3650);
    let (a, b) = (ThrottleKey::Account(new_email()), ThrottleKey::Account(new_email()));
    store.record_failure(&a, old).await.expect("record succeeds");
    store
        .record_failure(&b, old + Duration::seconds(1))
        .await
        .expect("record succeeds");
    store
        .record_failure(&b, old + Duration::seconds(10))
        .await
        .expect("record succeeds");
    let pruned = store.prune(old + Duration::seconds(5)).await.unwrap();
    assert!(pruned >= 2, "at least the two old failures, got {pruned}");
    assert_eq!(store.failures_since(&a, old).await.unwrap(), 0);
    assert_eq!(store.failures_since(&b, old).await.unwrap(), 1, "the newer one is kept");
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

/// An audited change's event about `user`, who belongs to no org in these suites' stores,
/// so it writes nothing: the identity events are `identity_audit`'s clauses.
fn unaudited(user: UserId) -> crate::identity::UserAuditEvent {
    user_event(user, crate::audit::actions::USER_MFA_ENROLLED, 0)
}

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

fn new_user() -> UserId {
    UserId::generate(&*IDS, t0())
}

fn new_email() -> Email {
    Email::new(&format!("u{}@example.com", IDS.generate(t0()).simple())).expect("a valid email")
}

fn new_hash() -> TokenHash {
    TokenHash::of(&IDS.generate(t0()).to_string())
}

fn scope(object: &str, action: &str) -> Scope {
    Scope::new(object, action).expect("a valid scope")
}

fn password(user: UserId, email: &Email, hash: &str, at: OffsetDateTime) -> PasswordRecord {
    PasswordRecord {
        user,
        email: email.clone(),
        hash: SecretString::from(hash.to_owned()),
        updated_at: at,
    }
}

fn assert_same_password(found: &PasswordRecord, expected: &PasswordRecord, what: &str) {
    assert_eq!(found.user, expected.user, "{what}: user");
    assert_eq!(found.email, expected.email, "{what}: email");
    assert_eq!(
        found.hash.expose_secret(),
        expected.hash.expose_secret(),
        "{what}: hash"
    );
    assert_eq!(found.updated_at, expected.updated_at, "{what}: updated_at");
}

/// A session started `seconds` after [`t0`], for a day; its id is made at its start.
fn session_value(user: UserId, seconds: i64) -> SessionRecord {
    let created_at = at(seconds);
    SessionRecord {
        id: SessionId::generate(&*IDS, created_at),
        user,
        token_hash: new_hash(),
        active_org: None,
        created_at,
        last_seen_at: created_at,
        absolute_expires_at: created_at + Duration::days(1),
        revoked_at: None,
    }
}

/// A key of `org` made `seconds` after [`t0`], expiring in 90 days.
pub(crate) fn key_value(org: OrgId, seconds: i64) -> ApiKeyRecord {
    let created_at = at(seconds);
    let id = ApiKeyId::generate(&*IDS, created_at);
    ApiKeyRecord {
        id,
        org,
        name: "ci deploys".to_owned(),
        prefix: "pk_live_ab12cd34".to_owned(),
        token_hash: new_hash(),
        scopes: vec![scope("members", "read"), scope("cases/*", "write")],
        created_by: Principal::Service(ServiceName::new("console").expect("a valid name")),
        created_at,
        last_used_at: None,
        expires_at: Some(created_at + Duration::days(90)),
        revoked_at: None,
    }
}

// ---------------------------------------------------------------------------------------
// OneTimeTokenStore
// ---------------------------------------------------------------------------------------

/// A password-reset token of `user` issued `seconds` after [`t0`], valid 30 minutes.
fn token_value(user: UserId, seconds: i64) -> OneTimeTokenRecord {
    OneTimeTokenRecord {
        token_hash: new_hash(),
        user,
        purpose: TokenPurpose::PasswordReset,
        created_at: at(seconds),
        expires_at: at(seconds) + Duration::minutes(30),
        used_at: None,
    }
}

/// An issued token is consumed once: the first `consume` answers `Consumed` with the
/// record and its `used_at`, the next `AlreadyUsed`.
pub async fn one_time_token_issue_then_consume_uses_it_once(store: &dyn OneTimeTokenStore) {
    let token = token_value(new_user(), 0);
    store.issue(&token).await.expect("issue succeeds");
    let used = store
        .consume(TokenPurpose::PasswordReset, &token.token_hash, at(60))
        .await
        .unwrap();
    let expected = OneTimeTokenRecord {
        used_at: Some(at(60)),
        ..token.clone()
    };
    assert_eq!(used, TokenUse::Consumed(expected.clone()), "the first use consumes it");
    let again = store
        .consume(TokenPurpose::PasswordReset, &token.token_hash, at(61))
        .await
        .unwrap();
    assert_eq!(again, TokenUse::AlreadyUsed(expected), "the second use finds it used");
}

/// A token consumed at or after its expiry is `Expired` and stays unused (a use before
/// the expiry still consumes it); an unknown hash is `Unknown`.
pub async fn one_time_token_past_its_expiry_is_expired_and_unknown_hashes_are_unknown(store: &dyn OneTimeTokenStore) {
    let token = token_value(new_user(), 0);
    store.issue(&token).await.expect("issue succeeds");
    let late = store
        .consume(TokenPurpose::PasswordReset, &token.token_hash, token.expires_at)
        .await
        .unwrap();
    assert_eq!(late, TokenUse::Expired(token.clone()), "at its expiry it is expired");
    let earlier = store
        .consume(TokenPurpose::PasswordReset, &token.token_hash, at(10))
        .await
        .unwrap();
    assert!(
        matches!(earlier, TokenUse::Consumed(_)),
        "an expired answer changed nothing: {earlier:?}"
    );
    let unknown = store
        .consume(TokenPurpose::PasswordReset, &new_hash(), at(10))
        .await
        .unwrap();
    assert_eq!(unknown, TokenUse::Unknown);
}

/// `issue` with a taken hash is `Conflict::AlreadyExists` (`one_time_token`) and changes
/// nothing.
pub async fn one_time_token_issue_with_a_taken_hash_is_already_exists(store: &dyn OneTimeTokenStore) {
    let token = token_value(new_user(), 0);
    store.issue(&token).await.expect("issue succeeds");
    let other = OneTimeTokenRecord {
        user: new_user(),
        ..token_value(new_user(), 5)
    };
    let err = store
        .issue(&OneTimeTokenRecord {
            token_hash: token.token_hash,
            ..other
        })
        .await
        .expect_err("a taken hash is refused");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists {
                entity: "one_time_token"
            })
        ),
        "expected AlreadyExists(one_time_token), got {err:?}"
    );
    let used = store
        .consume(TokenPurpose::PasswordReset, &token.token_hash, at(10))
        .await
        .unwrap();
    assert!(
        matches!(&used, TokenUse::Consumed(record) if record.user == token.user),
        "the first token is unchanged: {used:?}"
    );
}

/// Consuming one token retires the other unused tokens of its user and purpose (they are
/// `AlreadyUsed` from then on), and no other user's.
pub async fn one_time_token_consume_retires_the_users_other_tokens_only(store: &dyn OneTimeTokenStore) {
    let (ann, bob) = (new_user(), new_user());
    let (first, second, bobs) = (token_value(ann, 0), token_value(ann, 10), token_value(bob, 0));
    for token in [&first, &second, &bobs] {
        store.issue(token).await.expect("issue succeeds");
    }
    let used = store
        .consume(TokenPurpose::PasswordReset, &second.token_hash, at(20))
        .await
        .unwrap();
    assert!(matches!(used, TokenUse::Consumed(_)), "{used:?}");
    let older = store
        .consume(TokenPurpose::PasswordReset, &first.token_hash, at(21))
        .await
        .unwrap();
    assert!(
        matches!(&older, TokenUse::AlreadyUsed(record) if record.used_at == Some(at(20))),
        "the user's older token was retired by the use: {older:?}"
    );
    let others = store
        .consume(TokenPurpose::PasswordReset, &bobs.token_hash, at(22))
        .await
        .unwrap();
    assert!(
        matches!(others, TokenUse::Consumed(_)),
        "another user's token is untouched: {others:?}"
    );
}

/// Of two uses of one token at once, exactly one is `Consumed`, the other `AlreadyUsed`.
pub async fn one_time_token_consumed_twice_at_once_succeeds_once(store: &dyn OneTimeTokenStore) {
    let token = token_value(new_user(), 0);
    store.issue(&token).await.expect("issue succeeds");
    let (a, b) = futures::join!(
        store.consume(TokenPurpose::PasswordReset, &token.token_hash, at(5)),
        store.consume(TokenPurpose::PasswordReset, &token.token_hash, at(6))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let consumed = [&a, &b].iter().filter(|u| matches!(u, TokenUse::Consumed(_))).count();
    let used = [&a, &b]
        .iter()
        .filter(|u| matches!(u, TokenUse::AlreadyUsed(_)))
        .count();
    assert_eq!((consumed, used), (1, 1), "exactly one use wins: {a:?} / {b:?}");
}

// ---------------------------------------------------------------------------------------
// EmailVerificationStore
// ---------------------------------------------------------------------------------------

/// An email-verification token of `user` for `email`, issued `seconds` after [`t0`],
/// valid a day.
fn email_token(user: UserId, email: &Email, seconds: i64) -> EmailTokenRecord {
    EmailTokenRecord {
        token_hash: new_hash(),
        user,
        email: email.clone(),
        created_at: at(seconds),
        expires_at: at(seconds) + Duration::days(1),
        used_at: None,
    }
}

/// A token used by its user verifies its address once: `Verified` with `used_at`, the
/// address then read back by `verified_email`; the next use is `AlreadyUsed`.
pub async fn email_token_use_verifies_its_address_once(store: &dyn EmailVerificationStore) {
    let (user, email) = (new_user(), new_email());
    assert_eq!(store.verified_email(user).await.unwrap(), None, "nothing verified yet");
    let token = email_token(user, &email, 0);
    store.issue_email_token(&token).await.expect("issue succeeds");
    let used = store
        .use_email_token(&token.token_hash, user, &token.email, at(60))
        .await
        .unwrap();
    let expected = EmailTokenRecord {
        used_at: Some(at(60)),
        ..token.clone()
    };
    assert_eq!(
        used,
        EmailTokenUse::Verified(expected.clone()),
        "the first use verifies"
    );
    assert_eq!(
        store.verified_email(user).await.unwrap(),
        Some(VerifiedEmail {
            user,
            email,
            verified_at: at(60)
        }),
        "the address is verified"
    );
    let again = store
        .use_email_token(&token.token_hash, user, &token.email, at(61))
        .await
        .unwrap();
    assert_eq!(
        again,
        EmailTokenUse::AlreadyUsed(expected),
        "the second use finds it used"
    );
}

/// `find_email_token` answers the record as issued, then as used, and never uses it;
/// an unknown hash is `None`.
pub async fn email_token_find_reads_without_using(store: &dyn EmailVerificationStore) {
    let (user, email) = (new_user(), new_email());
    let token = email_token(user, &email, 0);
    store.issue_email_token(&token).await.expect("issue succeeds");
    assert_eq!(
        store.find_email_token(&token.token_hash).await.unwrap(),
        Some(token.clone()),
        "found as issued"
    );
    assert_eq!(
        store.find_email_token(&token.token_hash).await.unwrap(),
        Some(token.clone()),
        "finding it twice used nothing"
    );
    assert_eq!(
        store.verified_email(user).await.unwrap(),
        None,
        "finding verified nothing"
    );
    let used = store
        .use_email_token(&token.token_hash, user, &email, at(30))
        .await
        .unwrap();
    assert!(matches!(used, EmailTokenUse::Verified(_)), "still usable: {used:?}");
    assert_eq!(
        store.find_email_token(&token.token_hash).await.unwrap(),
        Some(EmailTokenRecord {
            used_at: Some(at(30)),
            ..token
        }),
        "found used"
    );
    assert_eq!(store.find_email_token(&new_hash()).await.unwrap(), None, "unknown");
}

/// Another user's token is `OtherUser`, and its own user's token presented with another
/// address than it was mailed to is `OtherAddress`; both change nothing: nothing is
/// verified, and the token still works for its user and address.
pub async fn email_token_of_another_user_is_refused_and_stays_usable(store: &dyn EmailVerificationStore) {
    let (ann, bob) = (new_user(), new_user());
    let token = email_token(ann, &new_email(), 0);
    store.issue_email_token(&token).await.expect("issue succeeds");
    let stolen = store
        .use_email_token(&token.token_hash, bob, &token.email, at(5))
        .await
        .unwrap();
    assert_eq!(stolen, EmailTokenUse::OtherUser);
    assert_eq!(store.verified_email(bob).await.unwrap(), None, "bob verified nothing");
    let moved = store
        .use_email_token(&token.token_hash, ann, &new_email(), at(6))
        .await
        .unwrap();
    assert_eq!(
        moved,
        EmailTokenUse::OtherAddress(token.clone()),
        "a token for an address the user no longer has verifies nothing"
    );
    assert_eq!(
        store.verified_email(ann).await.unwrap(),
        None,
        "ann verified nothing yet"
    );
    let own = store
        .use_email_token(&token.token_hash, ann, &token.email, at(7))
        .await
        .unwrap();
    assert!(
        matches!(own, EmailTokenUse::Verified(_)),
        "ann's token still works: {own:?}"
    );
}

/// A token used at or after its expiry is `Expired` and stays unused; an unknown hash is
/// `Unknown`.
pub async fn email_token_past_its_expiry_is_expired_and_unknown_hashes_are_unknown(store: &dyn EmailVerificationStore) {
    let user = new_user();
    let token = email_token(user, &new_email(), 0);
    store.issue_email_token(&token).await.expect("issue succeeds");
    let late = store
        .use_email_token(&token.token_hash, user, &token.email, token.expires_at)
        .await
        .unwrap();
    assert_eq!(
        late,
        EmailTokenUse::Expired(token.clone()),
        "at its expiry it is expired"
    );
    assert_eq!(store.verified_email(user).await.unwrap(), None, "nothing verified");
    let earlier = store
        .use_email_token(&token.token_hash, user, &token.email, at(10))
        .await
        .unwrap();
    assert!(
        matches!(earlier, EmailTokenUse::Verified(_)),
        "an expired answer changed nothing: {earlier:?}"
    );
    let unknown = store
        .use_email_token(&new_hash(), user, &new_email(), at(10))
        .await
        .unwrap();
    assert_eq!(unknown, EmailTokenUse::Unknown);
}

/// `issue_email_token` with a taken hash is `Conflict::AlreadyExists` (`email_token`) and
/// changes nothing.
pub async fn email_token_issue_with_a_taken_hash_is_already_exists(store: &dyn EmailVerificationStore) {
    let user = new_user();
    let token = email_token(user, &new_email(), 0);
    store.issue_email_token(&token).await.expect("issue succeeds");
    let err = store
        .issue_email_token(&EmailTokenRecord {
            token_hash: token.token_hash,
            ..email_token(new_user(), &new_email(), 5)
        })
        .await
        .expect_err("a taken hash is refused");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "email_token" })
        ),
        "expected AlreadyExists(email_token), got {err:?}"
    );
    let used = store
        .use_email_token(&token.token_hash, user, &token.email, at(10))
        .await
        .unwrap();
    assert!(
        matches!(&used, EmailTokenUse::Verified(record) if record.email == token.email),
        "the first token is unchanged: {used:?}"
    );
}

/// Using a token retires its user's other unused tokens (and no other user's), and a
/// later verification replaces the verified address.
pub async fn email_token_use_retires_the_users_other_tokens_and_replaces_the_address(
    store: &dyn EmailVerificationStore,
) {
    let (ann, bob) = (new_user(), new_user());
    let (first_email, second_email) = (new_email(), new_email());
    let first = email_token(ann, &first_email, 0);
    let second = email_token(ann, &second_email, 10);
    let bobs = email_token(bob, &new_email(), 0);
    for token in [&first, &second, &bobs] {
        store.issue_email_token(token).await.expect("issue succeeds");
    }
    let used = store
        .use_email_token(&second.token_hash, ann, &second.email, at(20))
        .await
        .unwrap();
    assert!(matches!(used, EmailTokenUse::Verified(_)), "{used:?}");
    let older = store
        .use_email_token(&first.token_hash, ann, &first.email, at(21))
        .await
        .unwrap();
    assert!(
        matches!(&older, EmailTokenUse::AlreadyUsed(record) if record.used_at == Some(at(20))),
        "the user's older token was retired by the use: {older:?}"
    );
    let others = store
        .use_email_token(&bobs.token_hash, bob, &bobs.email, at(22))
        .await
        .unwrap();
    assert!(
        matches!(others, EmailTokenUse::Verified(_)),
        "another user's token is untouched: {others:?}"
    );
    let third_email = new_email();
    let third = email_token(ann, &third_email, 30);
    store.issue_email_token(&third).await.expect("issue succeeds");
    store
        .use_email_token(&third.token_hash, ann, &third.email, at(40))
        .await
        .unwrap();
    let verified = store.verified_email(ann).await.unwrap().expect("verified");
    assert_eq!(
        (verified.email, verified.verified_at),
        (third_email, at(40)),
        "the later verification replaces the address"
    );
}

/// Of two uses of one token at once, exactly one is `Verified`, the other `AlreadyUsed`.
pub async fn email_token_used_twice_at_once_succeeds_once(store: &dyn EmailVerificationStore) {
    let user = new_user();
    let token = email_token(user, &new_email(), 0);
    store.issue_email_token(&token).await.expect("issue succeeds");
    let (a, b) = futures::join!(
        store.use_email_token(&token.token_hash, user, &token.email, at(5)),
        store.use_email_token(&token.token_hash, user, &token.email, at(6))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let verified = [&a, &b]
        .iter()
        .filter(|u| matches!(u, EmailTokenUse::Verified(_)))
        .count();
    let used = [&a, &b]
        .iter()
        .filter(|u| matches!(u, EmailTokenUse::AlreadyUsed(_)))
        .count();
    assert_eq!((verified, used), (1, 1), "exactly one use wins: {a:?} / {b:?}");
}

// ---------------------------------------------------------------------------------------
// TotpFactorStore
// ---------------------------------------------------------------------------------------

/// A pending factor of `user` with a secret of `fill` bytes, begun `seconds` after [`t0`].
/// A passkey of `user` registered at `seconds`, with a fresh id and credential id.
fn passkey_value(user: UserId, seconds: i64) -> PasskeyRecord {
    PasskeyRecord {
        id: PasskeyId::generate(&*IDS, at(seconds)),
        user,
        credential_id: IDS.generate(at(seconds)).as_bytes().to_vec(),
        name: PasskeyName::new("Laptop").expect("a valid name"),
        credential: "{}".to_owned(),
        sign_count: 0,
        created_at: at(seconds),
        last_used_at: None,
    }
}

fn totp_value(user: UserId, fill: u8, seconds: i64) -> TotpFactorRecord {
    TotpFactorRecord {
        user,
        secret: SecretBox::new(Box::new([fill; 20])),
        created_at: at(seconds),
        confirmed_at: None,
        last_step: None,
    }
}

/// Asserts `found` is `expected`, secret included.
fn assert_same_totp(found: &TotpFactorRecord, expected: &TotpFactorRecord, what: &str) {
    assert_eq!(found.user, expected.user, "{what}: user");
    assert_eq!(
        found.secret.expose_secret(),
        expected.secret.expose_secret(),
        "{what}: secret"
    );
    assert_eq!(found.created_at, expected.created_at, "{what}: created_at");
    assert_eq!(found.confirmed_at, expected.confirmed_at, "{what}: confirmed_at");
    assert_eq!(found.last_step, expected.last_step, "{what}: last_step");
}

/// A pending factor reads back with its secret, a second enrollment replaces it, and
/// confirming it records the time and first step; once confirmed, a new enrollment is
/// `Conflict::AlreadyExists` (`totp_factor`) and changes nothing, and a second confirm is
/// `false`. Another user has no factor.
pub async fn totp_enroll_then_confirm_reads_back_and_refuses_a_second_enrollment(store: &dyn TotpFactorStore) {
    let user = new_user();
    store
        .begin_enrollment(&totp_value(user, 1, 0))
        .await
        .expect("enrollment begins");
    let second = totp_value(user, 2, 10);
    store
        .begin_enrollment(&second)
        .await
        .expect("a pending enrollment is replaced");
    let found = store.find_totp(user).await.unwrap().expect("the factor is found");
    assert_same_totp(&found, &second, "the pending factor");
    assert!(
        !store.accept_step(user, 5).await.unwrap(),
        "a pending factor accepts no step"
    );

    let hashes = [new_hash(), new_hash()];
    assert!(
        store
            .confirm_totp(user, 100, &hashes, at(20), &unaudited(user))
            .await
            .unwrap(),
        "the pending factor is confirmed"
    );
    let confirmed = TotpFactorRecord {
        confirmed_at: Some(at(20)),
        last_step: Some(100),
        ..second.clone()
    };
    let found = store.find_totp(user).await.unwrap().expect("the factor is found");
    assert_same_totp(&found, &confirmed, "the confirmed factor");
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 2);
    assert!(
        !store
            .confirm_totp(user, 200, &[], at(30), &unaudited(user))
            .await
            .unwrap(),
        "a confirmed factor is not confirmed again"
    );

    let err = store
        .begin_enrollment(&totp_value(user, 3, 40))
        .await
        .expect_err("a confirmed factor stays");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "totp_factor" })
        ),
        "expected AlreadyExists(totp_factor), got {err:?}"
    );
    let found = store.find_totp(user).await.unwrap().expect("the factor is found");
    assert_same_totp(&found, &confirmed, "unchanged by the refused enrollment");
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 2, "codes unchanged");

    assert!(
        store.find_totp(new_user()).await.unwrap().is_none(),
        "another user has no factor"
    );
    assert!(
        !store
            .confirm_totp(new_user(), 1, &[], at(0), &unaudited(new_user()))
            .await
            .unwrap(),
        "nor anything to confirm"
    );
}

/// `accept_step` takes only steps after the last one, of a confirmed factor.
pub async fn totp_accept_step_refuses_replayed_and_older_steps(store: &dyn TotpFactorStore) {
    let user = new_user();
    store
        .begin_enrollment(&totp_value(user, 1, 0))
        .await
        .expect("enrollment begins");
    assert!(
        store
            .confirm_totp(user, 100, &[], at(1), &unaudited(user))
            .await
            .unwrap()
    );
    assert!(
        !store.accept_step(user, 100).await.unwrap(),
        "the confirming step is used"
    );
    assert!(!store.accept_step(user, 99).await.unwrap(), "an older step is refused");
    assert!(store.accept_step(user, 101).await.unwrap(), "the next step is accepted");
    assert!(!store.accept_step(user, 101).await.unwrap(), "once");
    assert!(store.accept_step(user, 105).await.unwrap(), "a later one too");
    let found = store.find_totp(user).await.unwrap().expect("the factor is found");
    assert_eq!(found.last_step, Some(105));
    assert!(
        !store.accept_step(new_user(), 200).await.unwrap(),
        "a user without a factor"
    );
}

/// Of two acceptances of one step at once, exactly one is `true`.
pub async fn totp_accept_step_twice_at_once_succeeds_once(store: &dyn TotpFactorStore) {
    let user = new_user();
    store
        .begin_enrollment(&totp_value(user, 1, 0))
        .await
        .expect("enrollment begins");
    assert!(
        store
            .confirm_totp(user, 100, &[], at(1), &unaudited(user))
            .await
            .unwrap()
    );
    let (a, b) = futures::join!(store.accept_step(user, 101), store.accept_step(user, 101));
    assert_eq!(
        [a.unwrap(), b.unwrap()].iter().filter(|won| **won).count(),
        1,
        "exactly one acceptance wins"
    );
}

/// A recovery code is used once, only by its own user; a re-confirmation after removal
/// starts over with the new codes only.
pub async fn totp_recovery_code_is_used_once_by_its_user_only(store: &dyn TotpFactorStore) {
    let (user, other) = (new_user(), new_user());
    let (code, spare) = (new_hash(), new_hash());
    store
        .begin_enrollment(&totp_value(user, 1, 0))
        .await
        .expect("enrollment begins");
    assert!(
        store
            .confirm_totp(user, 100, &[code, spare], at(1), &unaudited(user))
            .await
            .unwrap()
    );
    store
        .begin_enrollment(&totp_value(other, 2, 0))
        .await
        .expect("enrollment begins");
    assert!(
        store
            .confirm_totp(other, 100, &[new_hash()], at(1), &unaudited(other))
            .await
            .unwrap()
    );

    assert!(
        !store.use_recovery_code(other, &code, at(2)).await.unwrap(),
        "another user's code is refused"
    );
    assert!(
        !store.use_recovery_code(user, &new_hash(), at(2)).await.unwrap(),
        "an unknown code is refused"
    );
    assert!(
        store.use_recovery_code(user, &code, at(3)).await.unwrap(),
        "the code is used"
    );
    assert!(!store.use_recovery_code(user, &code, at(4)).await.unwrap(), "once");
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 1);
    assert_eq!(
        store.recovery_codes_left(other).await.unwrap(),
        1,
        "the other user's codes are untouched"
    );

    assert!(
        store.remove_totp(user, &unaudited(user)).await.unwrap(),
        "the factor is removed"
    );
    assert!(store.find_totp(user).await.unwrap().is_none());
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 0, "with its codes");
    assert!(
        !store.use_recovery_code(user, &spare, at(5)).await.unwrap(),
        "a removed factor's code is refused"
    );
    assert!(
        !store.remove_totp(user, &unaudited(user)).await.unwrap(),
        "nothing left to remove"
    );
    assert!(
        store.find_totp(other).await.unwrap().is_some(),
        "the other user's factor stays"
    );

    let fresh = new_hash();
    store
        .begin_enrollment(&totp_value(user, 3, 10))
        .await
        .expect("a new enrollment begins");
    assert!(
        store
            .confirm_totp(user, 200, &[fresh], at(11), &unaudited(user))
            .await
            .unwrap()
    );
    assert!(
        !store.use_recovery_code(user, &spare, at(12)).await.unwrap(),
        "old codes stay gone"
    );
    assert!(store.use_recovery_code(user, &fresh, at(12)).await.unwrap());
}

/// Of two uses of one recovery code at once, exactly one is `true`.
pub async fn totp_recovery_code_used_twice_at_once_succeeds_once(store: &dyn TotpFactorStore) {
    let (user, code) = (new_user(), new_hash());
    store
        .begin_enrollment(&totp_value(user, 1, 0))
        .await
        .expect("enrollment begins");
    assert!(
        store
            .confirm_totp(user, 100, &[code], at(1), &unaudited(user))
            .await
            .unwrap()
    );
    let (a, b) = futures::join!(
        store.use_recovery_code(user, &code, at(2)),
        store.use_recovery_code(user, &code, at(3))
    );
    assert_eq!(
        [a.unwrap(), b.unwrap()].iter().filter(|won| **won).count(),
        1,
        "exactly one use wins"
    );
}

/// `find_token` reads a token back as stored, for its own purpose only, without using
/// it: used or expired, it is found as it is; a reset token is no MFA challenge.
pub async fn one_time_token_find_reads_it_without_using_it(store: &dyn OneTimeTokenStore) {
    let token = OneTimeTokenRecord {
        purpose: TokenPurpose::MfaChallenge,
        expires_at: at(300),
        ..token_value(new_user(), 0)
    };
    store.issue(&token).await.expect("issue succeeds");
    let found = store
        .find_token(TokenPurpose::MfaChallenge, &token.token_hash)
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&token), "found as issued");
    assert_eq!(
        store
            .find_token(TokenPurpose::PasswordReset, &token.token_hash)
            .await
            .unwrap(),
        None,
        "not for another purpose"
    );
    assert_eq!(
        store.find_token(TokenPurpose::MfaChallenge, &new_hash()).await.unwrap(),
        None,
        "an unknown hash is none"
    );
    assert_eq!(
        store
            .find_token(TokenPurpose::MfaChallenge, &token.token_hash)
            .await
            .unwrap(),
        Some(token.clone()),
        "reading it twice did not use it"
    );
    let used = store
        .consume(TokenPurpose::MfaChallenge, &token.token_hash, at(10))
        .await
        .unwrap();
    assert!(matches!(used, TokenUse::Consumed(_)), "still usable: {used:?}");
    let after = store
        .find_token(TokenPurpose::MfaChallenge, &token.token_hash)
        .await
        .unwrap()
        .expect("still found");
    assert_eq!(after.used_at, Some(at(10)), "found used");
}

/// `replace_recovery_codes` swaps every code of a confirmed factor (used ones too) for
/// the new ones, and is `false` for a pending factor or none, changing nothing.
pub async fn totp_replace_recovery_codes_swaps_them_for_a_confirmed_factor_only(store: &dyn TotpFactorStore) {
    let (user, other) = (new_user(), new_user());
    let (old_used, old_unused, fresh) = (new_hash(), new_hash(), new_hash());
    assert!(
        !store
            .replace_recovery_codes(user, &[fresh], &unaudited(user))
            .await
            .unwrap(),
        "no factor: false"
    );
    store
        .begin_enrollment(&totp_value(user, 1, 0))
        .await
        .expect("enrollment begins");
    assert!(
        !store
            .replace_recovery_codes(user, &[fresh], &unaudited(user))
            .await
            .unwrap(),
        "a pending factor: false"
    );
    assert!(
        store
            .confirm_totp(user, 100, &[old_used, old_unused], at(1), &unaudited(user))
            .await
            .unwrap()
    );
    assert_eq!(
        store.recovery_codes_left(user).await.unwrap(),
        2,
        "the pending replace changed nothing"
    );
    assert!(store.use_recovery_code(user, &old_used, at(2)).await.unwrap());
    store
        .begin_enrollment(&totp_value(other, 2, 0))
        .await
        .expect("enrollment begins");
    let theirs = new_hash();
    assert!(
        store
            .confirm_totp(other, 100, &[theirs], at(1), &unaudited(other))
            .await
            .unwrap()
    );

    let second = new_hash();
    assert!(
        store
            .replace_recovery_codes(user, &[fresh, second], &unaudited(user))
            .await
            .unwrap()
    );
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 2, "the new codes only");
    assert!(
        !store.use_recovery_code(user, &old_unused, at(3)).await.unwrap(),
        "an old unused code is gone"
    );
    assert!(
        store.use_recovery_code(user, &fresh, at(3)).await.unwrap(),
        "a new code works"
    );
    assert_eq!(
        store.recovery_codes_left(other).await.unwrap(),
        1,
        "another user's codes are untouched"
    );
    let factor = store.find_totp(user).await.unwrap().expect("the factor stays");
    assert_eq!(factor.last_step, Some(100), "the factor itself is unchanged");
}

// ---------------------------------------------------------------------------------------
// MfaPolicyStore
// ---------------------------------------------------------------------------------------

/// An org requires no second factor until set; `set_mfa_required` turns it on and off
/// for that org only; `mfa_unmet` is true exactly for a user without a confirmed factor
/// in an org that requires one (a pending factor does not count).
pub async fn mfa_policy_is_per_org_and_unmet_only_without_a_confirmed_factor<S>(store: &S)
where
    S: MfaPolicyStore + TotpFactorStore,
{
    let (org, other_org) = (new_org(), new_org());
    let (enrolled, pending, bare) = (new_user(), new_user(), new_user());
    assert!(!store.mfa_required(org).await.unwrap(), "off until set");
    assert!(
        !store.mfa_unmet(org, bare).await.unwrap(),
        "nobody falls short of no policy"
    );

    store
        .begin_enrollment(&totp_value(enrolled, 1, 0))
        .await
        .expect("enrollment begins");
    assert!(
        store
            .confirm_totp(enrolled, 100, &[new_hash()], at(1), &unaudited(enrolled))
            .await
            .unwrap()
    );
    store
        .begin_enrollment(&totp_value(pending, 2, 0))
        .await
        .expect("enrollment begins");

    store
        .set_mfa_required(org, true, at(5), &audit_event(org))
        .await
        .expect("set");
    assert!(store.mfa_required(org).await.unwrap(), "on");
    assert!(!store.mfa_required(other_org).await.unwrap(), "another org stays off");
    assert!(
        !store.mfa_unmet(org, enrolled).await.unwrap(),
        "a confirmed factor meets it"
    );
    assert!(
        store.mfa_unmet(org, pending).await.unwrap(),
        "a pending factor does not"
    );
    assert!(store.mfa_unmet(org, bare).await.unwrap(), "no factor does not");
    assert!(
        !store.mfa_unmet(other_org, bare).await.unwrap(),
        "the other org asks nothing"
    );

    store
        .set_mfa_required(org, true, at(6), &audit_event(org))
        .await
        .expect("setting it again is fine");
    assert!(store.mfa_required(org).await.unwrap());
    store
        .set_mfa_required(org, false, at(7), &audit_event(org))
        .await
        .expect("unset");
    assert!(!store.mfa_required(org).await.unwrap(), "off again");
    assert!(!store.mfa_unmet(org, bare).await.unwrap(), "and nobody falls short");
}

/// Expands to one `#[tokio::test]` per clause of the identity store ports, each on a
/// fresh store from `$factory` (a future of `Option<S>`, `S` implementing
/// [`CredentialStore`], [`SessionStore`], [`ApiKeyStore`], [`LoginAttemptStore`],
/// [`OneTimeTokenStore`], [`TotpFactorStore`] and [`MfaPolicyStore`];
/// `None` skips the test). Call it inside a module:
///
/// ```ignore
/// mod memory {
///     portal_core::identity_store_conformance!(async { Some(portal_adapters::memory::InMemoryIdentityStore::new()) });
/// }
/// ```
///
/// The rules starting with `@` are internal.
#[macro_export]
macro_rules! identity_store_conformance {
    (@tests ($factory:expr) $port:ident: $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some(store) = $factory.await else {
                return;
            };
            let port: &dyn $crate::identity::$port = &store;
            $crate::testing::identity::$clause(port).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::identity_store_conformance! { @tests ($factory) CredentialStore:
            set_password_then_find_reads_it_back_and_replaces,
            find_password_of_an_unknown_email_is_none,
            set_password_with_another_users_email_is_email_taken,
        }
        $crate::identity_store_conformance! { @tests ($factory) SessionStore:
            session_create_then_find_by_token_reads_it_back,
            session_create_with_a_taken_id_or_hash_is_already_exists,
            session_touch_records_use_and_the_active_org,
            session_revoke_is_scoped_to_its_user_and_keeps_the_first_time,
            session_revoke_all_revokes_only_that_users_sessions,
            session_rotate_replaces_the_old_session_atomically,
            session_rotate_twice_at_once_succeeds_once,
            session_list_returns_live_sessions_newest_first,
        }
        $crate::identity_store_conformance! { @tests ($factory) ApiKeyStore:
            api_key_create_then_find_by_token_reads_it_back,
            api_key_create_with_a_taken_id_or_hash_is_already_exists,
            api_key_touch_records_the_last_use,
            api_key_revoke_is_scoped_to_its_org_and_keeps_the_first_time,
            api_key_list_returns_the_orgs_keys_by_id,
        }
        $crate::identity_store_conformance! { @tests ($factory) OneTimeTokenStore:
            one_time_token_issue_then_consume_uses_it_once,
            one_time_token_past_its_expiry_is_expired_and_unknown_hashes_are_unknown,
            one_time_token_issue_with_a_taken_hash_is_already_exists,
            one_time_token_consume_retires_the_users_other_tokens_only,
            one_time_token_consumed_twice_at_once_succeeds_once,
            one_time_token_find_reads_it_without_using_it,
        }
        $crate::identity_store_conformance! { @tests ($factory) EmailVerificationStore:
            email_token_use_verifies_its_address_once,
            email_token_of_another_user_is_refused_and_stays_usable,
            email_token_past_its_expiry_is_expired_and_unknown_hashes_are_unknown,
            email_token_issue_with_a_taken_hash_is_already_exists,
            email_token_use_retires_the_users_other_tokens_and_replaces_the_address,
            email_token_used_twice_at_once_succeeds_once,
            email_token_find_reads_without_using,
        }
        $crate::identity_store_conformance! { @tests ($factory) TotpFactorStore:
            totp_enroll_then_confirm_reads_back_and_refuses_a_second_enrollment,
            totp_accept_step_refuses_replayed_and_older_steps,
            totp_accept_step_twice_at_once_succeeds_once,
            totp_recovery_code_is_used_once_by_its_user_only,
            totp_recovery_code_used_twice_at_once_succeeds_once,
            totp_replace_recovery_codes_swaps_them_for_a_confirmed_factor_only,
        }
        #[tokio::test]
        async fn mfa_policy_is_per_org_and_unmet_only_without_a_confirmed_factor() {
            let Some(store) = $factory.await else {
                return;
            };
            $crate::testing::identity::mfa_policy_is_per_org_and_unmet_only_without_a_confirmed_factor(&store).await;
        }
        $crate::identity_store_conformance! { @tests ($factory) LoginAttemptStore:
            login_failures_are_counted_per_key_since_a_time,
            login_failures_at_the_same_time_are_all_counted,
            login_clear_forgets_only_that_key,
            login_prune_forgets_old_failures,
        }
    };
}
