//! Passkeys of `IdentityService` on SQLite, answered by an independent software
//! authenticator (1Password's `passkey` crate: its own WebAuthn client and CTAP2
//! authenticator, nothing of `webauthn-rs`): a registered passkey signs its user in with
//! no password and no MFA challenge; an answer made on another origin or for another
//! relying party id, a ceremony answered twice, a credential whose user handle names
//! another account, and a cloned authenticator (its counter behind) are refused with
//! their stable codes; adding a passkey asks the password and, once the user has a second
//! factor, a fresh one, which a passkey's answer to a re-authentication ceremony can be
//! (as for removal, TOTP enrollment and removal, new recovery codes and a change of
//! email, which a passkey-only user no longer makes with the password alone); and the events name
//! no token, challenge or credential. A passkey is a second factor: a password sign-in of
//! its user answers an MFA challenge that the passkey completes (bound to that challenge,
//! that user and one use; another user's passkey, a removed one, a replayed or crossed
//! ceremony and a cloned authenticator refused), and it meets an org's MFA policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert")]

use std::sync::Arc;

use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::Passkey as SoftPasskey;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use portal_adapters::mail::FolderMailer;
use portal_adapters::observability::MemoryJournal;
use portal_adapters::sqlite::{self, SqliteIdentityStore, SqliteTenancyStore};
use portal_auth::identity::totp::code_at;
use portal_auth::identity::{
    EmailChange, EmailChangeRequest, FactorReset, IdentityService, IdentityStores, Mfa, MfaChallenge, NewSession,
    PasskeyCeremony, Passkeys, PasswordParams, PasswordReset, SecondFactor, SecondFactors, SignIn, SignInStep,
    TotpState,
};
use portal_core::access::RoleTableAuthorizer;
use portal_core::audit::{AuditLog, AuditQuery};
use portal_core::context::ServiceName;
use portal_core::gate::Gate;
use portal_core::identity::{AuthFailure, Authenticator as _, Credential};
use portal_core::ids::{SequentialIds, UserId};
use portal_core::tenancy::NewUser;
use portal_core::time::ManualClock;
use portal_core::{Clock, ErrorCode, Portal, PortalError, Principal, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use url::Url;

const PASSWORD: &str = "Tr0ub4dor&3 horse staple";
const RP_ID: &str = "portal.example.com";
const ORIGIN: &str = "https://portal.example.com";

/// A user who is present and verified (a PIN or a fingerprint) every time.
struct AlwaysVerified;

#[async_trait::async_trait]
impl UserValidationMethod for AlwaysVerified {
    type PasskeyItem = SoftPasskey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, SoftPasskey>,
        _presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

/// A software authenticator holding one discoverable credential, with a signature counter.
struct SoftKey {
    client: Client<Option<SoftPasskey>, AlwaysVerified, RustCryptoBackend, public_suffix::PublicSuffixList, ()>,
}

impl SoftKey {
    fn new() -> Self {
        Self::holding(None)
    }

    fn holding(credential: Option<SoftPasskey>) -> Self {
        let mut authenticator = Authenticator::new(Aaguid::new_empty(), credential, AlwaysVerified, RustCryptoBackend);
        authenticator.set_make_credentials_with_signature_counter(true);
        Self {
            client: Client::new(authenticator),
        }
    }

    /// Another authenticator holding a copy of this one's credential as it is now.
    fn clone_key(&self) -> Self {
        Self::holding(self.client.authenticator().store().clone())
    }

    /// `navigator.credentials.create(options)` on `origin`, as the JSON a page posts.
    async fn create(&mut self, origin: &str, options: &Value) -> Value {
        let request: CredentialCreationOptions = serde_json::from_value(options.clone()).expect("creation options");
        let origin = Url::parse(origin).unwrap();
        let created = self
            .client
            .register(&origin, request, DefaultClientData)
            .await
            .expect("the authenticator registers");
        serde_json::to_value(created).unwrap()
    }

    /// `navigator.credentials.get(options)` on `origin`, as the JSON a page posts.
    async fn get(&mut self, origin: &str, options: &Value) -> Value {
        let request: CredentialRequestOptions = serde_json::from_value(options.clone()).expect("request options");
        let origin = Url::parse(origin).unwrap();
        let asserted = self
            .client
            .authenticate(&origin, request, DefaultClientData)
            .await
            .expect("the authenticator answers");
        serde_json::to_value(asserted).unwrap()
    }
}

/// Each world's mail folder (change-of-email messages) is its own.
static MAIL_DIRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct World {
    identity: IdentityService,
    portal: Portal,
    clock: Arc<ManualClock>,
    journal: Arc<MemoryJournal>,
    audit: portal_adapters::sqlite::SqliteAuditLog,
    /// Where the development mailer writes messages (changes of email, notices); removed
    /// with the world.
    mail: std::path::PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.mail);
    }
}

impl World {
    async fn new() -> Self {
        let pool = sqlite::connect("sqlite::memory:").await.unwrap();
        sqlite::migrate(&pool).await.unwrap();
        let mail = std::env::temp_dir().join(format!(
            "portal-passkey-mail-{}-{}",
            std::process::id(),
            MAIL_DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let clock = Arc::new(ManualClock::new(
            OffsetDateTime::from_unix_timestamp(1_750_000_005).unwrap(),
        ));
        let ids = Arc::new(SequentialIds::default());
        let tenancy = Arc::new(SqliteTenancyStore::new(pool.clone()));
        let store = Arc::new(SqliteIdentityStore::new(pool.clone()));
        let journal = Arc::new(MemoryJournal::default());
        let authorizer = Arc::new(RoleTableAuthorizer::default());
        let gate = Gate::new(authorizer.clone(), journal.clone(), tenancy.clone());
        let identity = IdentityService::new(
            IdentityStores::from_one(store.clone()),
            tenancy.clone(),
            gate,
            ids.clone(),
        )
        .with_password_params(PasswordParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
        .with_mfa(Mfa::from_one(store.clone(), "Acme Portal"))
        .with_passkeys(Passkeys::new(store.clone(), RP_ID, ORIGIN, "Acme Portal").unwrap())
        .with_password_reset(PasswordReset::new(
            store.clone(),
            Arc::new(FolderMailer::new(&mail, "Portal <no-reply@portal.example>").unwrap()),
            "https://portal.example.com/reset-password",
        ))
        .with_email_change(EmailChange::new(
            store,
            Arc::new(FolderMailer::new(&mail, "Portal <no-reply@portal.example>").unwrap()),
            "https://portal.example.com/confirm-email-change",
        ));
        let portal = Portal::builder()
            .tenancy_store(tenancy)
            .authorizer(authorizer)
            .diagnostics(journal.clone())
            .clock(clock.clone())
            .ids(ids)
            .authenticator(Arc::new(identity.clone()))
            .build()
            .unwrap();
        Self {
            identity,
            portal,
            clock,
            journal,
            audit: portal_adapters::sqlite::SqliteAuditLog::new(pool),
            mail,
        }
    }

    fn host(&self) -> RequestContext {
        self.portal
            .context(Principal::Service(ServiceName::new("web").unwrap()))
            .build()
    }

    fn as_user(&self, user: UserId) -> RequestContext {
        self.portal.context(Principal::User(user)).build()
    }

    /// A user with a password, in an org of their own.
    async fn user(&self, email: &str) -> UserId {
        let user = self
            .portal
            .tenancy()
            .create_user(
                &self.host(),
                NewUser {
                    email: email.to_owned(),
                    display_name: "Ann".to_owned(),
                },
            )
            .await
            .unwrap();
        self.identity
            .set_password(&self.host(), user.id, SecretString::from(PASSWORD))
            .await
            .unwrap();
        user.id
    }

    /// Begins registering a passkey for `user`, with their password and `factor`.
    async fn begin_registration(
        &self,
        user: UserId,
        factor: Option<SecondFactor>,
    ) -> Result<PasskeyCeremony, PortalError> {
        self.identity
            .begin_passkey_registration(
                &self.as_user(user),
                SecretString::from(PASSWORD),
                factor,
                "198.51.100.7",
            )
            .await
    }

    /// Registers `key` for `user` (who has no second factor yet) as `name`, and answers
    /// the passkey's id.
    async fn register(&self, user: UserId, key: &mut SoftKey, name: &str) -> portal_core::ids::PasskeyId {
        self.register_with(user, key, name, None).await
    }

    /// Registers `key` for `user` as `name`, proving `user` again with `factor`, and
    /// answers the passkey's id.
    async fn register_with(
        &self,
        user: UserId,
        key: &mut SoftKey,
        name: &str,
        factor: Option<SecondFactor>,
    ) -> portal_core::ids::PasskeyId {
        let ctx = self.as_user(user);
        let ceremony = self.begin_registration(user, factor).await.unwrap();
        let answer = key.create(ORIGIN, &ceremony.options).await;
        self.identity
            .finish_passkey_registration(&ctx, &ceremony.token, name, &answer)
            .await
            .expect("the registration verifies")
            .id
    }

    /// Begins TOTP enrollment for `user`, with their password and `factor`.
    async fn enroll_totp(
        &self,
        user: UserId,
        factor: Option<SecondFactor>,
    ) -> Result<portal_auth::identity::TotpEnrollment, PortalError> {
        self.identity
            .begin_totp_enrollment(
                &self.as_user(user),
                SecretString::from(PASSWORD),
                factor,
                "198.51.100.7",
            )
            .await
    }

    /// `user` proving themselves with `key`: a re-authentication ceremony answered.
    async fn reauthentication(&self, user: UserId, key: &mut SoftKey) -> SecondFactor {
        let ceremony = self
            .identity
            .begin_passkey_reauthentication(&self.as_user(user))
            .await
            .unwrap();
        SecondFactor::Passkey {
            credential: key.get(ORIGIN, &ceremony.options).await,
            ceremony: ceremony.token,
        }
    }

    async fn begin_sign_in(&self) -> PasskeyCeremony {
        self.identity.begin_passkey_sign_in(&self.host()).await.unwrap()
    }

    /// A password sign-in of `email` from `source`.
    async fn password_sign_in(&self, email: &str, source: &str) -> Result<SignInStep, PortalError> {
        self.identity
            .begin_sign_in(
                &self.host(),
                SignIn {
                    email: email.to_owned(),
                    password: SecretString::from(PASSWORD),
                    source: source.to_owned(),
                    previous_session: None,
                },
            )
            .await
    }

    /// The MFA challenge of a password sign-in of `email`.
    async fn challenge(&self, email: &str) -> MfaChallenge {
        match self.password_sign_in(email, "198.51.100.7").await.unwrap() {
            SignInStep::MfaChallenge(challenge) => challenge,
            SignInStep::Session(_) => panic!("{email} signed in by a password alone"),
        }
    }

    /// Begins a passkey ceremony for `challenge`.
    async fn begin_mfa(&self, challenge: &MfaChallenge) -> Result<PasskeyCeremony, PortalError> {
        self.identity.begin_mfa_passkey(&self.host(), &challenge.token).await
    }

    /// Completes `challenge` with the ceremony `ceremony` and the answer `credential`.
    async fn complete_mfa(
        &self,
        challenge: &MfaChallenge,
        ceremony: &PasskeyCeremony,
        credential: &Value,
    ) -> Result<UserId, PortalError> {
        self.identity
            .complete_mfa_challenge_with_passkey(
                &self.host(),
                &challenge.token,
                &ceremony.token,
                credential,
                "198.51.100.7",
                None,
            )
            .await
            .map(|s| s.session.user)
    }

    /// Answers `challenge` with `key`, through a ceremony begun for it.
    async fn answer_mfa(&self, challenge: &MfaChallenge, key: &mut SoftKey) -> Result<UserId, PortalError> {
        let ceremony = self.begin_mfa(challenge).await?;
        let credential = key.get(ORIGIN, &ceremony.options).await;
        self.complete_mfa(challenge, &ceremony, &credential).await
    }

    async fn sign_in(&self, key: &mut SoftKey) -> Result<UserId, PortalError> {
        self.passkey_session(key).await.map(|s| s.session.user)
    }

    /// A passwordless sign-in with `key`: the new session.
    async fn passkey_session(&self, key: &mut SoftKey) -> Result<NewSession, PortalError> {
        let ceremony = self.begin_sign_in().await;
        let answer = key.get(ORIGIN, &ceremony.options).await;
        self.identity
            .finish_passkey_sign_in(&self.host(), &ceremony.token, &answer, "198.51.100.7", None)
            .await
    }

    /// The messages mailed so far, as their RFC 5322 text.
    fn mailed(&self) -> Vec<String> {
        std::fs::read_dir(&self.mail)
            .map(|dir| {
                dir.map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits (up to 10 s) until `n` messages were mailed: notices go out off the request path.
    async fn await_mailed(&self, n: usize) -> Vec<String> {
        for _ in 0..1000 {
            let mailed = self.mailed();
            if mailed.len() >= n {
                return mailed;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{n} messages were not mailed: {:?}", self.mailed());
    }
}

fn code(err: &PortalError) -> ErrorCode {
    err.code()
}

/// Support's way back in for a user who lost every factor: only the host (a service
/// principal) resets a user's second factors; the user themselves, another user and an
/// API key of their org are refused, as are a missing or malformed reason and an unknown
/// user, and each refusal changes nothing. The reset ends every session, removes the TOTP
/// factor and every passkey (which then sign nobody in), leaves other users' factors
/// alone, audits each removal in every org of the user with the service as actor and
/// the reason, mails the user a notice, and keeps the reason out of the diagnostics.
/// Afterwards the password alone signs the user in and enrolls a factor again; a second
/// reset finds nothing.
#[tokio::test]
async fn only_the_host_resets_a_users_second_factors_which_ends_their_sessions() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let bob = world.user("bob@example.com").await;
    let mut orgs = Vec::new();
    for slug in ["acme", "beta"] {
        let org = world
            .portal
            .tenancy()
            .create_org(
                &world.as_user(ann),
                portal_core::tenancy::NewOrg {
                    slug: slug.to_owned(),
                    name: slug.to_owned(),
                    ..portal_core::tenancy::NewOrg::default()
                },
            )
            .await
            .unwrap();
        orgs.push(org.id);
    }
    let mut laptop = SoftKey::new();
    world.register(ann, &mut laptop, "Laptop").await;
    let mut phone = SoftKey::new();
    let proof = world.reauthentication(ann, &mut laptop).await;
    world.register_with(ann, &mut phone, "Phone", Some(proof)).await;
    let proof = world.reauthentication(ann, &mut laptop).await;
    let enrollment = world.enroll_totp(ann, Some(proof)).await.unwrap();
    let secret = totp_secret(enrollment.secret.expose_secret());
    world
        .identity
        .confirm_totp(&world.as_user(ann), &code_at(&secret, world.clock.now()).unwrap())
        .await
        .unwrap();
    let mut bobs = SoftKey::new();
    world.register(bob, &mut bobs, "Bob's key").await;
    let sessions = [
        world.passkey_session(&mut laptop).await.unwrap(),
        world.passkey_session(&mut phone).await.unwrap(),
    ];
    let mailed_before = world.mailed().len();
    let reason = "lost her phone and laptop; identity checked on a video call, ticket 4711";

    let api_key = world
        .portal
        .context(Principal::ApiKey {
            key: portal_core::ids::ApiKeyId::from_uuid(uuid::Uuid::from_u128(7)),
            org: orgs[0],
        })
        .build();
    for (who, ctx) in [
        ("Ann herself", world.as_user(ann)),
        ("another user", world.as_user(bob)),
        ("an API key of her org", api_key),
    ] {
        let err = world
            .identity
            .reset_second_factors(&ctx, ann, reason)
            .await
            .unwrap_err();
        assert_eq!(code(&err), ErrorCode::AccessDenied, "{who} may not reset her factors");
    }
    for bad in ["", "   ", "lost\u{7}it", "x".repeat(501).as_str()] {
        let err = world
            .identity
            .reset_second_factors(&world.host(), ann, bad)
            .await
            .unwrap_err();
        assert_eq!(
            (code(&err), err.param()),
            (ErrorCode::InvalidField, Some("reason")),
            "{bad:?}"
        );
    }
    let nobody = UserId::from_uuid(uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001));
    let err = world
        .identity
        .reset_second_factors(&world.host(), nobody, reason)
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::UserNotFound);
    let status = world.identity.mfa_status(&world.as_user(ann)).await.unwrap();
    assert_eq!(
        (status.totp, status.passkeys),
        (TotpState::Confirmed, 2),
        "the refusals changed nothing"
    );

    let reset = world
        .identity
        .reset_second_factors(&world.host(), ann, reason)
        .await
        .unwrap();
    assert_eq!(
        reset,
        FactorReset {
            sessions_revoked: 2,
            totp_removed: true,
            passkeys_removed: 2,
        }
    );
    for session in &sessions {
        let err = world
            .identity
            .authenticate(&world.host(), &Credential::Session(session.token.clone()))
            .await
            .unwrap_err();
        assert!(err.failure().is_some(), "a reset ends every session: {err:?}");
    }
    for key in [&mut laptop, &mut phone] {
        let err = world.sign_in(key).await.unwrap_err();
        assert_eq!(code(&err), ErrorCode::PasskeyRefused, "a reset passkey signs nobody in");
    }
    let status = world.identity.mfa_status(&world.as_user(ann)).await.unwrap();
    assert_eq!(
        (status.totp, status.passkeys, status.recovery_codes_left),
        (TotpState::None, 0, 0)
    );
    assert_eq!(
        world.sign_in(&mut bobs).await.unwrap(),
        bob,
        "Bob's passkey is his still"
    );

    for org in &orgs {
        let events = world.audit.list(*org, &AuditQuery::default(), None, 100).await.unwrap();
        let reset_events: Vec<_> = events.iter().filter(|e| e.metadata["reset"] == true).collect();
        let mut actions: Vec<&str> = reset_events.iter().map(|e| e.action.as_str()).collect();
        actions.sort_unstable();
        assert_eq!(
            actions,
            [
                "user.mfa_removed",
                "user.passkey_removed",
                "user.passkey_removed",
                "user.sessions_revoked"
            ],
            "each removal, in each of Ann's orgs"
        );
        for event in &reset_events {
            assert_eq!(
                (event.actor.kind, event.actor.id.as_str()),
                (portal_core::audit::ActorKind::Service, "web"),
                "{event:?}"
            );
            assert_eq!(event.metadata["reason"], reason, "{event:?}");
        }
    }
    let mailed = world.await_mailed(mailed_before + 1).await;
    let notices: Vec<&String> = mailed.iter().filter(|m| m.contains("were reset")).collect();
    assert_eq!(notices.len(), 1, "{mailed:?}");
    assert!(notices[0].contains("To: ann@example.com"), "{}", notices[0]);
    let events = world.journal.events();
    let event = events
        .iter()
        .find(|e| e.name == "auth.mfa.reset" && e.outcome == portal_core::diagnostics::Outcome::Succeeded)
        .expect("the reset is an event");
    assert_eq!(event.detail["passkeys_removed"], 2);
    assert!(
        !serde_json::to_string(&events).unwrap().contains("video call"),
        "the reason is the audit log's, not the diagnostics'"
    );

    let again = world
        .identity
        .reset_second_factors(&world.host(), ann, reason)
        .await
        .unwrap();
    assert_eq!(again, FactorReset::default(), "nothing is left to reset");
    match world.password_sign_in("ann@example.com", "198.51.100.7").await.unwrap() {
        SignInStep::Session(session) => assert_eq!(session.session.user, ann),
        SignInStep::MfaChallenge(_) => panic!("a reset user is not challenged"),
    }
    world
        .enroll_totp(ann, None)
        .await
        .expect("enrolling again asks the password alone");
}

#[tokio::test]
async fn a_registered_passkey_signs_its_user_in_without_a_password_or_a_challenge() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    // Ann has a TOTP factor: a password sign-in answers a challenge, a passkey does not.
    let enrollment = world.enroll_totp(ann, None).await.unwrap();
    let secret = totp_secret(enrollment.secret.expose_secret());
    let first = code_at(&secret, world.clock.now()).unwrap();
    world.identity.confirm_totp(&world.as_user(ann), &first).await.unwrap();

    let mut key = SoftKey::new();
    world.clock.advance(Duration::seconds(30));
    let fresh = SecondFactor::Totp(code_at(&secret, world.clock.now()).unwrap());
    let ceremony = world.begin_registration(ann, Some(fresh)).await.unwrap();
    let selection = &ceremony.options["publicKey"]["authenticatorSelection"];
    assert_eq!(
        (&selection["residentKey"], &selection["requireResidentKey"]),
        (&Value::from("required"), &Value::from(true)),
        "the options ask for a discoverable credential, which alone signs in with no name typed"
    );
    world.clock.advance(Duration::seconds(30));
    let fresh = SecondFactor::Totp(code_at(&secret, world.clock.now()).unwrap());
    let id = world.register_with(ann, &mut key, "Work laptop", Some(fresh)).await;
    let listed = world.identity.passkeys(&world.as_user(ann)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].name.as_str()), (id, "Work laptop"));

    assert_eq!(world.sign_in(&mut key).await.unwrap(), ann);
    world.clock.advance(Duration::seconds(1));
    assert_eq!(
        world.sign_in(&mut key).await.unwrap(),
        ann,
        "a second sign-in, counter higher"
    );
    let used = &world.identity.passkeys(&world.as_user(ann)).await.unwrap()[0];
    assert!(used.sign_count >= 2, "the counter moved: {}", used.sign_count);
    assert_eq!(used.last_used_at, Some(world.clock.now()));

    let step = world
        .identity
        .begin_sign_in(
            &world.host(),
            SignIn {
                email: "ann@example.com".to_owned(),
                password: SecretString::from(PASSWORD),
                source: "198.51.100.7".to_owned(),
                previous_session: None,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(step, SignInStep::MfaChallenge(_)),
        "the password still asks for the factor"
    );
}

#[tokio::test]
async fn answers_made_for_another_origin_or_relying_party_are_refused() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let ctx = world.as_user(ann);

    // A phishing site relays the options under its own name: the browser binds the answer
    // to its origin and relying party id.
    let ceremony = world.begin_registration(ann, None).await.unwrap();
    let mut phished = ceremony.options.clone();
    phished["publicKey"]["rp"]["id"] = Value::from("evil.example.net");
    let answer = SoftKey::new().create("https://evil.example.net", &phished).await;
    let err = world
        .identity
        .finish_passkey_registration(&ctx, &ceremony.token, "Phished", &answer)
        .await
        .unwrap_err();
    assert_eq!(
        (code(&err), err.param()),
        (ErrorCode::PasskeyRefused, Some("credential"))
    );

    // The right origin, but a parent domain as relying party id.
    let ceremony = world.begin_registration(ann, None).await.unwrap();
    let mut parent = ceremony.options.clone();
    parent["publicKey"]["rp"]["id"] = Value::from("example.com");
    let answer = SoftKey::new().create(ORIGIN, &parent).await;
    let err = world
        .identity
        .finish_passkey_registration(&ctx, &ceremony.token, "Parent", &answer)
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::PasskeyRefused);
    assert!(
        world.identity.passkeys(&ctx).await.unwrap().is_empty(),
        "nothing stored"
    );

    // A sign-in answered on another origin.
    let mut key = SoftKey::new();
    world.register(ann, &mut key, "Laptop").await;
    let ceremony = world.begin_sign_in().await;
    let mut phished = ceremony.options.clone();
    phished["publicKey"]["rpId"] = Value::from("evil.example.net");
    let mut evil_key = SoftKey::holding(key.client.authenticator().store().clone().map(|mut p| {
        p.rp_id = "evil.example.net".to_owned();
        p
    }));
    let answer = evil_key.get("https://evil.example.net", &phished).await;
    let err = world
        .identity
        .finish_passkey_sign_in(&world.host(), &ceremony.token, &answer, "198.51.100.7", None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::PasskeyRefused);
}

#[tokio::test]
async fn a_ceremony_answers_once_and_not_after_it_expires() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let mut key = SoftKey::new();
    world.register(ann, &mut key, "Laptop").await;

    let ceremony = world.begin_sign_in().await;
    let answer = key.get(ORIGIN, &ceremony.options).await;
    world
        .identity
        .finish_passkey_sign_in(&world.host(), &ceremony.token, &answer, "198.51.100.7", None)
        .await
        .unwrap();
    let err = world
        .identity
        .finish_passkey_sign_in(&world.host(), &ceremony.token, &answer, "198.51.100.7", None)
        .await
        .unwrap_err();
    assert_eq!(
        (code(&err), err.param()),
        (ErrorCode::TokenUsed, Some("ceremony_token"))
    );

    let late = world.begin_sign_in().await;
    let answer = key.get(ORIGIN, &late.options).await;
    world.clock.advance(Duration::minutes(5));
    let err = world
        .identity
        .finish_passkey_sign_in(&world.host(), &late.token, &answer, "198.51.100.7", None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::TokenExpired);

    let err = world
        .identity
        .finish_passkey_sign_in(
            &world.host(),
            &SecretString::from("ppc_not-a-token"),
            &answer,
            "198.51.100.7",
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::TokenInvalid);

    // Pruning deletes the ceremonies once expired, used or not; a live one stays.
    assert_eq!(
        world.identity.prune_passkey_ceremonies(&world.host()).await.unwrap(),
        0,
        "none has expired before now"
    );
    world.clock.advance(Duration::seconds(1));
    let live = world.begin_sign_in().await;
    assert_eq!(
        world.identity.prune_passkey_ceremonies(&world.host()).await.unwrap(),
        3,
        "the registration's and both sign-ins' ceremonies"
    );
    let answer = key.get(ORIGIN, &live.options).await;
    world
        .identity
        .finish_passkey_sign_in(&world.host(), &live.token, &answer, "198.51.100.7", None)
        .await
        .expect("the live ceremony was kept");
    let err = world
        .identity
        .finish_passkey_sign_in(&world.host(), &late.token, &answer, "198.51.100.7", None)
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::TokenInvalid, "a pruned ceremony is gone");
}

#[tokio::test]
async fn a_registration_is_bound_to_its_user_and_a_credential_to_one_account() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let bob = world.user("bob@example.com").await;

    // Bob finishes Ann's ceremony: refused, and nothing is stored for either.
    let ceremony = world.begin_registration(ann, None).await.unwrap();
    let answer = SoftKey::new().create(ORIGIN, &ceremony.options).await;
    let err = world
        .identity
        .finish_passkey_registration(&world.as_user(bob), &ceremony.token, "Mine", &answer)
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::TokenWrongUser);

    // Ann's authenticator registered for Ann cannot be registered again, by Bob either.
    let mut key = SoftKey::new();
    world.register(ann, &mut key, "Laptop").await;
    let ceremony = world.begin_registration(bob, None).await.unwrap();
    let mut replayed = ceremony.options.clone();
    replayed["publicKey"]["excludeCredentials"] = Value::Array(Vec::new());
    // An answer for Bob that claims Ann's credential id in its outer `id` and `rawId`: what
    // is stored is the id the authenticator attested (a new one), never the claimed one,
    // so Ann's credential stays Ann's alone.
    let mut same = SoftKey::holding(key.client.authenticator().store().clone());
    let mut answer = same.create(ORIGIN, &replayed).await;
    let anns_id = world.identity.passkeys(&world.as_user(ann)).await.unwrap()[0]
        .credential_id
        .clone();
    answer["id"] = Value::from(base64url(&anns_id));
    answer["rawId"] = Value::from(base64url(&anns_id));
    let bobs = world
        .identity
        .finish_passkey_registration(&world.as_user(bob), &ceremony.token, "Ann's?", &answer)
        .await
        .expect("a new credential of its own");
    assert_ne!(bobs.credential_id, anns_id, "the claimed id is not what is stored");
    let proof = world.reauthentication(bob, &mut same).await;
    world
        .identity
        .remove_passkey(
            &world.as_user(bob),
            bobs.id,
            SecretString::from(PASSWORD),
            Some(proof),
            "198.51.100.9",
        )
        .await
        .unwrap();
    assert!(world.identity.passkeys(&world.as_user(bob)).await.unwrap().is_empty());

    // An assertion by Ann's credential whose user handle claims Bob is refused.
    let mut claims_bob = SoftKey::holding(key.client.authenticator().store().clone().map(|mut p| {
        p.user_handle = Some(bob.as_uuid().as_bytes().to_vec().into());
        p
    }));
    let err = world.sign_in(&mut claims_bob).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::PasskeyRefused);
    assert_eq!(world.sign_in(&mut key).await.unwrap(), ann, "Ann's own still works");

    // Bob cannot rename or remove Ann's passkey.
    let anns = world.identity.passkeys(&world.as_user(ann)).await.unwrap()[0].id;
    let err = world
        .identity
        .rename_passkey(&world.as_user(bob), anns, "pwned")
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::PasskeyNotFound);
    let err = world
        .identity
        .remove_passkey(
            &world.as_user(bob),
            anns,
            SecretString::from(PASSWORD),
            None,
            "198.51.100.9",
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::PasskeyNotFound);
    assert_eq!(world.identity.passkeys(&world.as_user(ann)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_cloned_authenticator_is_refused_once_the_original_moved_on() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let mut key = SoftKey::new();
    world.register(ann, &mut key, "Laptop").await;
    let mut clone = key.clone_key();

    assert_eq!(world.sign_in(&mut key).await.unwrap(), ann);
    // The clone reports the counter the original already used.
    let err = world.sign_in(&mut clone).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::PasskeyCounterRegressed);
    assert_eq!(
        world.sign_in(&mut key).await.unwrap(),
        ann,
        "the original still signs in"
    );
}

#[tokio::test]
async fn removal_asks_the_password_and_the_totp_factor_and_is_audited() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let org = world
        .portal
        .tenancy()
        .create_org(
            &world.as_user(ann),
            portal_core::tenancy::NewOrg {
                slug: "acme".to_owned(),
                name: "Acme".to_owned(),
                ..portal_core::tenancy::NewOrg::default()
            },
        )
        .await
        .unwrap();
    let mut key = SoftKey::new();
    let id = world.register(ann, &mut key, "Laptop").await;
    let ctx = world.as_user(ann);
    let renamed = world.identity.rename_passkey(&ctx, id, "  Old laptop ").await.unwrap();
    assert_eq!(renamed.name.as_str(), "Old laptop");

    let proof = world.reauthentication(ann, &mut key).await;
    let enrollment = world.enroll_totp(ann, Some(proof)).await.unwrap();
    let secret = totp_secret(enrollment.secret.expose_secret());
    world
        .identity
        .confirm_totp(&ctx, &code_at(&secret, world.clock.now()).unwrap())
        .await
        .unwrap();
    world.clock.advance(Duration::seconds(30));

    let err = world
        .identity
        .remove_passkey(&ctx, id, SecretString::from("wrong password"), None, "198.51.100.7")
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidCredentials);
    let err = world
        .identity
        .remove_passkey(&ctx, id, SecretString::from(PASSWORD), None, "198.51.100.7")
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::MfaCodeInvalid);
    let fresh = code_at(&secret, world.clock.now()).unwrap();
    world
        .identity
        .remove_passkey(
            &ctx,
            id,
            SecretString::from(PASSWORD),
            Some(SecondFactor::Totp(fresh)),
            "198.51.100.7",
        )
        .await
        .unwrap();
    assert!(world.identity.passkeys(&ctx).await.unwrap().is_empty());
    let err = world.sign_in(&mut key).await.unwrap_err();
    assert_eq!(
        code(&err),
        ErrorCode::PasskeyRefused,
        "a removed passkey signs nobody in"
    );

    let actions: Vec<String> = world
        .audit
        .list(org.id, &AuditQuery::default(), None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action.as_str().to_owned())
        .filter(|a| a.starts_with("user.passkey"))
        .collect();
    assert_eq!(
        actions,
        ["user.passkey_added", "user.passkey_removed"],
        "one event each, in the org Ann belongs to"
    );
}

/// A session alone (one stolen, or left open on a shared machine) adds no passkey, which
/// would sign its holder in with no password for good: adding one asks the password and,
/// once the user has a second factor, a fresh one. A passkey is that fresh factor as a
/// code is: its answer to a re-authentication ceremony of the signed-in user, taken once,
/// for that user only. Removing a passkey of a user whose only factor is passkeys asks for
/// one of them (before, the password alone removed it), and a passkey also confirms new
/// recovery codes and removing the TOTP factor.
#[tokio::test]
async fn adding_or_removing_a_passkey_asks_the_password_and_a_fresh_factor_which_a_passkey_can_be() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let ctx = world.as_user(ann);
    let wrong_password = world
        .identity
        .begin_passkey_registration(&ctx, SecretString::from("not it"), None, "198.51.100.7")
        .await
        .unwrap_err();
    assert_eq!(code(&wrong_password), ErrorCode::InvalidCredentials);
    let mut laptop = SoftKey::new();
    let laptop_id = world.register(ann, &mut laptop, "Laptop").await;

    // Ann now has a second factor: the password alone adds no other passkey.
    let err = world.begin_registration(ann, None).await.unwrap_err();
    assert_eq!((code(&err), err.param()), (ErrorCode::MfaCodeInvalid, Some("code")));
    let err = world
        .begin_registration(ann, Some(SecondFactor::Totp(SecretString::from("123456"))))
        .await
        .unwrap_err();
    assert_eq!(
        code(&err),
        ErrorCode::MfaNotEnrolled,
        "no authenticator app to check a code against"
    );
    let proof = world.reauthentication(ann, &mut laptop).await;
    let SecondFactor::Passkey { ceremony, credential } = &proof else {
        unreachable!()
    };
    let replay = SecondFactor::Passkey {
        ceremony: ceremony.clone(),
        credential: credential.clone(),
    };
    let mut phone = SoftKey::new();
    world.register_with(ann, &mut phone, "Phone", Some(proof)).await;
    let err = world.begin_registration(ann, Some(replay)).await.unwrap_err();
    assert_eq!(
        (code(&err), err.param()),
        (ErrorCode::TokenUsed, Some("ceremony_token")),
        "a proof is taken once"
    );

    // A proof is its user's: Bob's ceremony, answered by Bob's key, proves nothing for Ann;
    // an answer made on another origin proves nothing at all.
    let bob = world.user("bob@example.com").await;
    let mut bobs_key = SoftKey::new();
    world.register(bob, &mut bobs_key, "Bob's").await;
    let bobs_proof = world.reauthentication(bob, &mut bobs_key).await;
    let err = world.begin_registration(ann, Some(bobs_proof)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::TokenWrongUser);
    let ceremony = world.identity.begin_passkey_reauthentication(&ctx).await.unwrap();
    let mut phished = ceremony.options.clone();
    phished["publicKey"]["rpId"] = Value::from("evil.example.net");
    let mut evil = SoftKey::holding(laptop.client.authenticator().store().clone().map(|mut p| {
        p.rp_id = "evil.example.net".to_owned();
        p
    }));
    let phished = SecondFactor::Passkey {
        credential: evil.get("https://evil.example.net", &phished).await,
        ceremony: ceremony.token,
    };
    let err = world.begin_registration(ann, Some(phished)).await.unwrap_err();
    assert_eq!(
        (code(&err), err.param()),
        (ErrorCode::PasskeyRefused, Some("credential"))
    );
    let err = world
        .identity
        .begin_passkey_reauthentication(&world.as_user(world.user("cy@example.com").await))
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::MfaNotEnrolled, "no passkey to prove with");

    // Removing a passkey: the password alone no longer does; the other passkey does.
    let err = world
        .identity
        .remove_passkey(&ctx, laptop_id, SecretString::from(PASSWORD), None, "198.51.100.7")
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::MfaCodeInvalid);
    assert_eq!(world.identity.passkeys(&ctx).await.unwrap().len(), 2, "nothing removed");
    let proof = world.reauthentication(ann, &mut phone).await;
    world
        .identity
        .remove_passkey(
            &ctx,
            laptop_id,
            SecretString::from(PASSWORD),
            Some(proof),
            "198.51.100.7",
        )
        .await
        .unwrap();
    assert_eq!(world.identity.passkeys(&ctx).await.unwrap().len(), 1);

    // With an authenticator app too, a passkey confirms new recovery codes and the app's
    // removal as a code would.
    world.clock.advance(Duration::seconds(30));
    let err = world.enroll_totp(ann, None).await.unwrap_err();
    assert_eq!(
        code(&err),
        ErrorCode::MfaCodeInvalid,
        "the password alone puts no authenticator app on an account with a passkey"
    );
    let proof = world.reauthentication(ann, &mut phone).await;
    let enrollment = world.enroll_totp(ann, Some(proof)).await.unwrap();
    let proof = world.reauthentication(ann, &mut phone).await;
    let secret = totp_secret(enrollment.secret.expose_secret());
    world
        .identity
        .confirm_totp(&ctx, &code_at(&secret, world.clock.now()).unwrap())
        .await
        .unwrap();
    let codes = world
        .identity
        .regenerate_recovery_codes(&ctx, proof, "198.51.100.7")
        .await
        .expect("the passkey confirms new codes");
    assert_eq!(codes.len(), 10);
    let proof = world.reauthentication(ann, &mut phone).await;
    world
        .identity
        .remove_totp(&ctx, SecretString::from(PASSWORD), proof, "198.51.100.7")
        .await
        .expect("the passkey confirms the app's removal");
    let status = world.identity.mfa_status(&ctx).await.unwrap();
    assert_eq!((status.totp, status.passkeys), (TotpState::None, 1));

    // Her passkey is now her only factor: her address changes with her password and the
    // passkey, not with the password alone.
    let ask = |factor: Option<SecondFactor>| EmailChangeRequest {
        new_email: "ann.new@example.com".to_owned(),
        password: SecretString::from(PASSWORD),
        factor,
        source: "198.51.100.7".to_owned(),
    };
    let err = world.identity.request_email_change(&ctx, ask(None)).await.unwrap_err();
    assert_eq!((code(&err), err.param()), (ErrorCode::MfaCodeInvalid, Some("code")));
    let proof = world.reauthentication(ann, &mut phone).await;
    world
        .identity
        .request_email_change(&ctx, ask(Some(proof)))
        .await
        .expect("the passkey confirms a change of address");

    // A sign-in's challenge takes a passkey only through its own ceremony.
    let challenge = world.challenge("ann@example.com").await;
    let proof = world.reauthentication(ann, &mut phone).await;
    let err = world
        .identity
        .complete_mfa_challenge(&world.host(), &challenge.token, proof, "198.51.100.7", None)
        .await
        .unwrap_err();
    assert_eq!((code(&err), err.param()), (ErrorCode::InvalidField, Some("passkey")));

    let events = world.journal.events();
    let checks: Vec<_> = events
        .iter()
        .filter(|e| e.name == "auth.passkey.reauthenticate")
        .map(|e| (e.outcome, e.code))
        .collect();
    assert_eq!(checks.len(), 9, "every proof that reached its check: {checks:?}");
    assert!(
        checks.iter().filter(|(_, code)| code.is_some()).count() == 3,
        "replayed, another user's, phished: {checks:?}"
    );
}

#[tokio::test]
async fn a_password_sign_in_of_a_passkey_user_is_challenged_and_completed_by_the_passkey() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let mut key = SoftKey::new();
    let id = world.register(ann, &mut key, "Laptop").await;

    // The password alone signs Ann in nowhere: sign-in answers a challenge for a passkey.
    let challenge = world.challenge("ann@example.com").await;
    assert_eq!(challenge.user, ann);
    assert_eq!(
        challenge.factors,
        SecondFactors {
            totp: false,
            passkey: true
        }
    );
    let err = world
        .identity
        .sign_in(
            &world.host(),
            SignIn {
                email: "ann@example.com".to_owned(),
                password: SecretString::from(PASSWORD),
                source: "198.51.100.7".to_owned(),
                previous_session: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::SecondFactorRequired);
    let refused = world
        .identity
        .authenticate(
            &world.host(),
            &Credential::Password {
                email: "ann@example.com".to_owned(),
                password: SecretString::from(PASSWORD),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.failure(), Some(AuthFailure::SecondFactorRequired));
    // She has no TOTP factor: a code answers nothing, and the challenge stays open.
    let err = world
        .identity
        .complete_mfa_challenge(
            &world.host(),
            &challenge.token,
            SecondFactor::Totp(SecretString::from("123456")),
            "198.51.100.7",
            None,
        )
        .await
        .unwrap_err();
    assert_eq!((code(&err), err.param()), (ErrorCode::MfaCodeInvalid, Some("code")));

    // The options allow Ann's passkey only, and ask for user verification.
    let ceremony = world.begin_mfa(&challenge).await.unwrap();
    let allowed = ceremony.options["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1, "{}", ceremony.options);
    assert_eq!(ceremony.options["publicKey"]["userVerification"], "required");
    let credential = key.get(ORIGIN, &ceremony.options).await;
    assert_eq!(
        world.complete_mfa(&challenge, &ceremony, &credential).await.unwrap(),
        ann
    );
    let used = &world.identity.passkeys(&world.as_user(ann)).await.unwrap()[0];
    assert_eq!((used.id, used.last_used_at), (id, Some(world.clock.now())));

    // The challenge is used: neither a new ceremony nor the same answer again.
    let err = world.begin_mfa(&challenge).await.unwrap_err();
    assert_eq!(
        (code(&err), err.param()),
        (ErrorCode::TokenUsed, Some("challenge_token"))
    );
    let err = world
        .complete_mfa(&challenge, &ceremony, &credential)
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::TokenUsed);

    // Her passkey meets an org's MFA policy: she may require one of every member.
    let org = world
        .portal
        .tenancy()
        .create_org(
            &world.as_user(ann),
            portal_core::tenancy::NewOrg {
                slug: "acme".to_owned(),
                name: "Acme".to_owned(),
                ..portal_core::tenancy::NewOrg::default()
            },
        )
        .await
        .unwrap();
    assert!(
        world
            .identity
            .set_mfa_policy(&world.as_user(ann), org.id, true)
            .await
            .unwrap()
    );
    let status = world.identity.mfa_status(&world.as_user(ann)).await.unwrap();
    assert_eq!((status.passkeys, status.recovery_codes_left), (1, 0));

    // With the passkey removed, the password signs her in again, and a challenge begun
    // before has no passkey to ask for.
    let open = world.challenge("ann@example.com").await;
    let proof = world.reauthentication(ann, &mut key).await;
    world
        .identity
        .remove_passkey(
            &world.as_user(ann),
            id,
            SecretString::from(PASSWORD),
            Some(proof),
            "198.51.100.7",
        )
        .await
        .unwrap();
    let err = world.begin_mfa(&open).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::MfaNotEnrolled);
    assert!(matches!(
        world.password_sign_in("ann@example.com", "198.51.100.7").await.unwrap(),
        SignInStep::Session(_)
    ));
}

#[tokio::test]
async fn a_totp_user_with_a_passkey_answers_the_challenge_with_either() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let ctx = world.as_user(ann);
    let enrollment = world.enroll_totp(ann, None).await.unwrap();
    let secret = totp_secret(enrollment.secret.expose_secret());
    world
        .identity
        .confirm_totp(&ctx, &code_at(&secret, world.clock.now()).unwrap())
        .await
        .unwrap();
    let mut key = SoftKey::new();
    world.clock.advance(Duration::seconds(30));
    let fresh = SecondFactor::Totp(code_at(&secret, world.clock.now()).unwrap());
    world.register_with(ann, &mut key, "Laptop", Some(fresh)).await;

    let challenge = world.challenge("ann@example.com").await;
    assert_eq!(
        challenge.factors,
        SecondFactors {
            totp: true,
            passkey: true
        }
    );
    assert_eq!(world.answer_mfa(&challenge, &mut key).await.unwrap(), ann);
    world.clock.advance(Duration::seconds(30));
    let challenge = world.challenge("ann@example.com").await;
    let session = world
        .identity
        .complete_mfa_challenge(
            &world.host(),
            &challenge.token,
            SecondFactor::Totp(code_at(&secret, world.clock.now()).unwrap()),
            "198.51.100.7",
            None,
        )
        .await
        .unwrap();
    assert_eq!(session.session.user, ann);
}

#[tokio::test]
async fn a_passkey_answer_is_bound_to_its_challenge_its_user_and_one_use() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let bob = world.user("bob@example.com").await;
    let mut key = SoftKey::new();
    world.register(ann, &mut key, "Ann's laptop").await;
    let mut bobs_key = SoftKey::new();
    world.register(bob, &mut bobs_key, "Bob's laptop").await;
    let challenge = world.challenge("ann@example.com").await;

    // Bob's passkey answering Ann's challenge (the options emptied of her credentials, so
    // his authenticator offers his own): refused as another user's.
    let ceremony = world.begin_mfa(&challenge).await.unwrap();
    let mut options = ceremony.options.clone();
    options["publicKey"]["allowCredentials"] = Value::Array(Vec::new());
    let credential = bobs_key.get(ORIGIN, &options).await;
    let err = world
        .complete_mfa(&challenge, &ceremony, &credential)
        .await
        .unwrap_err();
    assert_eq!(
        (code(&err), err.param()),
        (ErrorCode::PasskeyRefused, Some("credential"))
    );

    // The ceremony is spent: replayed, even with Ann's own answer, it is refused.
    let fresh = world.begin_mfa(&challenge).await.unwrap();
    let credential = key.get(ORIGIN, &fresh.options).await;
    let err = world
        .complete_mfa(&challenge, &ceremony, &credential)
        .await
        .unwrap_err();
    assert_eq!(
        (code(&err), err.param()),
        (ErrorCode::TokenUsed, Some("ceremony_token"))
    );

    // A ceremony begun for another of Ann's sign-ins, or for Bob's, answers nothing here.
    let other = world.challenge("ann@example.com").await;
    let foreign = world.begin_mfa(&other).await.unwrap();
    let credential = key.get(ORIGIN, &foreign.options).await;
    let err = world.complete_mfa(&challenge, &foreign, &credential).await.unwrap_err();
    assert_eq!(
        (code(&err), err.param()),
        (ErrorCode::TokenInvalid, Some("ceremony_token"))
    );
    let bobs_challenge = world.challenge("bob@example.com").await;
    let bobs_ceremony = world.begin_mfa(&bobs_challenge).await.unwrap();
    let credential = bobs_key.get(ORIGIN, &bobs_ceremony.options).await;
    let err = world
        .complete_mfa(&challenge, &bobs_ceremony, &credential)
        .await
        .unwrap_err();
    assert_eq!(
        (code(&err), err.param()),
        (ErrorCode::TokenInvalid, Some("ceremony_token"))
    );
    // A sign-in ceremony (no account named) is not an MFA ceremony.
    let sign_in = world.begin_sign_in().await;
    let credential = key.get(ORIGIN, &sign_in.options).await;
    let err = world.complete_mfa(&challenge, &sign_in, &credential).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::TokenInvalid);

    // A clone of Ann's authenticator, once the original moved on, is refused.
    let mut clone = key.clone_key();
    assert_eq!(world.sign_in(&mut key).await.unwrap(), ann);
    let err = world.answer_mfa(&challenge, &mut clone).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::PasskeyCounterRegressed);

    // A passkey removed between the ceremony's two steps no longer counts.
    let mut spare = SoftKey::new();
    let proof = world.reauthentication(ann, &mut key).await;
    let spare_id = world.register_with(ann, &mut spare, "Spare", Some(proof)).await;
    let ceremony = world.begin_mfa(&challenge).await.unwrap();
    world.clock.advance(Duration::seconds(30));
    let proof = world.reauthentication(ann, &mut key).await;
    world
        .identity
        .remove_passkey(
            &world.as_user(ann),
            spare_id,
            SecretString::from(PASSWORD),
            Some(proof),
            "198.51.100.9",
        )
        .await
        .unwrap();
    let credential = spare.get(ORIGIN, &ceremony.options).await;
    let err = world
        .complete_mfa(&challenge, &ceremony, &credential)
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::PasskeyRefused);

    // Every refusal left the challenge open: Ann's own passkey completes it, once.
    assert_eq!(world.answer_mfa(&challenge, &mut key).await.unwrap(), ann);
    let err = world.answer_mfa(&challenge, &mut key).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::TokenUsed);
    // Using it retired her other open challenge.
    let err = world.begin_mfa(&other).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::TokenUsed);

    // A late answer: the challenge expires after 5 minutes.
    let late = world.challenge("ann@example.com").await;
    let ceremony = world.begin_mfa(&late).await.unwrap();
    let credential = key.get(ORIGIN, &ceremony.options).await;
    world.clock.advance(Duration::minutes(5));
    let err = world.complete_mfa(&late, &ceremony, &credential).await.unwrap_err();
    assert_eq!(
        (code(&err), err.param()),
        (ErrorCode::TokenExpired, Some("challenge_token"))
    );

    // The refusals were recorded with their reasons; none names a secret.
    let events = world.journal.events();
    let failures: Vec<String> = events
        .iter()
        .filter(|e| e.name == "auth.mfa.challenge")
        .filter_map(|e| e.detail["failure"].as_str().map(str::to_owned))
        .collect();
    for reason in ["other_user", "counter_regressed", "unknown_credential"] {
        assert!(failures.iter().any(|f| f == reason), "{reason} in {failures:?}");
    }
}

#[tokio::test]
async fn refused_passkey_answers_count_under_the_sign_in_throttle() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let bob = world.user("bob@example.com").await;
    let mut key = SoftKey::new();
    world.register(ann, &mut key, "Laptop").await;
    let mut bobs_key = SoftKey::new();
    world.register(bob, &mut bobs_key, "Bob's").await;
    let challenge = world.challenge("ann@example.com").await;
    // Five wrong answers (Bob's passkey) from one source, the default limit for an account
    // from a source: then even Ann's own passkey is refused from there, before its ceremony
    // is taken, and the challenge stays open for another source.
    for _ in 0..5 {
        let ceremony = world.begin_mfa(&challenge).await.unwrap();
        let mut options = ceremony.options.clone();
        options["publicKey"]["allowCredentials"] = Value::Array(Vec::new());
        let credential = bobs_key.get(ORIGIN, &options).await;
        let err = world
            .complete_mfa(&challenge, &ceremony, &credential)
            .await
            .unwrap_err();
        assert_eq!(code(&err), ErrorCode::PasskeyRefused);
    }
    let ceremony = world.begin_mfa(&challenge).await.unwrap();
    let credential = key.get(ORIGIN, &ceremony.options).await;
    let err = world
        .complete_mfa(&challenge, &ceremony, &credential)
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::PasskeyRefused, "the source is locked for Ann");
    let session = world
        .identity
        .complete_mfa_challenge_with_passkey(
            &world.host(),
            &challenge.token,
            &ceremony.token,
            &credential,
            "203.0.113.50",
            None,
        )
        .await
        .expect("another source, the same untaken ceremony");
    assert_eq!(session.session.user, ann);
}

#[tokio::test]
async fn events_name_no_token_challenge_or_credential() {
    let world = World::new().await;
    let ann = world.user("ann@example.com").await;
    let mut key = SoftKey::new();
    let ctx = world.as_user(ann);
    let ceremony = world.begin_registration(ann, None).await.unwrap();
    let challenge = ceremony.options["publicKey"]["challenge"].as_str().unwrap().to_owned();
    let answer = key.create(ORIGIN, &ceremony.options).await;
    let credential_id = answer["id"].as_str().unwrap().to_owned();
    world
        .identity
        .finish_passkey_registration(&ctx, &ceremony.token, "Laptop", &answer)
        .await
        .unwrap();
    world.sign_in(&mut key).await.unwrap();
    let _ = world.sign_in(&mut SoftKey::new_registered_elsewhere().await).await;
    // A password sign-in's challenge, answered with the passkey once wrongly (another
    // passkey) and once rightly.
    let mfa = world.challenge("ann@example.com").await;
    let refused = world.begin_mfa(&mfa).await.unwrap();
    let mut options = refused.options.clone();
    options["publicKey"]["allowCredentials"] = Value::Array(Vec::new());
    let stranger = SoftKey::new_registered_elsewhere().await.get(ORIGIN, &options).await;
    assert!(world.complete_mfa(&mfa, &refused, &stranger).await.is_err());
    let mfa_ceremony = world.begin_mfa(&mfa).await.unwrap();
    let mfa_webauthn_challenge = mfa_ceremony.options["publicKey"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = key.get(ORIGIN, &mfa_ceremony.options).await;
    world.complete_mfa(&mfa, &mfa_ceremony, &answer).await.unwrap();

    let events = world.journal.events();
    let text = format!("{} {events:?}", serde_json::to_string(&events).unwrap());
    for name in [
        "auth.passkey.register_begin",
        "auth.passkey.register",
        "auth.passkey.sign_in",
        "auth.mfa.passkey_begin",
        "auth.mfa.challenge",
    ] {
        assert!(text.contains(name), "{name} recorded");
    }
    for secret in [
        ceremony.token.expose_secret(),
        challenge.as_str(),
        credential_id.as_str(),
        mfa.token.expose_secret(),
        refused.token.expose_secret(),
        mfa_ceremony.token.expose_secret(),
        mfa_webauthn_challenge.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} in the events");
    }
    let shown = format!("{mfa:?} {mfa_ceremony:?}");
    assert!(
        !shown.contains(mfa.token.expose_secret()) && !shown.contains(mfa_ceremony.token.expose_secret()),
        "{shown}"
    );
}

impl SoftKey {
    /// An authenticator with a credential this portal never registered.
    async fn new_registered_elsewhere() -> Self {
        let mut key = SoftKey::new();
        let options = serde_json::json!({
            "publicKey": {
                "rp": { "id": RP_ID, "name": "Elsewhere" },
                "user": { "id": "AAAAAAAAAAAAAAAAAAAAAA", "name": "x@example.com", "displayName": "X" },
                "challenge": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "pubKeyCredParams": [{ "type": "public-key", "alg": -7 }],
                "authenticatorSelection": { "residentKey": "required", "userVerification": "required" },
                "attestation": "none"
            }
        });
        let _ = key.create(ORIGIN, &options).await;
        key
    }
}

fn totp_secret(base32: &str) -> portal_auth::identity::totp::TotpSecret {
    let mut bytes = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in base32.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
        }
    }
    let array: [u8; portal_auth::identity::totp::SECRET_BYTES] = bytes.try_into().unwrap();
    portal_auth::identity::totp::TotpSecret::from_bytes(array)
}

/// `bytes` in base64url without padding, as WebAuthn's JSON carries binary fields.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
