//! The identity service end to end on in-memory stores: one test per failure case
//! (wrong password, unknown user, locked account and source, expired, revoked and
//! tampered sessions and keys, a key outside its scope or org), rotation, org switching,
//! password changes and rehashing, the events every flow records, and a store failing
//! half-way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use portal_adapters::memory::{InMemoryIdentityStore, InMemoryTenancyStore};
use portal_adapters::observability::{FanOutSink, MemoryJournal, TracingSink};
use portal_auth::identity::{
    IdentityConfig, IdentityService, IdentityStores, KnownBreachedPasswords, NewApiKey, PasswordParams, SignIn,
};
use portal_core::access::RoleTableAuthorizer;
use portal_core::context::ServiceName;
use portal_core::diagnostics::{DiagnosticEvent, EventKind, Outcome};
use portal_core::gate::Gate;
use portal_core::identity::{
    AuthFailure, Authenticated, Credential, MfaPolicyStore, Scope, SessionMembershipStore, SessionStore,
    SessionWithMembership,
};
use portal_core::ids::{OrgId, SequentialIds, UserId};
use portal_core::store::{PageRequest, StoreError};
use portal_core::tenancy::{NewOrg, NewUser};
use portal_core::tenancy::{RoleSet, TenancyStore, TokenHash};
use portal_core::time::ManualClock;
use portal_core::{ErrorCode, Portal, Principal, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

const PASSWORD: &str = "correct horse battery staple";

struct World {
    portal: Portal,
    identity: IdentityService,
    store: Arc<InMemoryIdentityStore>,
    journal: Arc<MemoryJournal>,
    clock: Arc<ManualClock>,
    /// The one-call session and membership read, when the service was given one.
    joined: Option<Arc<CountingJoin>>,
}

/// A [`SessionMembershipStore`] over the in-memory stores, answering with the two reads it
/// replaces and counting its calls. (The SQL adapters answer with one statement; the
/// conformance suite checks that it equals the two reads.)
struct CountingJoin {
    sessions: Arc<InMemoryIdentityStore>,
    tenancy: Arc<InMemoryTenancyStore>,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl SessionMembershipStore for CountingJoin {
    async fn find_session_with_membership(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<SessionWithMembership>, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Some(session) = self.sessions.find_by_token(hash).await? else {
            return Ok(None);
        };
        let (membership, mfa_unmet) = match session.active_org {
            Some(org) => (
                self.tenancy.get_membership(org, session.user).await?,
                self.sessions.mfa_unmet(org, session.user).await?,
            ),
            None => (None, false),
        };
        Ok(Some(SessionWithMembership {
            session,
            membership,
            mfa_unmet,
        }))
    }
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// Light argon2 parameters, so the tests stay fast; the benchmark measures the defaults.
fn light() -> PasswordParams {
    PasswordParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    }
}

fn world() -> World {
    world_with(false)
}

/// A world whose identity service reads sessions with their membership in one call
/// (`joined`), or in two.
fn world_with(joined: bool) -> World {
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
    ));
    let ids = Arc::new(SequentialIds::default());
    let tenancy = Arc::new(InMemoryTenancyStore::default());
    let journal = Arc::new(MemoryJournal::default());
    let sink = Arc::new(FanOutSink::new(vec![journal.clone(), Arc::new(TracingSink)]));
    let authorizer = Arc::new(RoleTableAuthorizer::default());
    let store = Arc::new(InMemoryIdentityStore::new());
    let identity = IdentityService::new(
        IdentityStores::from_one(store.clone()),
        tenancy.clone(),
        Gate::new(authorizer.clone(), sink.clone(), tenancy.clone()),
        ids.clone(),
    )
    .with_password_params(light())
    .unwrap()
    .with_breach_check(Arc::new(KnownBreachedPasswords::new(["password123456"])));
    let joined = joined.then(|| {
        Arc::new(CountingJoin {
            sessions: store.clone(),
            tenancy: tenancy.clone(),
            calls: AtomicUsize::new(0),
        })
    });
    let identity = match &joined {
        Some(join) => identity.with_session_memberships(join.clone()),
        None => identity,
    };
    let portal = Portal::builder()
        .tenancy_store(tenancy)
        .authorizer(authorizer)
        .diagnostics(sink)
        .clock(clock.clone())
        .ids(ids)
        .authenticator(Arc::new(identity.clone()))
        .build()
        .unwrap();
    World {
        portal,
        identity,
        store,
        journal,
        clock,
        joined,
    }
}

impl World {
    fn host(&self) -> RequestContext {
        self.portal
            .context(Principal::Service(ServiceName::new("web").unwrap()))
            .build()
    }

    fn as_user(&self, user: UserId) -> RequestContext {
        self.portal.context(Principal::User(user)).build()
    }

    async fn user(&self, email: &str) -> UserId {
        let user = self
            .portal
            .tenancy()
            .create_user(
                &self.host(),
                NewUser {
                    email: email.to_owned(),
                    display_name: email.to_owned(),
                },
            )
            .await
            .unwrap();
        self.identity
            .set_password(&self.host(), user.id, secret(PASSWORD))
            .await
            .unwrap();
        user.id
    }

    async fn org(&self, slug: &str, owner: UserId) -> OrgId {
        self.portal
            .tenancy()
            .create_org(
                &self.host(),
                NewOrg {
                    slug: slug.to_owned(),
                    name: slug.to_owned(),
                    owner: Some(owner),
                    ..NewOrg::default()
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn add_member(&self, org: OrgId, email: &str, user: UserId, roles: RoleSet) {
        let (_, token) = self
            .portal
            .tenancy()
            .invite(&self.host(), org, email, roles)
            .await
            .unwrap();
        self.portal
            .tenancy()
            .accept_invitation(&self.as_user(user), &token)
            .await
            .unwrap();
    }

    fn sign_in_request(&self, email: &str, password: &str, source: &str) -> SignIn {
        SignIn {
            email: email.to_owned(),
            password: secret(password),
            source: source.to_owned(),
            previous_session: None,
        }
    }

    async fn sign_in(
        &self,
        email: &str,
        password: &str,
    ) -> Result<portal_auth::identity::NewSession, portal_core::PortalError> {
        self.identity
            .sign_in(&self.host(), self.sign_in_request(email, password, "198.51.100.7"))
            .await
    }

    async fn authenticate(&self, credential: Credential) -> Result<Authenticated, portal_core::PortalError> {
        self.portal.authenticate(&self.host(), &credential).await
    }

    /// The last event named `name`.
    fn last(&self, name: &str) -> DiagnosticEvent {
        self.journal
            .events()
            .into_iter()
            .rev()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no `{name}` event"))
    }

    fn assert_refused(&self, err: &portal_core::PortalError, name: &str, failure: AuthFailure) {
        assert_eq!(err.code(), ErrorCode::InvalidCredentials, "{err:?}");
        assert_eq!(err.message(), "invalid credentials", "the caller learns nothing more");
        let event = self.last(name);
        assert_eq!(event.kind, EventKind::Authentication);
        assert_eq!(event.code, Some(ErrorCode::InvalidCredentials));
        assert_eq!(event.schema, format!("{name}.v1"));
        assert_eq!(event.detail["failure"], failure.as_str(), "{}", event.detail);
    }
}

fn change_one_char(text: &SecretString, at: usize) -> SecretString {
    let mut bytes = text.expose_secret().as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    SecretString::from(String::from_utf8(bytes).unwrap())
}

// ---------------------------------------------------------------------------------------
// Passwords and sign-in
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sign_in_starts_a_session_in_the_users_only_org() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    let org = w.org("acme", ann).await;
    let signed = w.sign_in("Ann@Example.com", PASSWORD).await.unwrap();
    assert_eq!(signed.session.user, ann);
    assert_eq!(signed.session.active_org, Some(org));
    let event = w.last("auth.sign_in");
    assert_eq!(event.outcome, Outcome::Succeeded);
    assert_eq!(event.detail["session"], signed.session.id.to_string());
    assert_eq!(event.request_id, w.last("auth.session.create").request_id);

    let authenticated = w.authenticate(Credential::Session(signed.token)).await.unwrap();
    assert_eq!(authenticated.principal, Principal::User(ann));
    assert_eq!(authenticated.session, Some(signed.session.id));
    assert_eq!(authenticated.org, Some(org));
    // The membership read to check the active org travels with the request: its
    // services use these roles instead of reading the membership again.
    let roles = authenticated
        .org_roles
        .clone()
        .expect("the active org's roles were read");
    assert_eq!(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(), ["owner"]);
    let ctx = w.portal.context_for(&authenticated).build();
    assert_eq!(ctx.roles_in(org), Some(&*roles));
    assert_eq!(
        ctx.roles_in(OrgId::generate(&SequentialIds::default(), w.clock_now())),
        None,
        "roles are known for the active org only"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_as_invalid_credentials() {
    let w = world();
    w.user("ann@example.com").await;
    let err = w
        .sign_in("ann@example.com", "wrong horse battery staple")
        .await
        .unwrap_err();
    w.assert_refused(&err, "auth.sign_in", AuthFailure::WrongSecret);
}

#[tokio::test]
async fn an_unknown_user_is_refused_exactly_like_a_wrong_password() {
    let w = world();
    w.user("ann@example.com").await;
    let unknown = w.sign_in("nobody@example.com", PASSWORD).await.unwrap_err();
    let wrong = w.sign_in("ann@example.com", "not the password").await.unwrap_err();
    assert_eq!(
        (
            unknown.code(),
            unknown.message(),
            unknown.to_problem(w.host().request_id()).status
        ),
        (
            wrong.code(),
            wrong.message(),
            wrong.to_problem(w.host().request_id()).status
        )
    );
    w.sign_in("nobody@example.com", PASSWORD).await.unwrap_err();
    w.assert_refused(
        &w.sign_in("nobody@example.com", PASSWORD).await.unwrap_err(),
        "auth.sign_in",
        AuthFailure::UnknownAccount,
    );
}

impl World {
    async fn sign_in_from(
        &self,
        email: &str,
        password: &str,
        source: &str,
    ) -> Result<portal_auth::identity::NewSession, portal_core::PortalError> {
        self.identity
            .sign_in(&self.host(), self.sign_in_request(email, password, source))
            .await
    }
}

#[tokio::test]
async fn failures_from_one_source_lock_that_source_for_that_account_until_the_window_slides_past() {
    let w = world();
    w.user("ann@example.com").await;
    w.user("bob@example.com").await;
    for _ in 0..5 {
        let err = w.sign_in("ann@example.com", "wrong").await.unwrap_err();
        w.assert_refused(&err, "auth.sign_in", AuthFailure::WrongSecret);
    }
    // That source is refused for ann, even with the right password ...
    let err = w.sign_in("ann@example.com", PASSWORD).await.unwrap_err();
    w.assert_refused(&err, "auth.sign_in", AuthFailure::Locked);
    // ... but not for another account, and ann signs in from another source.
    w.sign_in("bob@example.com", PASSWORD)
        .await
        .expect("another account from the same source");
    w.sign_in_from("ann@example.com", PASSWORD, "192.0.2.44")
        .await
        .expect("the same account from another source");
    // An unknown account locks the same way, so a lockout reveals nothing.
    for _ in 0..5 {
        w.sign_in("ghost@example.com", "x").await.unwrap_err();
    }
    w.assert_refused(
        &w.sign_in("ghost@example.com", "x").await.unwrap_err(),
        "auth.sign_in",
        AuthFailure::Locked,
    );

    w.clock.advance(Duration::minutes(15) + Duration::seconds(1));
    w.sign_in("ann@example.com", PASSWORD)
        .await
        .expect("unlocked once the window passed");
    // A success clears that source's failures for the account.
    for _ in 0..4 {
        w.sign_in("ann@example.com", "wrong").await.unwrap_err();
    }
    w.sign_in("ann@example.com", PASSWORD)
        .await
        .expect("four failures do not lock");
    for _ in 0..4 {
        w.sign_in("ann@example.com", "wrong").await.unwrap_err();
    }
    w.sign_in("ann@example.com", PASSWORD)
        .await
        .expect("the success before cleared the count");
}

#[tokio::test]
async fn an_attacker_cannot_lock_a_victim_out_from_another_source() {
    let w = world();
    w.user("ann@example.com").await;
    // The attacker fails from one address, many times: more than the old account lock and
    // more than the account-wide limit, below the per-source one.
    for _ in 0..40 {
        w.sign_in_from("ann@example.com", "guess", "203.0.113.66")
            .await
            .unwrap_err();
    }
    w.assert_refused(
        &w.sign_in_from("ann@example.com", PASSWORD, "203.0.113.66")
            .await
            .unwrap_err(),
        "auth.sign_in",
        AuthFailure::Locked,
    );
    // Ann, from her own address that has not failed, signs in at once.
    w.sign_in_from("ann@example.com", PASSWORD, "198.51.100.20")
        .await
        .expect("a source that has not failed is never locked out by another's failures");
}

#[tokio::test]
async fn an_account_attacked_from_many_sources_refuses_each_source_that_failed_and_no_other() {
    let w = world();
    w.user("ann@example.com").await;
    // A distributed guess: twenty addresses, one failure each (the account-wide limit).
    for i in 0..20 {
        w.sign_in_from("ann@example.com", "guess", &format!("203.0.113.{i}"))
            .await
            .unwrap_err();
    }
    // Under attack, a source that has failed for the account gets no more guesses, not
    // even a right one ...
    w.assert_refused(
        &w.sign_in_from("ann@example.com", PASSWORD, "203.0.113.3")
            .await
            .unwrap_err(),
        "auth.sign_in",
        AuthFailure::Locked,
    );
    // ... a fresh source gets one guess ...
    w.assert_refused(
        &w.sign_in_from("ann@example.com", "guess", "203.0.113.99")
            .await
            .unwrap_err(),
        "auth.sign_in",
        AuthFailure::WrongSecret,
    );
    w.assert_refused(
        &w.sign_in_from("ann@example.com", PASSWORD, "203.0.113.99")
            .await
            .unwrap_err(),
        "auth.sign_in",
        AuthFailure::Locked,
    );
    // ... and the owner, from an address that has not failed, signs in.
    w.sign_in_from("ann@example.com", PASSWORD, "198.51.100.20")
        .await
        .expect("a source that has not failed signs in");
    // Other accounts are not affected.
    w.user("bob@example.com").await;
    w.sign_in_from("bob@example.com", PASSWORD, "203.0.113.3")
        .await
        .expect("the attacked account's limits are its own");
}

#[tokio::test]
async fn pruning_forgets_only_failures_too_old_to_count() {
    let w = world();
    w.user("ann@example.com").await;
    for _ in 0..3 {
        w.sign_in("ann@example.com", "wrong").await.unwrap_err();
    }
    w.clock.advance(Duration::minutes(10));
    for _ in 0..2 {
        w.sign_in("ann@example.com", "wrong").await.unwrap_err();
    }
    // Nothing is old enough yet: five failures in the window lock the account for the
    // source they came from.
    assert_eq!(w.identity.prune_login_failures(&w.host()).await.unwrap(), 0);
    w.assert_refused(
        &w.sign_in("ann@example.com", PASSWORD).await.unwrap_err(),
        "auth.sign_in",
        AuthFailure::Locked,
    );
    // Six minutes on, the first three (per account, per account and source, and per
    // source: nine records) left the window; the pruning forgets them and the two recent
    // ones still count.
    w.clock.advance(Duration::minutes(6));
    assert_eq!(w.identity.prune_login_failures(&w.host()).await.unwrap(), 9);
    for _ in 0..2 {
        w.sign_in("ann@example.com", "wrong").await.unwrap_err();
    }
    w.assert_refused(
        &w.sign_in("ann@example.com", "wrong").await.unwrap_err(),
        "auth.sign_in",
        AuthFailure::WrongSecret,
    );
    w.assert_refused(
        &w.sign_in("ann@example.com", PASSWORD).await.unwrap_err(),
        "auth.sign_in",
        AuthFailure::Locked,
    );
}

#[tokio::test]
async fn a_source_locks_after_too_many_failures_on_any_accounts() {
    let w = world().into_config(IdentityConfig {
        max_source_failures: 3,
        ..IdentityConfig::default()
    });
    w.user("ann@example.com").await;
    for i in 0..3 {
        w.identity
            .sign_in(
                &w.host(),
                w.sign_in_request(&format!("u{i}@example.com"), "x", "203.0.113.9"),
            )
            .await
            .unwrap_err();
    }
    let err = w
        .identity
        .sign_in(&w.host(), w.sign_in_request("ann@example.com", PASSWORD, "203.0.113.9"))
        .await
        .unwrap_err();
    w.assert_refused(&err, "auth.sign_in", AuthFailure::Locked);
    w.identity
        .sign_in(
            &w.host(),
            w.sign_in_request("ann@example.com", PASSWORD, "203.0.113.10"),
        )
        .await
        .expect("another source is not locked");
    let err = w
        .identity
        .sign_in(&w.host(), w.sign_in_request("ann@example.com", PASSWORD, "bad source"))
        .await
        .unwrap_err();
    assert_eq!(err.param(), Some("source"));
}

#[tokio::test]
async fn an_ipv6_client_is_one_source_per_64_and_a_mapped_ipv4_is_its_ipv4() {
    let w = world().into_config(IdentityConfig {
        max_source_failures: 3,
        ..IdentityConfig::default()
    });
    w.user("ann@example.com").await;
    // Three addresses of one /64, three accounts: one source, now past its limit.
    for (i, address) in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:DB8:1:2:0:0:0:abc"]
        .iter()
        .enumerate()
    {
        w.sign_in_from(&format!("u{i}@example.com"), "x", address)
            .await
            .unwrap_err();
    }
    w.assert_refused(
        &w.sign_in_from("ann@example.com", PASSWORD, "2001:db8:1:2:dead:beef:0:1")
            .await
            .unwrap_err(),
        "auth.sign_in",
        AuthFailure::Locked,
    );
    w.sign_in_from("ann@example.com", PASSWORD, "2001:db8:1:3::1")
        .await
        .expect("the next /64 is another source");

    // An IPv4 address and its IPv4-mapped IPv6 form are one source; IPv4 counts by the
    // exact address.
    for (i, address) in ["203.0.113.9", "::ffff:203.0.113.9", "::ffff:cb00:7109"]
        .iter()
        .enumerate()
    {
        w.sign_in_from(&format!("v{i}@example.com"), "x", address)
            .await
            .unwrap_err();
    }
    w.assert_refused(
        &w.sign_in_from("ann@example.com", PASSWORD, "203.0.113.9")
            .await
            .unwrap_err(),
        "auth.sign_in",
        AuthFailure::Locked,
    );
    w.sign_in_from("ann@example.com", PASSWORD, "203.0.113.10")
        .await
        .expect("the next IPv4 address is another source");
}

/// A flood of 1,000 concurrent sign-ins with 2 hashing slots: never more than 2 argon2
/// computations at once (counted by the hasher itself, so a path around the slots would
/// show), and every sign-in either succeeds after waiting or is refused as
/// `service.busy`; none queues past the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_concurrent_sign_ins_never_runs_more_hashes_than_the_limit() {
    use portal_auth::identity::HashLimit;

    let w = world();
    w.user("ann@example.com").await;
    let identity = w
        .identity
        .clone()
        .with_hash_limit(HashLimit::new(2, std::time::Duration::from_millis(20)).unwrap());
    let host = w.host();
    let started = std::time::Instant::now();
    let attempts: Vec<_> = (0..1_000)
        .map(|i| {
            let identity = identity.clone();
            let host = host.clone();
            // Wrong passwords from distinct sources too: failures hash as much as successes.
            let (password, source) = if i % 2 == 0 {
                (PASSWORD.to_owned(), "198.51.100.7".to_owned())
            } else {
                ("a wrong guess".to_owned(), format!("10.{}.{}.1", i / 250, i % 250))
            };
            tokio::spawn(async move {
                identity
                    .sign_in(
                        &host,
                        SignIn {
                            email: "ann@example.com".to_owned(),
                            password: secret(&password),
                            source,
                            previous_session: None,
                        },
                    )
                    .await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(attempts.len());
    for attempt in attempts {
        results.push(attempt.await);
    }
    let elapsed = started.elapsed();
    let (mut signed_in, mut busy, mut refused) = (0, 0, 0);
    for result in results {
        match result.unwrap() {
            Ok(_) => signed_in += 1,
            Err(err) if err.code() == ErrorCode::ServiceBusy => {
                assert!(err.code().is_retryable());
                busy += 1;
            }
            Err(err) => {
                assert_eq!(err.code(), ErrorCode::InvalidCredentials, "{err:?}");
                refused += 1;
            }
        }
    }
    let peak = identity.password_hasher().peak_running();
    println!(
        "1000 concurrent sign-ins, 2 slots: peak {peak} hashes at once (slots peak {}), \
         {signed_in} signed in, {refused} refused, {busy} busy, in {elapsed:?}",
        identity.hash_limit().peak()
    );
    assert!(peak <= 2, "at most 2 argon2 computations at once, saw {peak}");
    assert!(peak >= 1);
    assert_eq!(signed_in + busy + refused, 1_000);
    assert!(busy > 0, "a flood past the slots is refused, not queued");
    assert_eq!(identity.hash_limit().held(), 0, "every slot is given back");
}

impl World {
    fn into_config(mut self, config: IdentityConfig) -> Self {
        self.identity = self.identity.clone().with_config(config);
        self
    }
}

#[tokio::test]
async fn a_password_credential_authenticates_without_a_session() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    let ok = w
        .authenticate(Credential::Password {
            email: "ann@example.com".to_owned(),
            password: secret(PASSWORD),
        })
        .await
        .unwrap();
    assert_eq!((ok.principal, ok.session), (Principal::User(ann), None));
    let err = w
        .authenticate(Credential::Password {
            email: "ann@example.com".to_owned(),
            password: secret("nope"),
        })
        .await
        .unwrap_err();
    w.assert_refused(&err, "auth.password", AuthFailure::WrongSecret);
}

#[tokio::test]
async fn new_passwords_obey_the_policy_and_the_breach_check() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    for (bad, why) in [("short", "too short"), ("password123456", "breached")] {
        let err = w.identity.set_password(&w.host(), ann, secret(bad)).await.unwrap_err();
        assert_eq!(
            (err.code(), err.param()),
            (ErrorCode::InvalidField, Some("password")),
            "{why}"
        );
    }
    let bob = w.user("bob@example.com").await;
    let err = w
        .identity
        .set_password(&w.as_user(bob), ann, secret(PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::AccessDenied,
        "nobody sets another user's password"
    );
}

/// A user sets their own first password, but replacing it needs the current one (or a
/// mailed link): `set_password` on their own account then is `access.denied`, and the
/// password is unchanged.
#[tokio::test]
async fn a_user_sets_a_first_password_but_never_replaces_one_without_the_current() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    let err = w
        .identity
        .set_password(&w.as_user(ann), ann, secret("a takeover passphrase"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::AccessDenied);
    w.portal
        .authenticate(
            &w.host(),
            &Credential::Password {
                email: "ann@example.com".to_owned(),
                password: secret(PASSWORD),
            },
        )
        .await
        .expect("the old password still works");

    let fresh = w
        .portal
        .tenancy()
        .create_user(
            &w.host(),
            NewUser {
                email: "newcomer@example.com".to_owned(),
                display_name: "Newcomer".to_owned(),
            },
        )
        .await
        .unwrap();
    w.identity
        .set_password(&w.as_user(fresh.id), fresh.id, secret("a first passphrase"))
        .await
        .expect("a user without a password sets the first one");
}

#[tokio::test]
async fn a_hash_with_older_parameters_is_replaced_at_the_next_sign_in() {
    let w = world();
    w.user("ann@example.com").await;
    let stored = |w: &World| {
        let store = w.store.clone();
        async move {
            use portal_core::identity::CredentialStore;
            let email = portal_core::tenancy::Email::new("ann@example.com").unwrap();
            store.find_password(&email).await.unwrap().unwrap().hash
        }
    };
    assert!(stored(&w).await.expose_secret().contains("m=256,t=1,p=1"));
    let raised = PasswordParams {
        memory_kib: 512,
        iterations: 2,
        parallelism: 1,
    };
    let w = World {
        identity: w.identity.clone().with_password_params(raised).unwrap(),
        ..w
    };
    w.sign_in("ann@example.com", PASSWORD).await.unwrap();
    assert!(stored(&w).await.expose_secret().contains("m=512,t=2,p=1"), "rehashed");
    assert_eq!(w.last("auth.password.rehash").outcome, Outcome::Succeeded);
    w.sign_in("ann@example.com", PASSWORD)
        .await
        .expect("the new hash verifies");
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_idle_session_expires_and_so_does_an_old_one() {
    let w = world();
    w.user("ann@example.com").await;
    let idle = w.sign_in("ann@example.com", PASSWORD).await.unwrap();
    w.clock.advance(Duration::minutes(31));
    let err = w.authenticate(Credential::Session(idle.token)).await.unwrap_err();
    w.assert_refused(&err, "auth.session", AuthFailure::Expired);

    let busy = w.sign_in("ann@example.com", PASSWORD).await.unwrap();
    for _ in 0..24 {
        w.clock.advance(Duration::minutes(29));
        w.authenticate(Credential::Session(busy.token.clone())).await.unwrap();
    }
    w.clock.advance(Duration::minutes(29));
    let err = w.authenticate(Credential::Session(busy.token)).await.unwrap_err();
    w.assert_refused(&err, "auth.session", AuthFailure::Expired);
}

#[tokio::test]
async fn a_revoked_session_is_refused() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    let signed = w.sign_in("ann@example.com", PASSWORD).await.unwrap();
    let revoked = w
        .identity
        .revoke_session(&w.as_user(ann), signed.session.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    let err = w.authenticate(Credential::Session(signed.token)).await.unwrap_err();
    w.assert_refused(&err, "auth.session", AuthFailure::Revoked);
    let event = w.last("auth.session");
    assert_eq!(event.detail["session"], signed.session.id.to_string());
    let bob = w.user("bob@example.com").await;
    let err = w
        .identity
        .revoke_session(&w.as_user(bob), signed.session.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SessionNotFound, "only one's own sessions");
}

#[tokio::test]
async fn a_tampered_or_unknown_session_token_is_refused() {
    let w = world();
    w.user("ann@example.com").await;
    let signed = w.sign_in("ann@example.com", PASSWORD).await.unwrap();
    for at in [4, 30, 57, 61] {
        let err = w
            .authenticate(Credential::Session(change_one_char(&signed.token, at)))
            .await
            .unwrap_err();
        w.assert_refused(&err, "auth.session", AuthFailure::Malformed);
    }
    let unknown = portal_auth::identity::token::SessionToken::generate()
        .unwrap()
        .into_secret();
    let err = w.authenticate(Credential::Session(unknown)).await.unwrap_err();
    w.assert_refused(&err, "auth.session", AuthFailure::WrongSecret);
    w.authenticate(Credential::Session(signed.token))
        .await
        .expect("the real token still works");
}

#[tokio::test]
async fn signing_in_again_rotates_the_session_the_client_held() {
    let w = world();
    w.user("ann@example.com").await;
    let first = w.sign_in("ann@example.com", PASSWORD).await.unwrap();
    let mut request = w.sign_in_request("ann@example.com", PASSWORD, "198.51.100.7");
    request.previous_session = Some(first.token.clone());
    let second = w.identity.sign_in(&w.host(), request).await.unwrap();
    assert_ne!(second.session.id, first.session.id);
    let event = w.last("auth.session.rotate");
    assert_eq!(event.detail["previous"], first.session.id.to_string());
    let err = w.authenticate(Credential::Session(first.token)).await.unwrap_err();
    w.assert_refused(&err, "auth.session", AuthFailure::Revoked);
    w.authenticate(Credential::Session(second.token)).await.unwrap();
}

#[tokio::test]
async fn list_revoke_all_and_a_password_change_end_sessions() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    let a = w.sign_in("ann@example.com", PASSWORD).await.unwrap();
    let b = w.sign_in("ann@example.com", PASSWORD).await.unwrap();
    let listed = w
        .identity
        .list_sessions(&w.as_user(ann), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![b.session.id, a.session.id]
    );

    let changed = w
        .identity
        .change_password(
            &w.as_user(ann),
            secret(PASSWORD),
            secret("a brand new passphrase"),
            "198.51.100.7",
            None,
        )
        .await
        .unwrap();
    for old in [a.token, b.token] {
        let err = w.authenticate(Credential::Session(old)).await.unwrap_err();
        w.assert_refused(&err, "auth.session", AuthFailure::Revoked);
    }
    w.authenticate(Credential::Session(changed.token))
        .await
        .expect("the new session works");
    w.sign_in("ann@example.com", PASSWORD)
        .await
        .expect_err("the old password is gone");
    w.sign_in("ann@example.com", "a brand new passphrase").await.unwrap();

    let err = w
        .identity
        .change_password(
            &w.as_user(ann),
            secret("wrong"),
            secret("another new passphrase"),
            "198.51.100.7",
            None,
        )
        .await
        .unwrap_err();
    w.assert_refused(&err, "auth.password.change", AuthFailure::WrongSecret);

    assert_eq!(w.identity.revoke_all_sessions(&w.as_user(ann)).await.unwrap(), 2);
    let after = w
        .identity
        .list_sessions(&w.as_user(ann), &PageRequest::default())
        .await
        .unwrap();
    assert!(after.items.is_empty() && after.next.is_none());
}

#[tokio::test]
async fn a_member_of_several_orgs_switches_without_signing_in_and_membership_is_checked_each_time() {
    switching_orgs_checks_membership_each_time(world()).await;
}

#[tokio::test]
async fn with_the_one_call_session_read_membership_is_checked_each_time_just_the_same() {
    let w = world_with(true);
    switching_orgs_checks_membership_each_time(w).await;
}

/// The scenario of the two tests above: switching orgs, refusal of the old token, an org
/// the user is not in, and a removal that takes the org (and its roles) away at once.
async fn switching_orgs_checks_membership_each_time(w: World) {
    let ann = w.user("ann@example.com").await;
    let bob = w.user("bob@example.com").await;
    let acme = w.org("acme", ann).await;
    let globex = w.org("globex", bob).await;
    w.add_member(
        globex,
        "ann@example.com",
        ann,
        RoleSet::one(portal_core::tenancy::RoleName::member()),
    )
    .await;
    let signed = w.sign_in("ann@example.com", PASSWORD).await.unwrap();
    assert_eq!(signed.session.active_org, None, "two orgs: none chosen yet");

    let in_globex = w.identity.switch_org(&w.host(), &signed.token, globex).await.unwrap();
    assert_eq!(in_globex.session.active_org, Some(globex));
    let auth = w
        .authenticate(Credential::Session(in_globex.token.clone()))
        .await
        .unwrap();
    assert_eq!(auth.org, Some(globex));
    w.assert_refused(
        &w.authenticate(Credential::Session(signed.token)).await.unwrap_err(),
        "auth.session",
        AuthFailure::Revoked,
    );

    let in_acme = w.identity.switch_org(&w.host(), &in_globex.token, acme).await.unwrap();
    assert_eq!(in_acme.session.active_org, Some(acme));
    let outsider = w
        .identity
        .switch_org(
            &w.host(),
            &in_acme.token,
            OrgId::generate(&SequentialIds::default(), w.clock_now()),
        )
        .await
        .unwrap_err();
    assert_eq!(outsider.code(), ErrorCode::OrgNotFound);

    // Removed from globex: a session there keeps the user but loses the org at once.
    let back = w.identity.switch_org(&w.host(), &in_acme.token, globex).await.unwrap();
    w.portal
        .tenancy()
        .remove_member(&w.as_user(bob), globex, ann)
        .await
        .unwrap();
    let auth = w.authenticate(Credential::Session(back.token)).await.unwrap();
    assert_eq!((auth.principal.clone(), auth.org), (Principal::User(ann), None));
    assert_eq!(auth.org_roles, None, "no roles travel for an org the user has left");
    let ctx = w.portal.context_for(&auth).build();
    assert_eq!(ctx.roles_in(globex), None);
    if let Some(joined) = &w.joined {
        // Three session authentications above (switching orgs reads the session alone),
        // each one call to the joined read.
        assert_eq!(
            joined.calls.load(Ordering::Relaxed),
            3,
            "every session read went through the one call"
        );
    }
}

/// A joined read that answers a membership of another org than the session's active one
/// (a faulty backend) does not give the user that org's roles, or any org.
#[tokio::test]
async fn a_joined_read_answering_another_orgs_membership_grants_nothing() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    let acme = w.org("acme", ann).await;
    let other = w.org("other", ann).await;
    let signed = w.sign_in("ann@example.com", PASSWORD).await.unwrap();
    assert!(signed.session.active_org.is_none(), "two orgs: none chosen yet");
    let in_acme = w.identity.switch_org(&w.host(), &signed.token, acme).await.unwrap();
    let wrong = w
        .portal
        .tenancy()
        .get_member(&w.as_user(ann), other, ann)
        .await
        .unwrap();
    let mut joined = portal_core::identity::MockSessionMembershipStore::new();
    let answered = in_acme.session.clone();
    joined
        .expect_find_session_with_membership()
        .times(1)
        .returning(move |_| {
            Ok(Some(SessionWithMembership {
                session: answered.clone(),
                membership: Some(wrong.clone()),
                mfa_unmet: false,
            }))
        });
    let identity = w.identity.clone().with_session_memberships(Arc::new(joined));
    let auth = portal_core::identity::Authenticator::authenticate(
        &identity,
        &w.host(),
        &Credential::Session(in_acme.token.clone()),
    )
    .await
    .unwrap();
    assert_eq!(auth.principal, Principal::User(ann));
    assert_eq!(
        (auth.org, auth.org_roles),
        (None, None),
        "neither acme nor the other org"
    );
}

impl World {
    fn clock_now(&self) -> OffsetDateTime {
        use portal_core::Clock;
        self.clock.now()
    }
}

// ---------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------

fn scopes(list: &[&str]) -> Vec<Scope> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

impl World {
    async fn key(&self, owner: UserId, org: OrgId, list: &[&str]) -> portal_auth::identity::CreatedApiKey {
        self.identity
            .create_api_key(
                &self.as_user(owner),
                org,
                NewApiKey {
                    name: "ci".to_owned(),
                    scopes: scopes(list),
                    expires_at: Some(self.clock_now() + Duration::days(30)),
                },
            )
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_key_does_exactly_its_scopes_in_its_own_org_through_the_portal() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    let acme = w.org("acme", ann).await;
    let other = w.org("other", ann).await;
    let created = w.key(ann, acme, &["members read"]).await;
    assert!(created.key.expose_secret().starts_with(&created.record.prefix));
    let event = w.last("auth.api_key.create");
    assert_eq!(event.detail["key"], created.record.id.to_string());

    let auth = w.authenticate(Credential::ApiKey(created.key.clone())).await.unwrap();
    assert_eq!(auth.org, Some(acme));
    assert_eq!(w.last("auth.api_key.use").outcome, Outcome::Succeeded);
    let ctx = w.portal.context_for(&auth).build();
    let page = portal_core::PageRequest::default();
    w.portal
        .tenancy()
        .list_members(&ctx, acme, &page)
        .await
        .expect("in scope");
    // Outside its scope in its own org: access.denied.
    let err = w.portal.tenancy().get_org(&ctx, acme).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::AccessDenied);
    // Another org, even one its creator owns: not reachable.
    let err = w.portal.tenancy().list_members(&ctx, other, &page).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::OrgNotFound);
    // The same principal without the key's scopes in its context may do nothing.
    let bare = w.portal.context(auth.principal.clone()).org(acme).build();
    let err = w.portal.tenancy().list_members(&bare, acme, &page).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::AccessDenied);
}

#[tokio::test]
async fn nobody_makes_a_key_stronger_than_themselves() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    let bob = w.user("bob@example.com").await;
    let acme = w.org("acme", ann).await;
    w.add_member(
        acme,
        "bob@example.com",
        bob,
        RoleSet::one(portal_core::tenancy::RoleName::admin()),
    )
    .await;
    let new = |list: &[&str]| NewApiKey {
        name: "k".to_owned(),
        scopes: scopes(list),
        expires_at: Some(w.clock_now() + Duration::days(1)),
    };
    let err = w
        .identity
        .create_api_key(&w.as_user(bob), acme, new(&["billing read"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::AccessDenied, "an admin holds no billing grant");
    w.identity
        .create_api_key(&w.as_user(bob), acme, new(&["members *"]))
        .await
        .unwrap();
    let carol = w.user("carol@example.com").await;
    let err = w
        .identity
        .create_api_key(&w.as_user(carol), acme, new(&["org read"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OrgNotFound, "a non-member");
    let err = w
        .identity
        .create_api_key(
            &w.as_user(ann),
            acme,
            NewApiKey {
                expires_at: None,
                ..new(&["org read"])
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.param(), Some("expires_at"));
}

#[tokio::test]
async fn expired_revoked_and_tampered_keys_are_refused() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    let acme = w.org("acme", ann).await;
    let created = w.key(ann, acme, &["members read"]).await;

    for at in [0, 10, 40, 74] {
        let err = w
            .authenticate(Credential::ApiKey(change_one_char(&created.key, at)))
            .await
            .unwrap_err();
        w.assert_refused(&err, "auth.api_key.use", AuthFailure::Malformed);
    }
    let unknown = portal_auth::identity::token::ApiKeyToken::generate()
        .unwrap()
        .into_secret();
    w.assert_refused(
        &w.authenticate(Credential::ApiKey(unknown)).await.unwrap_err(),
        "auth.api_key.use",
        AuthFailure::WrongSecret,
    );

    let keys = w
        .identity
        .list_api_keys(&w.as_user(ann), acme, &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].last_used_at.is_none());
    w.authenticate(Credential::ApiKey(created.key.clone())).await.unwrap();
    let keys = w
        .identity
        .list_api_keys(&w.as_user(ann), acme, &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(keys[0].last_used_at, Some(w.clock_now()), "the last use is recorded");

    w.clock.advance(Duration::days(31));
    w.assert_refused(
        &w.authenticate(Credential::ApiKey(created.key.clone()))
            .await
            .unwrap_err(),
        "auth.api_key.use",
        AuthFailure::Expired,
    );

    let live = w.key(ann, acme, &["members read"]).await;
    w.identity
        .revoke_api_key(&w.as_user(ann), acme, live.record.id)
        .await
        .unwrap();
    assert_eq!(w.last("auth.api_key.revoke").detail["key"], live.record.id.to_string());
    w.assert_refused(
        &w.authenticate(Credential::ApiKey(live.key)).await.unwrap_err(),
        "auth.api_key.use",
        AuthFailure::Revoked,
    );
    let other = w.org("other", ann).await;
    let err = w
        .identity
        .revoke_api_key(&w.as_user(ann), other, created.record.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ApiKeyNotFound, "another org's key");
}

#[tokio::test]
async fn a_bearer_token_without_a_bearer_authenticator_is_refused() {
    let w = world();
    let err = w
        .authenticate(Credential::Bearer(secret("eyJhbGciOiJub25lIn0.e30.")))
        .await
        .unwrap_err();
    w.assert_refused(&err, "auth.bearer", AuthFailure::Malformed);
}

/// A password change checks the current password under the sign-in throttle: wrong
/// guesses count as failed sign-ins of the account from that source, a source past its
/// limit is refused (`locked`) even with the right password, for a change and a sign-in
/// alike, and another source still signs in.
#[tokio::test]
async fn a_password_change_is_throttled_like_a_sign_in() {
    let w = world();
    let ann = w.user("ann@example.com").await;
    let limit = w.identity.config().max_account_source_failures;
    for _ in 0..limit {
        let err = w
            .identity
            .change_password(
                &w.as_user(ann),
                secret("a wrong guess"),
                secret("another new passphrase"),
                "203.0.113.50",
                None,
            )
            .await
            .unwrap_err();
        w.assert_refused(&err, "auth.password.change", AuthFailure::WrongSecret);
    }
    let err = w
        .identity
        .change_password(
            &w.as_user(ann),
            secret(PASSWORD),
            secret("another new passphrase"),
            "203.0.113.50",
            None,
        )
        .await
        .unwrap_err();
    w.assert_refused(&err, "auth.password.change", AuthFailure::Locked);
    let err = w
        .identity
        .sign_in(
            &w.host(),
            w.sign_in_request("ann@example.com", PASSWORD, "203.0.113.50"),
        )
        .await
        .unwrap_err();
    w.assert_refused(&err, "auth.sign_in", AuthFailure::Locked);
    w.sign_in("ann@example.com", PASSWORD)
        .await
        .expect("another source is not locked out, and the password did not change");
}
