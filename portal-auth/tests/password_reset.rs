//! Password reset by mail, end to end on the in-memory stores with mail exchanged with a
//! real SMTP server (`aiosmtpd`, started by the test; skipped without
//! `PORTAL_TEST_AIOSMTPD_PYTHON`): the link read from the received message sets a new
//! password once and ends every session; an unknown address gets the same answer; reused,
//! retired, tampered and expired tokens are refused with one code each; no token reaches
//! an event or `Debug`. Email verification, mailed the same way: its link verifies the
//! user's address once, for 24 hours, and only while the address is still theirs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert")]

#[path = "../../portal-adapters/tests/smtp_sink/mod.rs"]
mod smtp_sink;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use portal_adapters::mail::{SmtpConfig, SmtpMailer, SmtpSecurity};
use portal_adapters::memory::{InMemoryIdentityStore, InMemoryTenancyStore};
use portal_adapters::observability::MemoryJournal;
use portal_auth::identity::{
    EmailVerification, IdentityService, IdentityStores, PasswordParams, PasswordReset, SignIn,
};
use portal_core::access::RoleTableAuthorizer;
use portal_core::context::ServiceName;
use portal_core::gate::Gate;
use portal_core::identity::Credential;
use portal_core::ids::{SequentialIds, UserId};
use portal_core::mail::Mailer;
use portal_core::tenancy::NewUser;
use portal_core::time::ManualClock;
use portal_core::{ErrorCode, Portal, Principal, RequestContext};
use secrecy::SecretString;
use smtp_sink::{SmtpSink, link_in};
use time::{Duration, OffsetDateTime};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new passphrase";

struct World {
    portal: Portal,
    identity: IdentityService,
    journal: Arc<MemoryJournal>,
    clock: Arc<ManualClock>,
    sink: SmtpSink,
    seen: std::sync::Mutex<Vec<String>>,
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

async fn world() -> Option<World> {
    let sink = SmtpSink::start()?;
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
    ));
    let ids = Arc::new(SequentialIds::default());
    let tenancy = Arc::new(InMemoryTenancyStore::default());
    let journal = Arc::new(MemoryJournal::default());
    let authorizer = Arc::new(RoleTableAuthorizer::default());
    let store = Arc::new(InMemoryIdentityStore::new());
    let mailer: Arc<dyn Mailer> = Arc::new(
        SmtpMailer::new(SmtpConfig {
            host: "127.0.0.1".to_owned(),
            port: sink.port,
            security: SmtpSecurity::None,
            credentials: None,
            from: "Portal <no-reply@portal.example>".to_owned(),
            timeout: StdDuration::from_secs(10),
        })
        .unwrap(),
    );
    let identity = IdentityService::new(
        IdentityStores::from_one(store.clone()),
        tenancy.clone(),
        Gate::new(authorizer.clone(), journal.clone(), tenancy.clone()),
        ids.clone(),
    )
    .with_password_params(PasswordParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap()
    .with_password_reset(PasswordReset::new(
        store.clone(),
        mailer.clone(),
        "https://portal.example/reset-password",
    ))
    .with_email_verification(EmailVerification::new(
        store,
        mailer,
        "https://portal.example/verify-email",
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
    Some(World {
        portal,
        identity,
        journal,
        clock,
        sink,
        seen: std::sync::Mutex::default(),
    })
}

impl World {
    fn host(&self) -> RequestContext {
        self.portal
            .context(Principal::Service(ServiceName::new("web").unwrap()))
            .build()
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

    fn as_user(&self, user: UserId) -> RequestContext {
        self.portal.context(Principal::User(user)).build()
    }

    /// Asks a verification link for `user` (address `email`), waits until `count`
    /// messages have arrived in all, and returns the token of the newest link to `email`.
    async fn verify_token(&self, user: UserId, email: &str, count: usize) -> String {
        self.identity
            .request_email_verification(&self.as_user(user))
            .await
            .unwrap();
        let received = self.sink.wait_for(count).await;
        let mut seen = self.seen.lock().unwrap();
        let mail = received
            .iter()
            .find(|mail| link_in(&mail.text, "token=").is_some_and(|link| !seen.contains(&link)))
            .unwrap_or_else(|| panic!("a message with a new link among {received:?}"));
        assert_eq!(mail.to, email);
        let link = link_in(&mail.text, "token=").unwrap();
        assert!(
            link.starts_with("https://portal.example/verify-email?token=pev_"),
            "{link}"
        );
        seen.push(link.clone());
        link.split_once("token=").unwrap().1.to_owned()
    }

    async fn sign_in(&self, email: &str, password: &str) -> Result<SecretString, portal_core::PortalError> {
        self.identity
            .sign_in(
                &self.host(),
                SignIn {
                    email: email.to_owned(),
                    password: secret(password),
                    source: "198.51.100.7".to_owned(),
                    previous_session: None,
                },
            )
            .await
            .map(|s| s.token)
    }

    /// Requests a reset for `email`, waits until `count` messages have arrived in all, and
    /// returns the token of the one link among them not returned before.
    async fn reset_token(&self, email: &str, count: usize) -> String {
        self.identity.request_password_reset(&self.host(), email).await.unwrap();
        let received = self.sink.wait_for(count).await;
        let mut seen = self.seen.lock().unwrap();
        let mail = received
            .iter()
            .find(|mail| link_in(&mail.text, "token=").is_some_and(|link| !seen.contains(&link)))
            .unwrap_or_else(|| panic!("a message with a new link among {received:?}"));
        assert_eq!(mail.to, email);
        let link = link_in(&mail.text, "token=").unwrap();
        assert!(
            link.starts_with("https://portal.example/reset-password?token=prt_"),
            "{link}"
        );
        assert!(mail.html.contains(&link), "the HTML body has the same link");
        seen.push(link.clone());
        link.split_once("token=").unwrap().1.to_owned()
    }

    async fn reset(&self, token: &str, password: &str) -> Result<(), portal_core::PortalError> {
        self.identity
            .reset_password(&self.host(), secret(token), secret(password))
            .await
    }
}

#[tokio::test]
async fn the_mailed_link_sets_a_new_password_once_and_ends_every_session() {
    let Some(w) = world().await else { return };
    w.user("ann@example.com").await;
    let session = w.sign_in("ann@example.com", PASSWORD).await.unwrap();

    let token = w.reset_token("ann@example.com", 1).await;
    w.reset(&token, NEW_PASSWORD).await.unwrap();

    let err = w
        .portal
        .authenticate(&w.host(), &Credential::Session(session))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidCredentials, "the old session ended");
    w.sign_in("ann@example.com", PASSWORD)
        .await
        .expect_err("the old password is gone");
    w.sign_in("ann@example.com", NEW_PASSWORD).await.unwrap();

    let err = w.reset(&token, "yet another passphrase").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenUsed);
    let notice = &w.sink.wait_for(2).await[1];
    assert_eq!(notice.to, "ann@example.com");
    assert!(notice.subject.contains("was changed"), "{}", notice.subject);
}

#[tokio::test]
async fn an_unknown_address_gets_the_same_answer_and_a_note_without_a_link() {
    let Some(w) = world().await else { return };
    w.user("ann@example.com").await;
    w.identity
        .request_password_reset(&w.host(), "nobody@example.com")
        .await
        .expect("the same answer as for an account");
    let mail = &w.sink.wait_for(1).await[0];
    assert_eq!(mail.to, "nobody@example.com");
    assert!(link_in(&mail.text, "token=").is_none(), "{}", mail.text);
    assert!(mail.text.contains("has no account"), "{}", mail.text);
    let err = w
        .identity
        .request_password_reset(&w.host(), "not an address")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidField);
}

#[tokio::test]
async fn retired_tampered_expired_and_weak_resets_are_refused_with_their_codes() {
    let Some(w) = world().await else { return };
    w.user("ann@example.com").await;
    let first = w.reset_token("ann@example.com", 1).await;
    let second = w.reset_token("ann@example.com", 2).await;

    // A password the policy refuses does not burn the link.
    let err = w.reset(&second, "short").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidField);

    let mut tampered = second.clone().into_bytes();
    let last = tampered.len() - 10;
    tampered[last] = if tampered[last] == b'a' { b'b' } else { b'a' };
    let err = w
        .reset(&String::from_utf8(tampered).unwrap(), NEW_PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);
    assert_eq!(err.param(), Some("token"));
    let err = w.reset("prt_not-a-token", NEW_PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenInvalid);

    w.reset(&second, NEW_PASSWORD).await.unwrap();
    let err = w.reset(&first, "yet another passphrase").await.unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::TokenUsed,
        "using the newer link retired the older one"
    );

    let third = w.reset_token("ann@example.com", 4).await;
    w.clock.advance(Duration::minutes(30));
    let err = w.reset(&third, "yet another passphrase").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenExpired, "a link works for 30 minutes");
    w.sign_in("ann@example.com", NEW_PASSWORD).await.unwrap();

    // No token reaches an event.
    let events = format!("{:?}", w.journal.events());
    for token in [&first, &second, &third] {
        assert!(!events.contains(token.as_str()), "a token reached an event");
    }
    assert!(!format!("{:?}", w.identity).contains("prt_"));
}

/// A verification link works for 24 hours, once, for its user: past a day it is
/// `auth.token_expired`; a newer one verifies the address and retires the others
/// (`auth.token_used` from then on); no token reaches an event.
#[tokio::test]
async fn a_verification_link_works_once_for_a_day() {
    let Some(w) = world().await else { return };
    let ann = w.user("ann@example.com").await;
    let status = w.identity.email_status(&w.as_user(ann)).await.unwrap();
    assert_eq!(status.verified_at, None, "not verified yet");

    let old = w.verify_token(ann, "ann@example.com", 1).await;
    let fresh = w.verify_token(ann, "ann@example.com", 2).await;
    w.clock.advance(Duration::hours(24));
    let err = w
        .identity
        .verify_email(&w.as_user(ann), secret(&old))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.param()), (ErrorCode::TokenExpired, Some("token")));

    let newest = w.verify_token(ann, "ann@example.com", 3).await;
    let verified = w.identity.verify_email(&w.as_user(ann), secret(&newest)).await.unwrap();
    assert_eq!(verified.email.as_str(), "ann@example.com");
    let status = w.identity.email_status(&w.as_user(ann)).await.unwrap();
    assert_eq!(status.verified_at, Some(verified.verified_at));
    let err = w
        .identity
        .verify_email(&w.as_user(ann), secret(&fresh))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::TokenUsed,
        "the older link was retired when the newest was used"
    );

    let err = w.identity.verify_email(&w.host(), secret(&newest)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::AccessDenied, "only a signed-in user verifies");
    let events = format!("{:?}", w.journal.events());
    for token in [&old, &fresh, &newest] {
        assert!(!events.contains(token.as_str()), "a token reached an event");
    }
    assert!(
        w.journal.events().iter().any(|e| e.name == "auth.email.verify"),
        "verification is recorded"
    );
}
