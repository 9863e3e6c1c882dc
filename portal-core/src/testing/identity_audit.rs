//! The identity outbox's conformance suite: an identity store writes each audited change
//! of a user ([`UserAuditEvent`]) once per org the user is a member of, in the change's
//! transaction, and the org's MFA policy change as that org's event.
//!
//! Every clause takes the tenancy store (for users, orgs and memberships), the identity
//! store and the audit log, all on one database. Run them all with
//! [`identity_audit_conformance!`](crate::identity_audit_conformance), whose factory
//! returns `Option<(tenancy, identity, log)>`.

use std::sync::{Arc, LazyLock};

use secrecy::{SecretBox, SecretString};
use serde_json::json;
use time::Duration;

use crate::audit::{AuditActor, AuditEvent, AuditLog, AuditQuery, AuditTarget, CatalogEntry, actions};
use crate::identity::{
    CredentialStore, MfaPolicyStore, PasswordRecord, SessionRecord, SessionStore, TotpFactorRecord, TotpFactorStore,
    UserAuditEvent,
};
use crate::ids::{IdGenerator, OrgId, RandomIds, SessionId, UserId};
use crate::principal::Principal;
use crate::store::{Conflict, StoreError};
use crate::tenancy::{TenancyStore, TokenHash, User};
use crate::testing::audit::audit_event;
use crate::testing::tenancy::{add_member, at, new_org, new_user, roles_of};

static IDS: LazyLock<Arc<RandomIds>> = LazyLock::new(|| Arc::new(RandomIds::default()));

/// The identity store ports whose changes write audit events; every backend's identity
/// store is all of them.
pub trait AuditedIdentityStore: CredentialStore + SessionStore + TotpFactorStore + MfaPolicyStore {}

impl<T: CredentialStore + SessionStore + TotpFactorStore + MfaPolicyStore> AuditedIdentityStore for T {}

/// The catalog event `entry` about `user`, done by the user, `seconds` after the suite's
/// reference time, with a fresh id: what the identity suites hand every audited call.
pub fn user_event(user: UserId, entry: CatalogEntry, seconds: i64) -> UserAuditEvent {
    let ctx = crate::context::RequestContext::builder(Principal::User(user))
        .client_ip(std::net::IpAddr::from([203, 0, 113, 7]))
        .user_agent("conformance/1.0")
        .build(&crate::time::ManualClock::new(at(seconds)), &**IDS);
    let ids: Arc<dyn IdGenerator> = IDS.clone();
    UserAuditEvent::new(
        &ctx,
        ids,
        user,
        entry,
        AuditActor::new(&Principal::User(user), Some("Ada Lovelace".to_owned())),
    )
    .metadata(json!({ "seconds": seconds }))
}

fn session_of(user: UserId, seconds: i64) -> SessionRecord {
    let created_at = at(seconds);
    SessionRecord {
        id: SessionId::generate(&**IDS, created_at),
        user,
        token_hash: TokenHash::of(&IDS.generate(created_at).to_string()),
        active_org: None,
        created_at,
        last_seen_at: created_at,
        absolute_expires_at: created_at + Duration::days(1),
        revoked_at: None,
    }
}

fn password_of(user: &User, hash: &str, seconds: i64) -> PasswordRecord {
    PasswordRecord {
        user: user.id,
        email: user.email.clone(),
        hash: SecretString::from(hash.to_owned()),
        updated_at: at(seconds),
    }
}

fn factor_of(user: UserId, seconds: i64) -> TotpFactorRecord {
    TotpFactorRecord {
        user,
        secret: SecretBox::new(Box::new([7; 20])),
        created_at: at(seconds),
        confirmed_at: None,
        last_step: None,
    }
}

fn new_code() -> TokenHash {
    TokenHash::of(&IDS.generate(at(0)).to_string())
}

/// The `user.*` events of `org`'s log, in id order.
async fn user_events(log: &dyn AuditLog, org: OrgId) -> Vec<AuditEvent> {
    let mut out: Vec<AuditEvent> = Vec::new();
    loop {
        let page = log
            .list(org, &AuditQuery::default(), out.last().map(|e| e.id), 50)
            .await
            .expect("the audit log reads");
        let done = page.len() < 50;
        out.extend(page);
        if done {
            break;
        }
    }
    out.retain(|e| e.action.as_str().starts_with("user."));
    out
}

/// Every audited identity change (a session created and rotated in by a sign-in, one
/// revoked, a password set, a factor confirmed, recovery codes replaced, the factor
/// removed) writes one event in each org the user is a member of, equal to the template
/// but for its org and id, and none in an org they do not belong to.
pub async fn each_identity_change_writes_one_event_per_membership_org(
    tenancy: &dyn TenancyStore,
    identity: &dyn AuditedIdentityStore,
    log: &dyn AuditLog,
) {
    let owner = new_user(tenancy).await;
    let first = new_org(tenancy, &owner).await;
    let second = new_org(tenancy, &owner).await;
    let third = new_org(tenancy, &owner).await;
    let user = new_user(tenancy).await;
    add_member(tenancy, &first, &user, roles_of(&["member"]), at(1)).await;
    add_member(tenancy, &second, &user, roles_of(&["viewer"]), at(1)).await;

    let mut templates = Vec::new();
    let signed_in = user_event(user.id, actions::USER_SIGNED_IN, 10);
    let session = session_of(user.id, 10);
    identity
        .create(&session, Some(&signed_in))
        .await
        .expect("create succeeds");
    templates.push(signed_in);
    let rotated_in = user_event(user.id, actions::USER_SIGNED_IN, 11);
    let next = session_of(user.id, 11);
    identity
        .rotate(session.id, &next, at(11), Some(&rotated_in))
        .await
        .expect("rotate succeeds");
    templates.push(rotated_in);
    let signed_out = user_event(user.id, actions::USER_SIGNED_OUT, 12);
    identity
        .revoke(user.id, next.id, at(12), Some(&signed_out))
        .await
        .expect("revoke succeeds");
    templates.push(signed_out);
    let changed = user_event(user.id, actions::USER_PASSWORD_CHANGED, 13);
    identity
        .set_password(&password_of(&user, "$argon2id$one", 13), Some(&changed))
        .await
        .expect("set_password succeeds");
    templates.push(changed);
    identity
        .begin_enrollment(&factor_of(user.id, 14))
        .await
        .expect("enrollment begins");
    let enrolled = user_event(user.id, actions::USER_MFA_ENROLLED, 15);
    assert!(
        identity
            .confirm_totp(user.id, 100, &[new_code()], at(15), &enrolled)
            .await
            .unwrap()
    );
    templates.push(enrolled);
    let regenerated = user_event(user.id, actions::USER_RECOVERY_CODES_REGENERATED, 16);
    assert!(
        identity
            .replace_recovery_codes(user.id, &[new_code()], &regenerated)
            .await
            .unwrap()
    );
    templates.push(regenerated);
    let removed = user_event(user.id, actions::USER_MFA_REMOVED, 17);
    assert!(identity.remove_totp(user.id, &removed).await.unwrap());
    templates.push(removed);

    let mut ids = std::collections::BTreeSet::new();
    for org in [first.id, second.id] {
        let events = user_events(log, org).await;
        assert_eq!(
            events.len(),
            templates.len(),
            "one event per change in each org: {events:?}"
        );
        for (event, template) in events.iter().zip(&templates) {
            let expected = template.events(&[org]).remove(0);
            assert_eq!(event.org, org, "filed under its org");
            assert_eq!(event.action, expected.action);
            assert_eq!(event.actor, expected.actor);
            assert_eq!(event.targets, vec![AuditTarget::new("user", user.id)]);
            assert_eq!(event.context, expected.context);
            assert_eq!(event.occurred_at, expected.occurred_at);
            assert_eq!(event.metadata, expected.metadata);
            assert!(ids.insert(event.id), "every row has its own id");
        }
    }
    assert!(
        user_events(log, third.id).await.is_empty(),
        "an org the user does not belong to gets none"
    );
}

/// A user who belongs to no org writes no event (and the same template then writes
/// again without conflict: nothing holds its id); an org they join later sees nothing
/// of before.
pub async fn a_user_without_an_org_writes_no_event(
    tenancy: &dyn TenancyStore,
    identity: &dyn AuditedIdentityStore,
    log: &dyn AuditLog,
) {
    let owner = new_user(tenancy).await;
    let org = new_org(tenancy, &owner).await;
    let user = new_user(tenancy).await;

    let event = user_event(user.id, actions::USER_SIGNED_IN, 1);
    identity
        .create(&session_of(user.id, 1), Some(&event))
        .await
        .expect("create succeeds");
    identity
        .create(&session_of(user.id, 2), Some(&event))
        .await
        .expect("the same template again: no row holds its id");
    identity
        .set_password(&password_of(&user, "$argon2id$one", 3), Some(&event))
        .await
        .expect("set_password succeeds");
    identity
        .begin_enrollment(&factor_of(user.id, 4))
        .await
        .expect("enrollment begins");
    assert!(identity.confirm_totp(user.id, 100, &[], at(5), &event).await.unwrap());

    add_member(tenancy, &org, &user, roles_of(&["member"]), at(6)).await;
    assert!(
        user_events(log, org.id).await.is_empty(),
        "nothing was written before the user joined"
    );
}

/// A change the store refuses writes no event: a revocation of another user's session,
/// a rotation of an unknown one, a session with a taken id, a password with a taken
/// email, a confirmation without a pending factor, a replacement without a confirmed one,
/// a removal of nothing. Revoking a revoked session and removing a pending enrollment
/// change nothing a member's org audits, and write none either.
pub async fn a_refused_identity_change_writes_no_event(
    tenancy: &dyn TenancyStore,
    identity: &dyn AuditedIdentityStore,
    log: &dyn AuditLog,
) {
    let owner = new_user(tenancy).await;
    let org = new_org(tenancy, &owner).await;
    let user = new_user(tenancy).await;
    add_member(tenancy, &org, &user, roles_of(&["member"]), at(1)).await;
    let stranger = new_user(tenancy).await;

    let theirs = session_of(stranger.id, 2);
    identity.create(&theirs, None).await.expect("create succeeds");
    let err = identity
        .revoke(
            user.id,
            theirs.id,
            at(3),
            Some(&user_event(user.id, actions::USER_SIGNED_OUT, 3)),
        )
        .await
        .expect_err("another user's session is not theirs to revoke");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = identity
        .rotate(
            SessionId::generate(&**IDS, at(4)),
            &session_of(user.id, 4),
            at(4),
            Some(&user_event(user.id, actions::USER_SIGNED_IN, 4)),
        )
        .await
        .expect_err("an unknown session does not rotate");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let mut taken = session_of(user.id, 5);
    taken.id = theirs.id;
    let err = identity
        .create(&taken, Some(&user_event(user.id, actions::USER_SIGNED_IN, 5)))
        .await
        .expect_err("a taken session id is refused");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    identity
        .set_password(&password_of(&stranger, "$argon2id$theirs", 6), None)
        .await
        .expect("set_password succeeds");
    let mut clash = password_of(&user, "$argon2id$mine", 6);
    clash.email = stranger.email.clone();
    let err = identity
        .set_password(&clash, Some(&user_event(user.id, actions::USER_PASSWORD_CHANGED, 6)))
        .await
        .expect_err("another user's email is refused");
    assert!(matches!(err, StoreError::Conflict(Conflict::EmailTaken)), "{err:?}");
    assert!(
        !identity
            .confirm_totp(
                user.id,
                1,
                &[],
                at(7),
                &user_event(user.id, actions::USER_MFA_ENROLLED, 7)
            )
            .await
            .unwrap(),
        "nothing pending to confirm"
    );
    assert!(
        !identity
            .replace_recovery_codes(
                user.id,
                &[new_code()],
                &user_event(user.id, actions::USER_RECOVERY_CODES_REGENERATED, 8)
            )
            .await
            .unwrap(),
        "no confirmed factor"
    );
    assert!(
        !identity
            .remove_totp(user.id, &user_event(user.id, actions::USER_MFA_REMOVED, 9))
            .await
            .unwrap(),
        "nothing to remove"
    );
    identity
        .begin_enrollment(&factor_of(user.id, 10))
        .await
        .expect("enrollment begins");
    assert!(
        identity
            .remove_totp(user.id, &user_event(user.id, actions::USER_MFA_REMOVED, 11))
            .await
            .unwrap(),
        "a pending enrollment is removed"
    );
    let mine = session_of(user.id, 12);
    identity.create(&mine, None).await.expect("create succeeds");
    identity
        .revoke(user.id, mine.id, at(13), None)
        .await
        .expect("revoke succeeds");
    identity
        .revoke(
            user.id,
            mine.id,
            at(14),
            Some(&user_event(user.id, actions::USER_SIGNED_OUT, 14)),
        )
        .await
        .expect("revoking again succeeds");

    let events = user_events(log, org.id).await;
    assert!(events.is_empty(), "no refused change left an event: {events:?}");
}

/// A change whose event cannot be written (its first row's id is already in the log) is
/// not stored: the password keeps its hash, the session is not created, the factor stays
/// pending, and the log holds each event once.
pub async fn a_user_change_whose_event_fails_is_not_stored(
    tenancy: &dyn TenancyStore,
    identity: &dyn AuditedIdentityStore,
    log: &dyn AuditLog,
) {
    let owner = new_user(tenancy).await;
    let org = new_org(tenancy, &owner).await;
    let user = new_user(tenancy).await;
    add_member(tenancy, &org, &user, roles_of(&["member"]), at(1)).await;

    let written = user_event(user.id, actions::USER_PASSWORD_CHANGED, 2);
    identity
        .set_password(&password_of(&user, "$argon2id$kept", 2), Some(&written))
        .await
        .expect("set_password succeeds");
    let err = identity
        .set_password(&password_of(&user, "$argon2id$lost", 3), Some(&written))
        .await
        .expect_err("a change with an event already written fails");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "audit event" })
        ),
        "{err:?}"
    );
    let stored = identity
        .find_password(&user.email)
        .await
        .unwrap()
        .expect("the password is there");
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&stored.hash),
        "$argon2id$kept",
        "the password keeps the hash of the change that committed"
    );

    let session = session_of(user.id, 4);
    let err = identity
        .create(&session, Some(&written))
        .await
        .expect_err("a sign-in with an event already written fails");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::AlreadyExists { .. })),
        "{err:?}"
    );
    assert_eq!(
        identity.find_by_token(&session.token_hash).await.unwrap(),
        None,
        "the session whose event failed was not stored"
    );

    identity
        .begin_enrollment(&factor_of(user.id, 5))
        .await
        .expect("enrollment begins");
    let err = identity
        .confirm_totp(user.id, 100, &[new_code()], at(6), &written)
        .await
        .expect_err("a confirmation with an event already written fails");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::AlreadyExists { .. })),
        "{err:?}"
    );
    let factor = identity.find_totp(user.id).await.unwrap().expect("the factor is there");
    assert_eq!(factor.confirmed_at, None, "the factor stays pending");

    let events = user_events(log, org.id).await;
    assert_eq!(events.len(), 1, "only the committed change's event: {events:?}");
    assert_eq!(events[0].id, written.first_id());
}

/// "Sign out everywhere" (`SessionStore::revoke_all` with an event) writes one
/// `user.sessions_revoked` in each org of the user, in the revocation's transaction, with
/// the count the transaction revoked (`sessions_revoked`, set by the store beside the
/// template's metadata); an org the user does not belong to gets none. Revoking when none
/// is live, or without an event (a password change or reset, which write their own),
/// writes nothing; an event that cannot be written leaves every session live.
pub async fn signing_out_everywhere_writes_one_event_per_org_with_the_count(
    tenancy: &dyn TenancyStore,
    identity: &dyn AuditedIdentityStore,
    log: &dyn AuditLog,
) {
    let owner = new_user(tenancy).await;
    let first = new_org(tenancy, &owner).await;
    let second = new_org(tenancy, &owner).await;
    let third = new_org(tenancy, &owner).await;
    let user = new_user(tenancy).await;
    add_member(tenancy, &first, &user, roles_of(&["member"]), at(1)).await;
    add_member(tenancy, &second, &user, roles_of(&["viewer"]), at(1)).await;
    let live = |seconds: i64| session_of(user.id, seconds);
    let (a, b, c) = (live(2), live(3), live(4));
    for session in [&a, &b, &c] {
        identity.create(session, None).await.expect("create succeeds");
    }
    identity
        .revoke(user.id, c.id, at(5), None)
        .await
        .expect("revoke succeeds");

    // An event that cannot be written (its first row's id is taken: the template of a
    // change already written) leaves both live.
    let taken = user_event(user.id, actions::USER_PASSWORD_CHANGED, 6);
    identity
        .set_password(&password_of(&user, "$argon2id$one", 6), Some(&taken))
        .await
        .expect("set_password succeeds");
    let err = identity
        .revoke_all(user.id, at(7), Some(&taken))
        .await
        .expect_err("an event already written fails the revocation");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::AlreadyExists { .. })),
        "{err:?}"
    );
    for session in [&a, &b] {
        let stored = identity
            .find_by_token(&session.token_hash)
            .await
            .unwrap()
            .expect("the session is there");
        assert_eq!(stored.revoked_at, None, "a failed event leaves the session live");
    }

    let everywhere = user_event(user.id, actions::USER_SESSIONS_REVOKED, 8);
    assert_eq!(
        identity.revoke_all(user.id, at(8), Some(&everywhere)).await.unwrap(),
        2,
        "the two live sessions are revoked; the revoked one is not counted"
    );
    assert_eq!(
        identity
            .revoke_all(
                user.id,
                at(9),
                Some(&user_event(user.id, actions::USER_SESSIONS_REVOKED, 9))
            )
            .await
            .unwrap(),
        0,
        "none left"
    );
    let d = live(10);
    identity.create(&d, None).await.expect("create succeeds");
    assert_eq!(
        identity.revoke_all(user.id, at(11), None).await.unwrap(),
        1,
        "a revocation without an event still revokes"
    );

    let mut ids = std::collections::BTreeSet::new();
    for org in [first.id, second.id] {
        let events: Vec<AuditEvent> = user_events(log, org)
            .await
            .into_iter()
            .filter(|e| e.action == actions::USER_SESSIONS_REVOKED.action())
            .collect();
        assert_eq!(events.len(), 1, "one event in each org: {events:?}");
        let expected = everywhere.events(&[org]).remove(0);
        let event = &events[0];
        assert_eq!(event.org, org);
        assert_eq!(event.version, actions::USER_SESSIONS_REVOKED.version);
        assert_eq!(event.actor, expected.actor);
        assert_eq!(event.targets, vec![AuditTarget::new("user", user.id)]);
        assert_eq!(event.context, expected.context);
        assert_eq!(event.occurred_at, at(8));
        assert_eq!(event.metadata, json!({ "seconds": 8, "sessions_revoked": 2 }));
        assert!(ids.insert(event.id), "every row has its own id");
    }
    assert!(
        user_events(log, third.id).await.is_empty(),
        "an org the user does not belong to gets none"
    );
}

/// Setting an org's MFA policy writes its event in that org's log, in the same
/// transaction: an event that cannot be written leaves the policy as it was.
pub async fn the_mfa_policy_change_writes_its_org_event(
    _tenancy: &dyn TenancyStore,
    identity: &dyn AuditedIdentityStore,
    log: &dyn AuditLog,
) {
    let org = OrgId::generate(&**IDS, at(0));
    let mut on = audit_event(org);
    on.action = actions::ORG_MFA_POLICY_CHANGED.action();
    on = on
        .target(AuditTarget::new("organization", org))
        .metadata(json!({ "before": false, "after": true }));
    identity
        .set_mfa_required(org, true, at(1), &on)
        .await
        .expect("the policy is set");
    assert!(identity.mfa_required(org).await.unwrap());
    let err = identity
        .set_mfa_required(org, false, at(2), &on)
        .await
        .expect_err("a change with an event already written fails");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::AlreadyExists { .. })),
        "{err:?}"
    );
    assert!(identity.mfa_required(org).await.unwrap(), "the policy stays on");
    let events = log.list(org, &AuditQuery::default(), None, 10).await.unwrap();
    assert_eq!(events, vec![on], "the org's log holds the change's event, once");
}

/// Expands to one `#[tokio::test]` per identity outbox clause. The factory is a future
/// of `Option<(Arc<tenancy>, identity, log)>`, all on one database; `None` skips the suite.
///
/// The rule starting with `@` is internal.
#[macro_export]
macro_rules! identity_audit_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some((tenancy, identity, log)) = $factory.await else {
                return;
            };
            $crate::testing::identity_audit::$clause(&*tenancy, &identity, &log).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::identity_audit_conformance! { @tests ($factory)
            each_identity_change_writes_one_event_per_membership_org,
            a_user_without_an_org_writes_no_event,
            a_refused_identity_change_writes_no_event,
            a_user_change_whose_event_fails_is_not_stored,
            the_mfa_policy_change_writes_its_org_event,
            signing_out_everywhere_writes_one_event_per_org_with_the_count,
        }
    };
}

#[cfg(test)]
mod tests {
    /// Every clause function is in the macro's list, and the list names nothing else.
    #[test]
    fn the_macro_lists_every_clause() {
        let source = include_str!("identity_audit.rs");
        let mut functions: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        let list_start = source.find("@tests ($factory)\n").expect("the macro's clause list");
        let mut listed: Vec<&str> = source[list_start..]
            .lines()
            .skip(1)
            .map(str::trim)
            .take_while(|line| line.ends_with(','))
            .map(|line| line.trim_end_matches(','))
            .collect();
        assert_eq!(functions.len(), 6, "found {functions:?}");
        functions.sort_unstable();
        listed.sort_unstable();
        assert_eq!(functions, listed);
    }
}
