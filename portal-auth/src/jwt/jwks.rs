//! Where verification keys come from: the `JwksSource` port, its static and fetched
//! implementations, and the compiled key set the authenticator verifies with.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};

use time::OffsetDateTime;

use super::config::SigningAlgorithm;

/// The error a [`JwksSource`] reports when it cannot produce a key set.
pub type JwksError = Box<dyn std::error::Error + Send + Sync>;

/// Supplies the JSON Web Key Set tokens are verified against.
///
/// The library does no HTTP itself: the host fetches its identity provider's `jwks_uri`
/// with the client it already uses and hands the set over, or hands a fixed set over with
/// [`StaticJwks`]. The authenticator asks once at its first token, and again when a token
/// names a `kid` it does not know, at most once per configured refresh interval; the set
/// it gets replaces the previous one, so a key removed by the provider stops verifying.
///
/// # Errors
///
/// Any error means the set could not be had now (the provider is down); the authenticator
/// keeps the keys it has and answers `storage.unavailable` for a token it cannot check.
#[async_trait]
pub trait JwksSource: Send + Sync + 'static {
    /// The current key set.
    async fn fetch(&self) -> Result<JwkSet, JwksError>;
}

/// A key set that never changes: for tests, and for hosts that deploy keys with their
/// configuration.
#[derive(Debug, Clone)]
pub struct StaticJwks(JwkSet);

impl StaticJwks {
    /// The set `keys`.
    pub fn new(keys: JwkSet) -> Self {
        Self(keys)
    }

    /// The set in the JSON form of RFC 7517 (`{"keys": [...]}`).
    ///
    /// # Errors
    ///
    /// The JSON error if `json` is not a key set.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json).map(Self)
    }
}

#[async_trait]
impl JwksSource for StaticJwks {
    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        Ok(self.0.clone())
    }
}

type FetchFuture = Pin<Box<dyn Future<Output = Result<JwkSet, JwksError>> + Send>>;

/// A key set fetched anew on each refresh by a function the host supplies, typically an
/// HTTP `GET` of the provider's `jwks_uri`:
///
/// ```
/// use portal_auth::jwt::{FetchedJwks, JwksError};
/// use jsonwebtoken::jwk::JwkSet;
///
/// async fn download() -> Result<JwkSet, JwksError> {
///     // The host's HTTP client goes here, e.g. reqwest::get(url).await?.json().await
///     Ok(JwkSet { keys: vec![] })
/// }
///
/// let source = FetchedJwks::new(|| Box::pin(download()));
/// # let _ = source;
/// ```
pub struct FetchedJwks {
    fetch: Box<dyn Fn() -> FetchFuture + Send + Sync>,
}

impl FetchedJwks {
    /// A source that calls `fetch` for every refresh.
    pub fn new<F>(fetch: F) -> Self
    where
        F: Fn() -> FetchFuture + Send + Sync + 'static,
    {
        Self { fetch: Box::new(fetch) }
    }
}

impl fmt::Debug for FetchedJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedJwks").finish_non_exhaustive()
    }
}

#[async_trait]
impl JwksSource for FetchedJwks {
    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        (self.fetch)().await
    }
}

/// The type of a verification key, as far as choosing an algorithm goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    /// Whether a key of this kind verifies `alg`: RSA keys the RS and PS algorithms, each
    /// curve its own ECDSA algorithm, Ed25519 keys EdDSA.
    pub(crate) fn verifies(self, alg: SigningAlgorithm) -> bool {
        use SigningAlgorithm as A;
        match self {
            KeyKind::Rsa => matches!(alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512),
            KeyKind::EcP256 => alg == A::ES256,
            KeyKind::EcP384 => alg == A::ES384,
            KeyKind::Ed25519 => alg == A::EdDSA,
        }
    }
}

/// One usable verification key.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) key: DecodingKey,
    pub(crate) kind: KeyKind,
    /// The algorithm the JWK declares (`alg`), if it declares one; a token must then use it.
    pub(crate) alg: Option<SigningAlgorithm>,
}

/// The keys of one fetched set, by `kid`.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
    /// When the set was fetched; `None` before the first fetch.
    pub(crate) fetched_at: Option<OffsetDateTime>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

impl KeySet {
    /// The usable keys of `set`. A key is left out when it has no `kid`, is meant for
    /// encryption (`use: enc`), is symmetric (`kty: oct`) or of an unknown type, declares
    /// an algorithm that is not a signature algorithm of [`SigningAlgorithm`] or does not
    /// fit its type, sits on a curve other than P-256, P-384 or Ed25519, or does not
    /// decode, or is an RSA key shorter than 2048 bits. Of two keys with one `kid`, the first is kept.
    pub(crate) fn compile(set: &JwkSet, fetched_at: OffsetDateTime) -> Self {
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if let Some(key) = usable(jwk) {
                keys.entry(kid).or_insert_with(|| Arc::new(key));
            }
        }
        Self {
            keys,
            fetched_at: Some(fetched_at),
        }
    }

    /// The key named `kid`.
    pub(crate) fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.keys.get(kid)
    }

    /// How many keys the set holds.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

fn usable(jwk: &Jwk) -> Option<VerifyingKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => KeyKind::Ed25519,
            _ => return None,
        },
        // Symmetric keys are never used: a token must not be verifiable with a shared secret.
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(declared) => {
            let alg = signing_algorithm(declared)?;
            if !kind.verifies(alg) {
                return None;
            }
            Some(alg)
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    if kind == KeyKind::Rsa && rsa_modulus_bits(&key) < MIN_RSA_BITS {
        return None;
    }
    Some(VerifyingKey { key, kind, alg })
}

/// The smallest RSA modulus accepted, in bits (NIST SP 800-131A).
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// The size of an RSA key's modulus in bits, leading zero bytes not counted.
fn rsa_modulus_bits(key: &DecodingKey) -> usize {
    let jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, .. } = key.kind() else {
        return 0;
    };
    let n = match n.iter().position(|byte| *byte != 0) {
        Some(first) => &n[first..],
        None => return 0,
    };
    n.first()
        .map_or(0, |top| (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
}

fn signing_algorithm(declared: KeyAlgorithm) -> Option<SigningAlgorithm> {
    use SigningAlgorithm as A;
    Some(match declared {
        KeyAlgorithm::RS256 => A::RS256,
        KeyAlgorithm::RS384 => A::RS384,
        KeyAlgorithm::RS512 => A::RS512,
        KeyAlgorithm::PS256 => A::PS256,
        KeyAlgorithm::PS384 => A::PS384,
        KeyAlgorithm::PS512 => A::PS512,
        KeyAlgorithm::ES256 => A::ES256,
        KeyAlgorithm::ES384 => A::ES384,
        KeyAlgorithm::EdDSA => A::EdDSA,
        _ => return None,
    })
}
