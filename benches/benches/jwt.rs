//! Bearer tokens: `JwtAuthenticator` verification of RS256, ES256 and EdDSA tokens.
//!
//! Run with `cargo bench -p portal-benches --bench jwt -- --noplot`. Keys are the
//! TEST-ONLY fixtures of `portal-auth/tests/fixtures/`. Three measurements per algorithm:
//!
//! - `signature`: `jsonwebtoken::decode` of the token with its key, nothing else: the
//!   cryptographic floor.
//! - `accepted`: `JwtAuthenticator::authenticate_bearer` of a valid token whose identity
//!   is linked, on the in-memory stores, the key set already fetched, events going to a
//!   sink that drops them: header, key lookup, signature, claims, the link lookup.
//! - `refused_wrong_signature`: the same with a token whose signature does not verify.
//!
//! And `refused_before_crypto`: `alg: none`, refused on the header alone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark program fails loudly"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::Criterion;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use portal_adapters::memory::{InMemoryExternalIdentityStore, InMemoryTenancyStore};
use portal_auth::jwt::{JwtAuthenticator, JwtConfig, SigningAlgorithm, StaticJwks};
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink};
use portal_core::identity::{ExternalIdentity, ExternalIdentityStore};
use portal_core::ids::{RandomIds, RequestId, UserId};
use secrecy::SecretString;
use serde_json::json;
use time::OffsetDateTime;

const ISSUER: &str = "https://login.example.com/";
const AUDIENCE: &str = "portal-api";

struct Key {
    name: &'static str,
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
}

fn keys() -> Vec<Key> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../portal-auth/tests/fixtures/");
    let read = |file: &str| std::fs::read(format!("{dir}{file}")).unwrap();
    vec![
        Key {
            name: "rs256",
            kid: "rsa-1",
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(&read("test-only-rsa-1.pem")).unwrap(),
        },
        Key {
            name: "es256",
            kid: "ec-1",
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(&read("test-only-ec-p256.pem")).unwrap(),
        },
        Key {
            name: "eddsa",
            kid: "ed-1",
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(&read("test-only-ed25519.pem")).unwrap(),
        },
    ]
}

impl Key {
    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk
    }

    fn sign(&self, now: OffsetDateTime) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.to_owned());
        let claims = json!({
            "iss": ISSUER, "sub": "alice", "aud": AUDIENCE,
            "iat": now.unix_timestamp() - 60, "exp": now.unix_timestamp() + 3600,
            "email": "alice@example.com", "email_verified": true,
        });
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }
}

/// A sink that drops events, so the benchmark measures verification, not a journal.
struct Discard;

impl DiagnosticSink for Discard {
    fn record(&self, event: DiagnosticEvent) {
        black_box(event);
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let now = OffsetDateTime::now_utc();
    let keys = keys();
    let set = JwkSet {
        keys: keys.iter().map(Key::jwk).collect(),
    };
    let identities = Arc::new(InMemoryExternalIdentityStore::new());
    let ids = Arc::new(RandomIds::default());
    let user = UserId::generate(&*ids, now);
    runtime
        .block_on(identities.link(&ExternalIdentity::new(ISSUER, "alice", user, now).unwrap()))
        .unwrap();
    let config = JwtConfig::new(ISSUER, AUDIENCE).with_algorithms([
        SigningAlgorithm::RS256,
        SigningAlgorithm::ES256,
        SigningAlgorithm::EdDSA,
    ]);
    let auth = JwtAuthenticator::new(
        config,
        Arc::new(StaticJwks::new(set.clone())),
        identities,
        Arc::new(InMemoryTenancyStore::default()),
        Arc::new(Discard),
        ids.clone(),
    )
    .unwrap();
    assert_eq!(runtime.block_on(auth.refresh_keys(now)).unwrap(), 3);
    let request = RequestId::generate(&*ids, now);

    let mut group = c.benchmark_group("jwt");
    for key in &keys {
        let token = key.sign(now);
        let secret = SecretString::from(token.clone());
        let decoding = DecodingKey::from_jwk(&key.jwk()).unwrap();
        let mut validation = Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        group.bench_function(format!("{}/signature", key.name), |b| {
            b.iter(|| jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &decoding, &validation).unwrap())
        });
        assert!(
            runtime
                .block_on(auth.authenticate_bearer(&secret, now, request))
                .is_ok()
        );
        group.bench_function(format!("{}/accepted", key.name), |b| {
            b.iter(|| {
                runtime
                    .block_on(auth.authenticate_bearer(black_box(&secret), now, request))
                    .unwrap()
            })
        });
        let (message, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
        let forged = SecretString::from(format!("{message}.{flipped}{}", &signature[1..]));
        assert!(
            runtime
                .block_on(auth.authenticate_bearer(&forged, now, request))
                .is_err()
        );
        group.bench_function(format!("{}/refused_wrong_signature", key.name), |b| {
            b.iter(|| {
                runtime
                    .block_on(auth.authenticate_bearer(black_box(&forged), now, request))
                    .unwrap_err()
            })
        });
    }
    let none = SecretString::from(format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwia2lkIjoicnNhLTEifQ", "eyJpc3MiOiJodHRwczovL2xvZ2luLmV4YW1wbGUuY29tLyIsInN1YiI6ImFsaWNlIn0"
    ));
    assert!(runtime.block_on(auth.authenticate_bearer(&none, now, request)).is_err());
    group.bench_function("refused_before_crypto", |b| {
        b.iter(|| {
            runtime
                .block_on(auth.authenticate_bearer(black_box(&none), now, request))
                .unwrap_err()
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
