//! What the JWT tests share: the TEST-ONLY keys of `tests/fixtures/`, a JWKS the test can
//! change while the authenticator runs, token signing, and an authenticator on memory stores.
#![allow(dead_code, reason = "each test binary uses a different subset of the helpers")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portal_adapters::memory::{InMemoryExternalIdentityStore, InMemoryTenancyStore};
use portal_adapters::observability::MemoryJournal;
use portal_auth::jwt::{FetchedJwks, JwksError, JwtAuthenticator, JwtConfig, SigningAlgorithm};
use portal_core::TenancyStore;
use portal_core::diagnostics::DiagnosticEvent;
use portal_core::identity::{AuthError, AuthFailure, Authenticated, ExternalIdentity, ExternalIdentityStore};
use portal_core::ids::{RandomIds, UserId};
use portal_core::tenancy::{DisplayName, Email, User};
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

pub(crate) const ISSUER: &str = "https://login.example.com/";
pub(crate) const AUDIENCE: &str = "portal-api";
pub(crate) const LEEWAY: Duration = Duration::from_secs(30);
pub(crate) const REFRESH: Duration = Duration::from_secs(60);

/// The time of every request unless a test says otherwise.
pub(crate) fn now() -> OffsetDateTime {
    datetime!(2026-01-15 12:00:00 UTC)
}

pub(crate) fn unix(at: OffsetDateTime) -> i64 {
    at.unix_timestamp()
}

/// A TEST-ONLY signing key and its kid.
#[derive(Clone)]
pub(crate) struct TestKey {
    pub(crate) kid: &'static str,
    pub(crate) alg: Algorithm,
    pub(crate) pem: &'static str,
}

pub(crate) const RSA_1: TestKey = TestKey {
    kid: "rsa-1",
    alg: Algorithm::RS256,
    pem: include_str!("../fixtures/test-only-rsa-1.pem"),
};
pub(crate) const RSA_2: TestKey = TestKey {
    kid: "rsa-2",
    alg: Algorithm::RS256,
    pem: include_str!("../fixtures/test-only-rsa-2.pem"),
};
pub(crate) const EC_1: TestKey = TestKey {
    kid: "ec-1",
    alg: Algorithm::ES256,
    pem: include_str!("../fixtures/test-only-ec-p256.pem"),
};
pub(crate) const ED_1: TestKey = TestKey {
    kid: "ed-1",
    alg: Algorithm::EdDSA,
    pem: include_str!("../fixtures/test-only-ed25519.pem"),
};
/// The public half of [`RSA_1`], PEM: what an attacker would use as an HMAC secret.
pub(crate) const RSA_1_PUBLIC_PEM: &str = include_str!("../fixtures/test-only-rsa-1.pub.pem");

impl TestKey {
    pub(crate) fn encoding_key(&self) -> EncodingKey {
        match self.alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(self.pem.as_bytes()).unwrap(),
            Algorithm::ES256 => EncodingKey::from_ec_pem(self.pem.as_bytes()).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(self.pem.as_bytes()).unwrap(),
            other => panic!("no test key for {other:?}"),
        }
    }

    /// The public JWK, with this key's kid and no declared `alg`.
    pub(crate) fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding_key(), self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk.common.key_algorithm = None;
        jwk
    }

    /// The public JWK declaring `alg`.
    pub(crate) fn jwk_declaring(&self, alg: KeyAlgorithm) -> Jwk {
        let mut jwk = self.jwk();
        jwk.common.key_algorithm = Some(alg);
        jwk
    }

    /// `claims` signed with this key, the header naming its kid.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).unwrap()
    }

    /// `claims` signed with this key, the header naming `kid` instead.
    pub(crate) fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).unwrap()
    }
}

/// Valid claims for `subject` at [`now`]: issued a minute ago, expiring in an hour.
pub(crate) fn claims(subject: &str) -> Value {
    json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": AUDIENCE,
        "iat": unix(now()) - 60,
        "nbf": unix(now()) - 60,
        "exp": unix(now()) + 3600,
    })
}

/// `claims` with `key` set to `value` (or removed when `value` is null).
pub(crate) fn with(mut claims: Value, key: &str, value: Value) -> Value {
    let map = claims.as_object_mut().unwrap();
    if value.is_null() {
        map.remove(key);
    } else {
        map.insert(key.to_owned(), value);
    }
    claims
}

/// base64url without padding, as in a compact JWS.
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token made of a raw header, the claims and an HMAC-SHA256 signature under `secret`.
pub(crate) fn sign_hs256(kid: &str, claims: &Value, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// A JWKS the test changes while the authenticator runs, counting fetches.
#[derive(Clone, Default)]
pub(crate) struct Jwks {
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<Mutex<bool>>,
}

impl Jwks {
    pub(crate) fn with(keys: Vec<Jwk>) -> Self {
        let jwks = Self::default();
        jwks.set(keys);
        jwks
    }

    pub(crate) fn set(&self, keys: Vec<Jwk>) {
        *self.keys.lock().unwrap() = keys;
    }

    pub(crate) fn fail(&self, failing: bool) {
        *self.failing.lock().unwrap() = failing;
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub(crate) fn source(&self) -> FetchedJwks {
        let this = self.clone();
        FetchedJwks::new(move || {
            let this = this.clone();
            Box::pin(async move {
                this.fetches.fetch_add(1, Ordering::SeqCst);
                if *this.failing.lock().unwrap() {
                    return Err(JwksError::from("the identity provider is down"));
                }
                Ok(JwkSet {
                    keys: this.keys.lock().unwrap().clone(),
                })
            })
        })
    }
}

/// An authenticator and everything it writes to.
pub(crate) struct World {
    pub(crate) auth: JwtAuthenticator,
    pub(crate) jwks: Jwks,
    pub(crate) identities: Arc<InMemoryExternalIdentityStore>,
    pub(crate) tenancy: Arc<InMemoryTenancyStore>,
    pub(crate) journal: Arc<MemoryJournal>,
}

/// The configuration the tests start from: RS256, ES256 and EdDSA allowed.
pub(crate) fn config() -> JwtConfig {
    JwtConfig::new(ISSUER, AUDIENCE)
        .with_algorithms([
            SigningAlgorithm::RS256,
            SigningAlgorithm::ES256,
            SigningAlgorithm::EdDSA,
        ])
        .with_leeway(LEEWAY)
        .with_refresh_interval(REFRESH)
}

impl World {
    /// An authenticator with `config`, the JWKS holding `keys`.
    pub(crate) fn new(config: JwtConfig, keys: Vec<Jwk>) -> Self {
        let jwks = Jwks::with(keys);
        let identities = Arc::new(InMemoryExternalIdentityStore::new());
        let tenancy = Arc::new(InMemoryTenancyStore::default());
        let journal = Arc::new(MemoryJournal::with_capacity(1024));
        let auth = JwtAuthenticator::new(
            config,
            Arc::new(jwks.source()),
            identities.clone(),
            tenancy.clone(),
            journal.clone(),
            Arc::new(RandomIds::default()),
        )
        .unwrap();
        Self {
            auth,
            jwks,
            identities,
            tenancy,
            journal,
        }
    }

    /// The default world: [`config`], the JWKS holding [`RSA_1`], [`EC_1`] and [`ED_1`].
    pub(crate) fn standard() -> Self {
        Self::new(config(), vec![RSA_1.jwk(), EC_1.jwk(), ED_1.jwk()])
    }

    /// Creates a user with `email` and links `(ISSUER, subject)` to them.
    pub(crate) async fn linked_user(&self, subject: &str, email: &str) -> UserId {
        let user = self.user(email).await;
        self.identities
            .link(&ExternalIdentity::new(ISSUER, subject, user, now()).unwrap())
            .await
            .unwrap();
        user
    }

    /// Creates a user with `email`, linked to nothing.
    pub(crate) async fn user(&self, email: &str) -> UserId {
        let user = User {
            id: UserId::generate(&RandomIds::default(), now()),
            email: Email::new(email).unwrap(),
            display_name: DisplayName::new("Test User").unwrap(),
            created_at: now(),
        };
        self.tenancy.create_user(&user).await.unwrap();
        user.id
    }

    pub(crate) async fn sign_in(&self, token: &str) -> Result<Authenticated, AuthError> {
        self.sign_in_at(token, now()).await
    }

    pub(crate) async fn sign_in_at(&self, token: &str, at: OffsetDateTime) -> Result<Authenticated, AuthError> {
        use portal_core::identity::{Authenticator, Credential};
        let credential = Credential::Bearer(SecretString::from(token.to_owned()));
        self.auth.authenticate(&request_at(at), &credential).await
    }

    /// The `auth.bearer` events recorded so far.
    pub(crate) fn events(&self) -> Vec<DiagnosticEvent> {
        self.journal
            .events()
            .into_iter()
            .filter(|event| event.name == "auth.bearer")
            .collect()
    }
}

/// The failure of a refused sign-in; fails the test if it was accepted or a store failed.
#[track_caller]
pub(crate) fn failure(result: Result<Authenticated, AuthError>) -> AuthFailure {
    match result {
        Err(AuthError::InvalidCredentials { failure }) => failure,
        other => panic!("expected invalid credentials, got {other:?}"),
    }
}

/// The context of a request not yet authenticated (the host's own service principal),
/// at `at`.
pub(crate) fn request_at(at: OffsetDateTime) -> portal_core::RequestContext {
    let host = portal_core::context::Principal::Service(portal_core::context::ServiceName::new("edge").unwrap());
    portal_core::RequestContext::builder(host).build(
        &portal_core::time::ManualClock::new(at),
        &portal_core::ids::RandomIds::default(),
    )
}
