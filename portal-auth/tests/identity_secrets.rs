//! No secret leaks: every identity flow runs on SQLite with all tracing output captured
//! at TRACE level (the library's own events, the diagnostics' tracing sink, sqlx's
//! statement logs), and neither that output, the recorded diagnostic events, nor the
//! `Debug` form of any value involved contains a password, a session token, an API key, a
//! password-reset token or an email-verification token (those two read back from the
//! development mailer's files, the only place they may be), nor the customer audit log's
//! events of the user's org (sign-ins, password changes and resets are written there).
//! Also: the session store failing half-way is `storage.unavailable`, with nothing
//! half-applied.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use portal_adapters::mail::FolderMailer;
use portal_adapters::memory::{InMemoryIdentityStore, InMemoryTenancyStore};
use portal_adapters::observability::{FanOutSink, MemoryJournal, TracingSink};
use portal_adapters::sqlite::{self, SqliteIdentityStore, SqliteTenancyStore};
use portal_auth::identity::{
    EmailChange, EmailChangeRequest, EmailVerification, IdentityService, IdentityStores, NewApiKey, PasswordParams,
    PasswordReset, SignIn,
};
use portal_core::access::RoleTableAuthorizer;
use portal_core::context::ServiceName;
use portal_core::diagnostics::EventKind;
use portal_core::gate::Gate;
use portal_core::identity::{Credential, MockSessionStore};
use portal_core::ids::SequentialIds;
use portal_core::store::{PageRequest, StoreError};
use portal_core::tenancy::{NewOrg, NewUser};
use portal_core::time::ManualClock;
use portal_core::{ErrorCode, Portal, Principal, RequestContext};
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

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn light() -> PasswordParams {
    PasswordParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_token_or_key_reaches_logs_events_or_debug_output() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(buffer.clone())
        .with_ansi(false)
        .finish();
    let _capture = portal_core::testing::tracing_capture::capture(subscriber);
    // The blocking hashing threads and sqlx's workers log through the global dispatcher
    // if they log at all; the default one covers this task, which is where events are made.

    let pool = sqlite::connect("sqlite::memory:").await.unwrap();
    sqlite::migrate(&pool).await.unwrap();
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
    ));
    let ids = Arc::new(SequentialIds::default());
    let tenancy = Arc::new(SqliteTenancyStore::new(pool.clone()));
    let journal = Arc::new(MemoryJournal::default());
    let sink = Arc::new(FanOutSink::new(vec![journal.clone(), Arc::new(TracingSink)]));
    let authorizer = Arc::new(RoleTableAuthorizer::default());
    let audit_log = sqlite::SqliteAuditLog::new(pool.clone());
    let store = Arc::new(SqliteIdentityStore::new(pool));
    let mail_dir = std::env::temp_dir().join(format!("portal-secrets-mail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&mail_dir);
    let mailer = Arc::new(FolderMailer::new(&mail_dir, "Portal <no-reply@portal.example>").unwrap());
    let identity = IdentityService::new(
        IdentityStores::from_one(store.clone()),
        tenancy.clone(),
        Gate::new(authorizer.clone(), sink.clone(), tenancy.clone()),
        ids.clone(),
    )
    .with_password_params(light())
    .unwrap()
    .with_password_reset(PasswordReset::new(
        store.clone(),
        mailer.clone(),
        "https://portal.example/reset-password",
    ))
    .with_email_verification(EmailVerification::new(
        store.clone(),
        mailer.clone(),
        "https://portal.example/verify-email",
    ))
    .with_email_change(EmailChange::new(
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
    let host = || -> RequestContext {
        portal
            .context(Principal::Service(ServiceName::new("web").unwrap()))
            .build()
    };

    let password = "Tr0ub4dor&3 horse staple";
    let new_password = "another quite long secret";
    let mut secrets: Vec<String> = vec![
        password.to_owned(),
        new_password.to_owned(),
        "wrong-password-guess".to_owned(),
    ];
    let mut debug = Vec::new();

    let ann = portal
        .tenancy()
        .create_user(
            &host(),
            NewUser {
                email: "ann@example.com".to_owned(),
                display_name: "Ann".to_owned(),
            },
        )
        .await
        .unwrap();
    let org = portal
        .tenancy()
        .create_org(
            &host(),
            NewOrg {
                slug: "acme".to_owned(),
                name: "Acme".to_owned(),
                owner: Some(ann.id),
                ..NewOrg::default()
            },
        )
        .await
        .unwrap()
        .id;
    identity.set_password(&host(), ann.id, secret(password)).await.unwrap();

    // Sign in: a failure, then a success.
    let wrong = SignIn {
        email: "ann@example.com".to_owned(),
        password: secret("wrong-password-guess"),
        source: "192.0.2.1".to_owned(),
        previous_session: None,
    };
    debug.push(format!("{wrong:?}"));
    identity.sign_in(&host(), wrong).await.unwrap_err();
    let signed = identity
        .sign_in(
            &host(),
            SignIn {
                email: "ann@example.com".to_owned(),
                password: secret(password),
                source: "192.0.2.1".to_owned(),
                previous_session: None,
            },
        )
        .await
        .unwrap();
    secrets.push(signed.token.expose_secret().to_owned());
    debug.push(format!("{signed:?}"));

    // Every credential kind, accepted and refused.
    let credentials = [
        Credential::Session(signed.token.clone()),
        Credential::Session(secret("pss_garbage")),
        Credential::Password {
            email: "ann@example.com".to_owned(),
            password: secret(password),
        },
        Credential::Bearer(secret("eyJhbGciOiJub25lIn0.e30.")),
    ];
    for credential in &credentials {
        debug.push(format!("{credential:?}"));
        let result = portal.authenticate(&host(), credential).await;
        debug.push(format!("{result:?}"));
    }

    // Keys: create, use, refuse, revoke.
    let owner_ctx = portal.context(Principal::User(ann.id)).build();
    let created = identity
        .create_api_key(
            &owner_ctx,
            org,
            NewApiKey {
                name: "ci".to_owned(),
                scopes: vec!["members read".parse().unwrap()],
                expires_at: Some(clock_now(&clock) + Duration::days(1)),
            },
        )
        .await
        .unwrap();
    secrets.push(created.key.expose_secret().to_owned());
    debug.push(format!("{created:?}"));
    let auth = portal
        .authenticate(&host(), &Credential::ApiKey(created.key.clone()))
        .await
        .unwrap();
    debug.push(format!("{auth:?}"));
    let key_ctx = portal.context_for(&auth).build();
    debug.push(format!("{key_ctx:?}"));
    portal.tenancy().get_org(&key_ctx, org).await.unwrap_err();
    debug.push(format!(
        "{:?}",
        identity
            .list_api_keys(&owner_ctx, org, &PageRequest::default())
            .await
            .unwrap()
    ));
    identity
        .revoke_api_key(&owner_ctx, org, created.record.id)
        .await
        .unwrap();
    portal
        .authenticate(&host(), &Credential::ApiKey(created.key.clone()))
        .await
        .unwrap_err();

    // Sessions: switch org (rotation), list, change the password, sign out.
    let switched = identity.switch_org(&host(), &signed.token, org).await.unwrap();
    secrets.push(switched.token.expose_secret().to_owned());
    debug.push(format!(
        "{:?}",
        identity
            .list_sessions(&owner_ctx, &PageRequest::default())
            .await
            .unwrap()
    ));
    let changed = identity
        .change_password(
            &owner_ctx,
            secret(password),
            secret(new_password),
            "198.51.100.9",
            Some(org),
        )
        .await
        .unwrap();
    secrets.push(changed.token.expose_secret().to_owned());
    identity.sign_out(&host(), &changed.token).await.unwrap();

    // Mailed tokens: verify the address, reset the password.
    identity.request_email_verification(&owner_ctx).await.unwrap();
    let verify = mailed_token(&mail_dir, "pev_").await;
    secrets.push(verify.clone());
    let verified = identity.verify_email(&owner_ctx, secret(&verify)).await.unwrap();
    debug.push(format!("{verified:?}"));
    let reused = identity.verify_email(&owner_ctx, secret(&verify)).await.unwrap_err();
    debug.push(format!("{reused:?}"));
    identity
        .request_password_reset(&host(), "ann@example.com")
        .await
        .unwrap();
    let reset = mailed_token(&mail_dir, "prt_").await;
    secrets.push(reset.clone());
    let third_password = "a third long secret phrase";
    secrets.push(third_password.to_owned());
    identity
        .reset_password(&host(), secret(&reset), secret(third_password))
        .await
        .unwrap();
    let reused = identity
        .reset_password(&host(), secret(&reset), secret(third_password))
        .await
        .unwrap_err();
    debug.push(format!("{reused:?}"));

    // A change of email: the link mailed to the new address, used once.
    let request = EmailChangeRequest {
        new_email: "ann.new@example.com".to_owned(),
        password: secret(third_password),
        factor: None,
        source: "198.51.100.9".to_owned(),
    };
    debug.push(format!("{request:?}"));
    identity.request_email_change(&owner_ctx, request).await.unwrap();
    let change = mailed_token(&mail_dir, "pec_").await;
    secrets.push(change.clone());
    let changed = identity
        .confirm_email_change(&owner_ctx, secret(&change))
        .await
        .unwrap();
    debug.push(format!("{changed:?}"));
    let reused = identity
        .confirm_email_change(&owner_ctx, secret(&change))
        .await
        .unwrap_err();
    debug.push(format!("{reused:?}"));
    debug.push(format!("{identity:?}"));
    debug.push(format!("{portal:?}"));

    let events = journal.events();
    assert!(
        events.iter().filter(|e| e.kind == EventKind::Authentication).count() >= 15,
        "the flows recorded their events"
    );
    let mut texts = vec![String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()];
    assert!(
        texts[0].contains("auth.sign_in"),
        "the tracing sink's output was captured"
    );
    texts.push(serde_json::to_string(&events).unwrap());
    texts.push(format!("{events:?}"));
    let audited =
        portal_core::audit::AuditLog::list(&audit_log, org, &portal_core::audit::AuditQuery::default(), None, 100)
            .await
            .unwrap();
    let actions: Vec<&str> = audited.iter().map(|e| e.action.as_str()).collect();
    for action in ["user.signed_in", "user.password_changed", "user.password_reset"] {
        assert!(actions.contains(&action), "{action} is in the org's log: {actions:?}");
    }
    texts.push(serde_json::to_string(&audited).unwrap());
    texts.push(format!("{audited:?}"));
    texts.extend(debug);
    for secret in &secrets {
        assert!(secret.len() >= 20, "a secret long enough to find");
        for (i, text) in texts.iter().enumerate() {
            assert!(!text.contains(secret.as_str()), "text {i} leaks a secret");
            // The body of a token or key without its public prefix must not appear either.
            if secret.len() >= 60 {
                assert!(!text.contains(&secret[17..]), "text {i} leaks part of a token or key");
            }
        }
    }
}

/// The token starting with `prefix` in a message the development mailer wrote to `dir`,
/// read from the bodies as a mail client decodes them; waits up to five seconds for it (a
/// reset link is mailed off the request path).
async fn mailed_token(dir: &std::path::Path, prefix: &str) -> String {
    fn bodies(part: &mailparse::ParsedMail<'_>, out: &mut String) {
        if part.subparts.is_empty() {
            out.push_str(&part.get_body().unwrap_or_default());
        }
        for sub in &part.subparts {
            bodies(sub, out);
        }
    }
    for _ in 0..100 {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let raw = std::fs::read(entry.path()).unwrap();
            let mut text = String::new();
            bodies(&mailparse::parse_mail(&raw).unwrap(), &mut text);
            if let Some(start) = text.find(prefix) {
                let token: String = text[start..].chars().take(62).collect();
                return token;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no message with a `{prefix}` token in {}", dir.display());
}

fn clock_now(clock: &ManualClock) -> OffsetDateTime {
    use portal_core::Clock;
    clock.now()
}

/// A session store that fails where the test says, on top of the in-memory one.
fn failing_sessions(fail_on: &'static str) -> MockSessionStore {
    let real = Arc::new(InMemoryIdentityStore::new());
    let unavailable = || StoreError::Unavailable {
        backend: "mock",
        source: "connection reset by peer".into(),
    };
    let mut mock = MockSessionStore::new();
    let r = real.clone();
    mock.expect_create().returning(move |s, event| {
        if fail_on == "create" {
            return Err(unavailable());
        }
        futures_lite_block(portal_core::identity::SessionStore::create(&*r, s, event))
    });
    mock.expect_revoke_all().returning(move |_, _, _| Err(unavailable()));
    mock.expect_find_by_token().returning(|_| Ok(None));
    mock
}

/// Runs a ready future of the in-memory store (it never waits) to completion.
fn futures_lite_block<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

#[tokio::test]
async fn a_failing_session_store_is_storage_unavailable_with_nothing_half_applied() {
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
    ));
    let ids = Arc::new(SequentialIds::default());
    let tenancy = Arc::new(InMemoryTenancyStore::default());
    let journal = Arc::new(MemoryJournal::default());
    let others = Arc::new(InMemoryIdentityStore::new());
    let stores = IdentityStores {
        sessions: Arc::new(failing_sessions("create")),
        ..IdentityStores::from_one(others.clone())
    };
    let identity = IdentityService::new(
        stores,
        tenancy.clone(),
        Gate::new(
            Arc::new(RoleTableAuthorizer::default()),
            journal.clone(),
            tenancy.clone(),
        ),
        ids.clone(),
    )
    .with_password_params(light())
    .unwrap();
    let portal = Portal::builder()
        .tenancy_store(tenancy)
        .diagnostics(journal.clone())
        .clock(clock)
        .ids(ids)
        .authenticator(Arc::new(identity.clone()))
        .build()
        .unwrap();
    let host = portal
        .context(Principal::Service(ServiceName::new("web").unwrap()))
        .build();
    let ann = portal
        .tenancy()
        .create_user(
            &host,
            NewUser {
                email: "ann@example.com".to_owned(),
                display_name: "Ann".to_owned(),
            },
        )
        .await
        .unwrap();
    // Setting a password revokes sessions first: the store fails, nothing is stored.
    let err = identity
        .set_password(&host, ann.id, secret("first long password"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    assert!(err.code().is_retryable());
    let email = portal_core::tenancy::Email::new("ann@example.com").unwrap();
    assert!(
        portal_core::identity::CredentialStore::find_password(&*others, &email)
            .await
            .unwrap()
            .is_none(),
        "no password was stored"
    );
    let fault = journal
        .events()
        .into_iter()
        .find(|e| e.kind == EventKind::StorageFault)
        .expect("a storage fault event");
    assert_eq!(fault.detail["operation"], "auth.password.set");

    // With a password in place (written directly), a sign-in whose session cannot be
    // stored fails as storage.unavailable and leaves no session and no failure count.
    let hasher = portal_auth::identity::PasswordHasher::new(light()).unwrap();
    portal_core::identity::CredentialStore::set_password(
        &*others,
        &portal_core::identity::PasswordRecord {
            user: ann.id,
            email: email.clone(),
            hash: hasher.hash(&secret("first long password")).unwrap(),
            updated_at: OffsetDateTime::UNIX_EPOCH,
        },
        None,
    )
    .await
    .unwrap();
    let err = identity
        .sign_in(
            &host,
            SignIn {
                email: "ann@example.com".to_owned(),
                password: secret("first long password"),
                source: "192.0.2.1".to_owned(),
                previous_session: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    let failures = portal_core::identity::LoginAttemptStore::failures_since(
        &*others,
        &portal_core::identity::ThrottleKey::Account(email.clone()),
        OffsetDateTime::UNIX_EPOCH,
    )
    .await
    .unwrap();
    assert_eq!(failures, 0, "a storage failure is not a failed sign-in");
    let event = journal
        .events()
        .into_iter()
        .rev()
        .find(|e| e.name == "auth.sign_in")
        .unwrap();
    assert_eq!(event.code, Some(ErrorCode::StorageUnavailable));

    // A password change whose sessions cannot be revoked leaves the old password working.
    let user_ctx = portal.context(Principal::User(ann.id)).build();
    let err = identity
        .change_password(
            &user_ctx,
            secret("first long password"),
            secret("second long password"),
            "198.51.100.9",
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    let ok = portal
        .authenticate(
            &host,
            &Credential::Password {
                email: "ann@example.com".to_owned(),
                password: secret("first long password"),
            },
        )
        .await;
    assert!(ok.is_ok(), "the old password still works: {ok:?}");
}
