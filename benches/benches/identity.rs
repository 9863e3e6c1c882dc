//! Identity: verifying a session token and an API key, and a password with the default
//! argon2id parameters.
//!
//! Run with `cargo bench -p portal-benches --bench identity -- --noplot`.
//!
//! - **session / api key, service**: `IdentityService::authenticate` (the `Authenticator`
//!   port) on the in-memory identity and tenancy stores, a diagnostics sink that drops
//!   events, and a clock that stands still, so no use is written back: parse and check
//!   the token's format, SHA-256 it, look the hash up, compare in constant time, check
//!   revocation and expiry, check the session's active org against the membership, build
//!   and record the `auth.session` / `auth.api_key.use` event. Storage is the in-memory
//!   store (a mutex and a hash map), so the figure excludes any database.
//! - **session / api key, hash + compare**: the pure part: parse and check the format,
//!   SHA-256, constant-time comparison with a stored hash.
//! - **password verify**: `PasswordHasher::verify` with the default parameters
//!   (m = 19456 KiB, t = 2, p = 1), on the calling thread.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark program fails loudly"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use portal_adapters::memory::{InMemoryIdentityStore, InMemoryTenancyStore};
use portal_auth::identity::token::{ApiKeyToken, SessionToken};
use portal_auth::identity::{IdentityService, IdentityStores, NewApiKey, PasswordHasher, SignIn};
use portal_core::access::RoleTableAuthorizer;
use portal_core::context::ServiceName;
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink};
use portal_core::gate::Gate;
use portal_core::identity::{Authenticator, Credential};
use portal_core::ids::SequentialIds;
use portal_core::tenancy::{NewOrg, NewUser};
use portal_core::time::ManualClock;
use portal_core::{Portal, Principal};
use secrecy::SecretString;
use time::{Duration, OffsetDateTime};

struct Drop;

impl DiagnosticSink for Drop {
    fn record(&self, event: DiagnosticEvent) {
        black_box(event);
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
    ));
    let ids = Arc::new(SequentialIds::default());
    let tenancy = Arc::new(InMemoryTenancyStore::default());
    let sink = Arc::new(Drop);
    let authorizer = Arc::new(RoleTableAuthorizer::default());
    let identity = IdentityService::new(
        IdentityStores::from_one(Arc::new(InMemoryIdentityStore::new())),
        tenancy.clone(),
        Gate::new(authorizer.clone(), sink.clone(), tenancy.clone()),
        ids.clone(),
    );
    let portal = Portal::builder()
        .tenancy_store(tenancy)
        .authorizer(authorizer)
        .diagnostics(sink)
        .clock(clock.clone())
        .ids(ids)
        .build()
        .unwrap();
    let host = portal
        .context(Principal::Service(ServiceName::new("web").unwrap()))
        .build();
    let password = SecretString::from("correct horse battery staple".to_owned());

    let (session_token, api_key) = rt.block_on(async {
        let user = portal
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
        let org = portal
            .tenancy()
            .create_org(
                &host,
                NewOrg {
                    slug: "acme".to_owned(),
                    name: "Acme".to_owned(),
                    owner: Some(user.id),
                    ..NewOrg::default()
                },
            )
            .await
            .unwrap()
            .id;
        identity.set_password(&host, user.id, password.clone()).await.unwrap();
        let signed = identity
            .sign_in(
                &host,
                SignIn {
                    email: "ann@example.com".to_owned(),
                    password: password.clone(),
                    source: "192.0.2.1".to_owned(),
                    previous_session: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(signed.session.active_org, Some(org), "the membership check runs");
        let key = identity
            .create_api_key(
                &portal.context(Principal::User(user.id)).build(),
                org,
                NewApiKey {
                    name: "bench".to_owned(),
                    scopes: vec!["members read".parse().unwrap()],
                    expires_at: Some(clock_now(&clock) + Duration::days(1)),
                },
            )
            .await
            .unwrap();
        (signed.token, key.key)
    });
    // One use each, so the last use is recorded and the measured calls write nothing.
    rt.block_on(async {
        identity
            .authenticate(&host, &Credential::Session(session_token.clone()))
            .await
            .unwrap();
        identity
            .authenticate(&host, &Credential::ApiKey(api_key.clone()))
            .await
            .unwrap();
    });

    let mut group = c.benchmark_group("identity");
    let session = Credential::Session(session_token.clone());
    group.bench_function("session verify, service (memory store)", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(identity.authenticate(&host, &session).await.unwrap()) });
    });
    let key = Credential::ApiKey(api_key.clone());
    group.bench_function("api key verify, service (memory store)", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(identity.authenticate(&host, &key).await.unwrap()) });
    });
    let stored_session = SessionToken::parse(&session_token).unwrap().hash();
    group.bench_function("session verify, hash + compare", |b| {
        b.iter(|| {
            let token = SessionToken::parse(black_box(&session_token)).unwrap();
            black_box(token.hash().ct_eq(&stored_session))
        });
    });
    let stored_key = ApiKeyToken::parse(&api_key).unwrap().hash();
    group.bench_function("api key verify, hash + compare", |b| {
        b.iter(|| {
            let key = ApiKeyToken::parse(black_box(&api_key)).unwrap();
            black_box(key.hash().ct_eq(&stored_key))
        });
    });
    group.finish();

    let hasher = PasswordHasher::default();
    let hash = hasher.hash(&password).unwrap();
    let mut slow = c.benchmark_group("identity-password");
    slow.sample_size(20);
    slow.bench_function("password verify, argon2id m=19456 t=2 p=1", |b| {
        b.iter(|| black_box(hasher.verify(&hash, black_box(&password))));
    });
    slow.finish();
}

fn clock_now(clock: &ManualClock) -> OffsetDateTime {
    use portal_core::Clock;
    clock.now()
}

criterion_group!(benches, bench);
criterion_main!(benches);
