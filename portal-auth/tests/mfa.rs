//! The TOTP second factor of `IdentityService` on SQLite, on a manual clock: a challenge
//! expires after its lifetime and is bound to its user; a source locked by the sign-in
//! throttle gets no code accepted, the right one included; `sign_in` and a password
//! credential never stand in for the factor; and no secret, URI, code, recovery code or
//! challenge reaches the TRACE logs, the events or `Debug`. A change of email needs a
//! fresh factor from an enrolled user, and an address taken between the request and the
//! confirmation changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use mailparse::MailHeaderMap;
use portal_adapters::mail::FolderMailer;
use portal_adapters::observability::{FanOutSink, MemoryJournal, TracingSink};
use portal_adapters::sqlite::{self, SqliteIdentityStore, SqliteTenancyStore};
use portal_auth::identity::totp::{SECRET_BYTES, TotpSecret, code_at};
use portal_auth::identity::{
    EmailChange, EmailChangeRequest, IdentityConfig, IdentityService, IdentityStores, Mfa, PasswordParams,
    SecondFactor, SignIn, SignInStep,
};
use portal_core::access::RoleTableAuthorizer;
use portal_core::context::ServiceName;
use portal_core::gate::Gate;
use portal_core::identity::{AuthError, AuthFailure, Authenticator, Credential};
use portal_core::ids::{SequentialIds, UserId};
use portal_core::tenancy::NewUser;
use portal_core::time::ManualClock;
use portal_core::{Clock, ErrorCode, Portal, Principal, RequestContext};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

/// A `tracing-subscriber` writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

const PASSWORD: &str = "Tr0ub4dor&3 horse staple";

struct World {
    identity: IdentityService,
    portal: Portal,
    clock: Arc<ManualClock>,
    journal: Arc<MemoryJournal>,
    /// Where the development mailer writes change-of-email messages.
    mail: std::path::PathBuf,
}

impl World {
    /// A world whose events go to the journal, and to the tracing sink when `trace` (only
    /// the test that captures tracing output asks for it: tracing caches a call site's
    /// interest, so a call site first hit without a subscriber would stay silent).
    async fn new(config: IdentityConfig, trace: bool) -> Self {
        let pool = sqlite::connect("sqlite::memory:").await.unwrap();
        sqlite::migrate(&pool).await.unwrap();
        // Mid-step, so that a code of the next step is in the window and not yet due.
        let clock = Arc::new(ManualClock::new(
            OffsetDateTime::from_unix_timestamp(1_750_000_005).unwrap(),
        ));
        let ids = Arc::new(SequentialIds::default());
        let tenancy = Arc::new(SqliteTenancyStore::new(pool.clone()));
        let store = Arc::new(SqliteIdentityStore::new(pool));
        let journal = Arc::new(MemoryJournal::default());
        let mut sinks: Vec<Arc<dyn portal_core::diagnostics::DiagnosticSink>> = vec![journal.clone()];
        if trace {
            sinks.push(Arc::new(TracingSink));
        }
        let sink = Arc::new(FanOutSink::new(sinks));
        let authorizer = Arc::new(RoleTableAuthorizer::default());
        let gate = Gate::new(authorizer.clone(), sink.clone(), tenancy.clone()).with_mfa_policy(store.clone());
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
        .with_config(config)
        .with_mfa(Mfa::from_one(store.clone(), "Acme Portal"));
        let mail = std::env::temp_dir().join(format!(
            "portal-mfa-mail-{}-{}",
            std::process::id(),
            MAIL_DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&mail);
        let mailer = Arc::new(FolderMailer::new(&mail, "Portal <no-reply@portal.example>").unwrap());
        let identity = identity.with_email_change(EmailChange::new(
            store,
            mailer,
            "https://portal.example/confirm-email-change",
        ));
        let portal = Portal::builder()
            .tenancy_store(tenancy)
            .authorizer(authorizer)
            .diagnostics(sink)
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

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// A user with a password and a confirmed factor: their id, secret and recovery codes.
    async fn enrolled(&self, email: &str) -> (UserId, TotpSecret, Vec<SecretString>) {
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
        let enrollment = self
            .identity
            .begin_totp_enrollment(
                &self.as_user(user.id),
                SecretString::from(PASSWORD),
                None,
                "198.51.100.1",
            )
            .await
            .unwrap();
        let secret = decode(enrollment.secret.expose_secret());
        let code = code_at(&secret, self.now()).unwrap();
        let codes = self.identity.confirm_totp(&self.as_user(user.id), &code).await.unwrap();
        (user.id, secret, codes)
    }

    async fn challenge(&self, email: &str, source: &str) -> SecretString {
        let step = self
            .identity
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
            .unwrap();
        match step {
            SignInStep::MfaChallenge(challenge) => challenge.token,
            SignInStep::Session(_) => panic!("a user with a factor got a session"),
        }
    }
}

/// Each world's mail folder is its own.
static MAIL_DIRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The `pec_` token of the change message to `to` in `dir`, waiting up to five seconds
/// (the message goes out off the request path).
async fn change_token(dir: &std::path::Path, to: &str) -> SecretString {
    for _ in 0..100 {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let raw = std::fs::read(entry.path()).unwrap();
            let mail = mailparse::parse_mail(&raw).unwrap();
            let addressed = mail
                .headers
                .as_slice()
                .get_first_value("To")
                .is_some_and(|v| v.contains(to));
            for part in mail.parts() {
                let body = part.get_body().unwrap_or_default();
                if let Some(start) = body.find("pec_").filter(|_| addressed) {
                    return SecretString::from(body[start..].chars().take(62).collect::<String>());
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no change token for {to} in {}", dir.display());
}

fn decode(base32: &str) -> TotpSecret {
    let mut bytes = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in base32.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            other => panic!("not base32: {other}"),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
        }
    }
    let array: [u8; SECRET_BYTES] = bytes.try_into().unwrap();
    TotpSecret::from_bytes(array)
}

/// A challenge works for its lifetime (5 minutes) and not a microsecond after; a wrong
/// code leaves it usable; it is used once.
#[tokio::test]
async fn a_challenge_expires_after_five_minutes_and_is_used_once() {
    let world = World::new(IdentityConfig::default(), false).await;
    let (_, secret, _) = world.enrolled("ann@example.com").await;
    let source = "192.0.2.1";

    let stale = world.challenge("ann@example.com", source).await;
    world.clock.advance(Duration::minutes(5));
    let next = code_at(&secret, world.now()).unwrap();
    let err = world
        .identity
        .complete_mfa_challenge(&world.host(), &stale, SecondFactor::Totp(next.clone()), source, None)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.param()),
        (ErrorCode::TokenExpired, Some("challenge_token"))
    );

    let fresh = world.challenge("ann@example.com", source).await;
    let wrong = SecretString::from("000000");
    let err = world
        .identity
        .complete_mfa_challenge(&world.host(), &fresh, SecondFactor::Totp(wrong), source, None)
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.param()), (ErrorCode::MfaCodeInvalid, Some("code")));
    let session = world
        .identity
        .complete_mfa_challenge(&world.host(), &fresh, SecondFactor::Totp(next.clone()), source, None)
        .await
        .unwrap();
    assert!(session.token.expose_secret().starts_with("pss_"));
    let err = world
        .identity
        .complete_mfa_challenge(&world.host(), &fresh, SecondFactor::Totp(next), source, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenUsed);
}

/// A source that failed too often for the account is refused even the right code, as the
/// sign-in throttle refuses even the right password; another source still signs in.
#[tokio::test]
async fn a_throttled_source_gets_no_code_accepted() {
    let world = World::new(
        IdentityConfig {
            max_account_source_failures: 3,
            ..IdentityConfig::default()
        },
        false,
    )
    .await;
    let (_, secret, _) = world.enrolled("ann@example.com").await;
    let attacker = "203.0.113.7";
    let challenge = world.challenge("ann@example.com", attacker).await;
    for _ in 0..3 {
        let err = world
            .identity
            .complete_mfa_challenge(
                &world.host(),
                &challenge,
                SecondFactor::Totp(SecretString::from("999999")),
                attacker,
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::MfaCodeInvalid);
    }
    world.clock.advance(Duration::seconds(30));
    let right = code_at(&secret, world.now()).unwrap();
    let err = world
        .identity
        .complete_mfa_challenge(
            &world.host(),
            &challenge,
            SecondFactor::Totp(right.clone()),
            attacker,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::MfaCodeInvalid,
        "the right code, from a locked source"
    );
    let locked = world
        .journal
        .events()
        .into_iter()
        .filter(|e| e.name == "auth.mfa.challenge")
        .any(|e| e.detail["failure"] == "locked");
    assert!(locked, "the event says the source was locked");

    let owner = "198.51.100.1";
    let theirs = world.challenge("ann@example.com", owner).await;
    world
        .identity
        .complete_mfa_challenge(&world.host(), &theirs, SecondFactor::Totp(right), owner, None)
        .await
        .expect("the owner's own source is not locked by another's failures");
}

/// Neither `sign_in` nor a password credential signs in a user with a factor.
#[tokio::test]
async fn a_password_alone_never_stands_in_for_the_factor() {
    let world = World::new(IdentityConfig::default(), false).await;
    world.enrolled("ann@example.com").await;
    let err = world
        .identity
        .sign_in(
            &world.host(),
            SignIn {
                email: "ann@example.com".to_owned(),
                password: SecretString::from(PASSWORD),
                source: "192.0.2.1".to_owned(),
                previous_session: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SecondFactorRequired);
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
    assert!(
        matches!(
            refused,
            AuthError::InvalidCredentials {
                failure: AuthFailure::SecondFactorRequired
            }
        ),
        "{refused:?}"
    );
}

/// A challenge is its user's: another user's recovery code does not complete it.
#[tokio::test]
async fn a_challenge_is_bound_to_its_user() {
    let world = World::new(IdentityConfig::default(), false).await;
    world.enrolled("ann@example.com").await;
    let (_, _, bobs_codes) = world.enrolled("bob@example.com").await;
    let anns = world.challenge("ann@example.com", "192.0.2.1").await;
    let err = world
        .identity
        .complete_mfa_challenge(
            &world.host(),
            &anns,
            SecondFactor::RecoveryCode(bobs_codes[0].clone()),
            "192.0.2.1",
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.param()),
        (ErrorCode::MfaCodeInvalid, Some("recovery_code"))
    );
}

/// No TOTP secret, otpauth URI, QR code, code, recovery code or challenge token is in the
/// TRACE output, the events or `Debug` of what the flows handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_totp_secret_code_or_challenge_reaches_logs_events_or_debug_output() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(buffer.clone())
        .with_ansi(false)
        .finish();
    let _capture = portal_core::testing::tracing_capture::capture(subscriber);
    let world = World::new(IdentityConfig::default(), true).await;
    let mut secrets: Vec<String> = Vec::new();
    let mut debug = Vec::new();

    let user = world
        .portal
        .tenancy()
        .create_user(
            &world.host(),
            NewUser {
                email: "ann@example.com".to_owned(),
                display_name: "Ann".to_owned(),
            },
        )
        .await
        .unwrap();
    world
        .identity
        .set_password(&world.host(), user.id, SecretString::from(PASSWORD))
        .await
        .unwrap();
    let ctx = world.as_user(user.id);
    let enrollment = world
        .identity
        .begin_totp_enrollment(&ctx, SecretString::from(PASSWORD), None, "198.51.100.1")
        .await
        .unwrap();
    debug.push(format!("{enrollment:?}"));
    secrets.push(enrollment.secret.expose_secret().to_owned());
    secrets.push(enrollment.otpauth_uri.expose_secret().to_owned());
    let secret = decode(enrollment.secret.expose_secret());
    let first = code_at(&secret, world.now()).unwrap();
    let codes = world.identity.confirm_totp(&ctx, &first).await.unwrap();
    debug.push(format!("{codes:?}"));
    secrets.extend(codes.iter().map(|c| c.expose_secret().to_owned()));

    let step = world
        .identity
        .begin_sign_in(
            &world.host(),
            SignIn {
                email: "ann@example.com".to_owned(),
                password: SecretString::from(PASSWORD),
                source: "192.0.2.1".to_owned(),
                previous_session: None,
            },
        )
        .await
        .unwrap();
    debug.push(format!("{step:?}"));
    let SignInStep::MfaChallenge(challenge) = step else {
        panic!("a challenge")
    };
    secrets.push(challenge.token.expose_secret().to_owned());
    world.clock.advance(Duration::seconds(30));
    let second = code_at(&secret, world.now()).unwrap();
    let factor = SecondFactor::Totp(second.clone());
    debug.push(format!("{factor:?}"));
    let session = world
        .identity
        .complete_mfa_challenge(&world.host(), &challenge.token, factor, "192.0.2.1", None)
        .await
        .unwrap();
    secrets.push(session.token.expose_secret().to_owned());
    let again = world
        .identity
        .regenerate_recovery_codes(&ctx, SecondFactor::RecoveryCode(codes[0].clone()), "192.0.2.1")
        .await
        .unwrap();
    secrets.extend(again.iter().map(|c| c.expose_secret().to_owned()));
    debug.push(format!("{:?}", world.identity.mfa_status(&ctx).await.unwrap()));
    world
        .identity
        .remove_totp(
            &ctx,
            SecretString::from(PASSWORD),
            SecondFactor::RecoveryCode(again[0].clone()),
            "192.0.2.1",
        )
        .await
        .unwrap();
    debug.push(format!("{:?}", world.identity));

    let events = world.journal.events();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_ref()).collect();
    for name in [
        "auth.mfa.enroll_begin",
        "auth.mfa.enroll",
        "auth.mfa.challenge",
        "auth.mfa.recovery_code.use",
        "auth.mfa.recovery_codes.regenerate",
        "auth.mfa.remove",
    ] {
        assert!(names.contains(&name), "{name} recorded: {names:?}");
    }
    let mut texts = vec![String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()];
    assert!(
        texts[0].contains("auth.mfa.enroll"),
        "the tracing sink's output was captured"
    );
    texts.push(serde_json::to_string(&events).unwrap());
    texts.push(format!("{events:?}"));
    texts.extend(debug);
    // The six-digit codes are too short to search for in logs full of digits; the
    // secret they come from is searched instead.
    for secret in &secrets {
        assert!(secret.len() >= 16, "a secret long enough to find");
        for (i, text) in texts.iter().enumerate() {
            assert!(!text.contains(secret.as_str()), "text {i} leaks a secret");
        }
    }
    for code in [&first, &second] {
        assert!(
            !texts[2..].iter().any(|t| t.contains(code.expose_secret())),
            "a code in Debug"
        );
    }
}

/// A user with a confirmed factor changes their address only with a fresh code (none, or
/// a wrong one, is `auth.mfa_code_invalid`); the mailed link switches the address, and an
/// address another account took between a request and its confirmation is
/// `user.email_taken` with nothing changed.
#[tokio::test]
async fn an_email_change_needs_a_fresh_factor_and_refuses_an_address_taken_since() {
    let world = World::new(IdentityConfig::default(), false).await;
    let (user, secret, _) = world.enrolled("ann@example.com").await;
    let source = "192.0.2.1";
    let ask = |to: &str, factor: Option<SecondFactor>| EmailChangeRequest {
        new_email: to.to_owned(),
        password: SecretString::from(PASSWORD),
        factor,
        source: source.to_owned(),
    };
    let ctx = world.as_user(user);
    let err = world
        .identity
        .request_email_change(&ctx, ask("ann.new@example.com", None))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.param()), (ErrorCode::MfaCodeInvalid, Some("code")));
    let wrong = SecondFactor::Totp(SecretString::from("000000"));
    let err = world
        .identity
        .request_email_change(&ctx, ask("ann.new@example.com", Some(wrong)))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.param()), (ErrorCode::MfaCodeInvalid, Some("code")));

    // The enrollment used this step's code: the next step's is fresh.
    world.clock.advance(Duration::seconds(30));
    let ctx = world.as_user(user); // a request's context carries its time
    let code = SecondFactor::Totp(code_at(&secret, world.now()).unwrap());
    world
        .identity
        .request_email_change(&ctx, ask("ann.new@example.com", Some(code)))
        .await
        .unwrap();
    let token = change_token(&world.mail, "ann.new@example.com").await;
    let status = world.identity.confirm_email_change(&ctx, token.clone()).await.unwrap();
    assert_eq!(status.email.as_str(), "ann.new@example.com");
    assert_eq!(status.verified_at, Some(world.now()));
    let err = world.identity.confirm_email_change(&ctx, token).await.unwrap_err();
    assert_eq!((err.code(), err.param()), (ErrorCode::TokenUsed, Some("token")));

    world.clock.advance(Duration::seconds(30));
    let ctx = world.as_user(user); // a request's context carries its time
    let code = SecondFactor::Totp(code_at(&secret, world.now()).unwrap());
    world
        .identity
        .request_email_change(&ctx, ask("ann.third@example.com", Some(code)))
        .await
        .unwrap();
    let token = change_token(&world.mail, "ann.third@example.com").await;
    world
        .portal
        .tenancy()
        .create_user(
            &world.host(),
            NewUser {
                email: "ann.third@example.com".to_owned(),
                display_name: "Another Ann".to_owned(),
            },
        )
        .await
        .unwrap();
    let err = world.identity.confirm_email_change(&ctx, token).await.unwrap_err();
    assert_eq!((err.code(), err.param()), (ErrorCode::UserEmailTaken, Some("email")));
    // Nothing changed: the password still signs in under the address of the first change.
    world.challenge("ann.new@example.com", source).await;
    let _ = std::fs::remove_dir_all(&world.mail);
}
