//! What the host configures for bearer tokens: the trusted issuer and audiences, the allowed
//! algorithms, the clock skew, and how claims map to users.

use std::collections::BTreeSet;
use std::time::Duration;

use portal_core::context::ServiceName;
use portal_core::tenancy::{RoleName, Slug};

/// A signature algorithm a host may allow for bearer tokens.
///
/// Only asymmetric algorithms exist here: a token is verified with a public key from the
/// host's JWKS, never with a shared secret, so `none` and the HMAC algorithms (`HS256`,
/// `HS384`, `HS512`) cannot be allowed at all. That rules out the classic algorithm
/// confusion, where a token signed with HMAC under the RSA public key (which is public)
/// passes a verifier that trusts the token's `alg` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys of at least 2048 bits).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA on Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    /// Every algorithm, in declaration order.
    pub const ALL: [SigningAlgorithm; 9] = [
        SigningAlgorithm::RS256,
        SigningAlgorithm::RS384,
        SigningAlgorithm::RS512,
        SigningAlgorithm::PS256,
        SigningAlgorithm::PS384,
        SigningAlgorithm::PS512,
        SigningAlgorithm::ES256,
        SigningAlgorithm::ES384,
        SigningAlgorithm::EdDSA,
    ];

    /// The name in a JOSE header (`alg`), such as `RS256`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::RS384 => "RS384",
            SigningAlgorithm::RS512 => "RS512",
            SigningAlgorithm::PS256 => "PS256",
            SigningAlgorithm::PS384 => "PS384",
            SigningAlgorithm::PS512 => "PS512",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::ES384 => "ES384",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm named `name` in a JOSE header, if it is one of these; `none`,
    /// `HS256` and every other name are `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            SigningAlgorithm::RS256 => A::RS256,
            SigningAlgorithm::RS384 => A::RS384,
            SigningAlgorithm::RS512 => A::RS512,
            SigningAlgorithm::PS256 => A::PS256,
            SigningAlgorithm::PS384 => A::PS384,
            SigningAlgorithm::PS512 => A::PS512,
            SigningAlgorithm::ES256 => A::ES256,
            SigningAlgorithm::ES384 => A::ES384,
            SigningAlgorithm::EdDSA => A::EdDSA,
        }
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the [`JwtAuthenticator`](super::JwtAuthenticator) checks tokens and finds their users.
///
/// Build one with [`JwtConfig::new`] and the `with_*` methods; the authenticator checks it
/// when it is made.
///
/// ```
/// use std::time::Duration;
/// use portal_auth::jwt::{JwtConfig, SigningAlgorithm};
///
/// let config = JwtConfig::new("https://login.example.com/", "portal-api")
///     .with_algorithms([SigningAlgorithm::RS256, SigningAlgorithm::ES256])
///     .with_leeway(Duration::from_secs(30))
///     .with_email_fallback(true);
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub(crate) issuer: String,
    pub(crate) audiences: BTreeSet<String>,
    pub(crate) algorithms: BTreeSet<SigningAlgorithm>,
    pub(crate) leeway: Duration,
    pub(crate) refresh_interval: Duration,
    pub(crate) key_max_age: Duration,
    pub(crate) email_fallback: bool,
    pub(crate) provisioning: Option<Provisioning>,
}

impl JwtConfig {
    /// The most clock skew a host may allow: five minutes.
    pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
    /// The clock skew allowed unless configured: 30 seconds.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
    /// The least time between two JWKS refreshes caused by unknown `kid`s, unless
    /// configured: one minute.
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
    /// How long a fetched key set is used before the next token fetches it again, unless
    /// configured: fifteen minutes.
    pub const DEFAULT_KEY_MAX_AGE: Duration = Duration::from_secs(15 * 60);
    /// The longest token accepted, in bytes; a longer one is refused as malformed before
    /// it is decoded.
    pub const MAX_TOKEN_LEN: usize = 8 * 1024;

    /// Tokens must carry exactly `issuer` in `iss` and name `audience` in `aud`. By
    /// default `RS256` and `ES256` are allowed, the skew is [`DEFAULT_LEEWAY`](Self::DEFAULT_LEEWAY),
    /// users are found only through their linked external identity, and nobody is
    /// provisioned.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: BTreeSet::from([audience.into()]),
            algorithms: BTreeSet::from([SigningAlgorithm::RS256, SigningAlgorithm::ES256]),
            leeway: Self::DEFAULT_LEEWAY,
            refresh_interval: Self::DEFAULT_REFRESH_INTERVAL,
            key_max_age: Self::DEFAULT_KEY_MAX_AGE,
            email_fallback: false,
            provisioning: None,
        }
    }

    /// Also accepts tokens for `audience` (a token needs to name one of them).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.insert(audience.into());
        self
    }

    /// Allows exactly these algorithms (the allow-list replaces the default).
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = SigningAlgorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// The clock skew allowed on `exp`, `nbf` and `iat`, at most [`MAX_LEEWAY`](Self::MAX_LEEWAY).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The least time between two key set refreshes caused by tokens naming an unknown
    /// `kid`; within it, an unknown `kid` is refused without asking the [`JwksSource`](super::JwksSource).
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// How long a fetched key set is trusted: the first token after that fetches the set
    /// again (at most once per refresh interval), so a key the provider removed stops
    /// verifying within this time even when no token names an unknown `kid`. If the
    /// fetch fails, the keys held keep working.
    pub fn with_key_max_age(mut self, max_age: Duration) -> Self {
        self.key_max_age = max_age;
        self
    }

    /// When no external identity is linked, finds the user by the token's `email` claim,
    /// but only when the token also says `email_verified: true`; the identity is then
    /// linked, so the next sign-in finds it directly. Off by default: turn it on only for
    /// an issuer that verifies addresses and never lets a user choose one it has not
    /// verified.
    pub fn with_email_fallback(mut self, enabled: bool) -> Self {
        self.email_fallback = enabled;
        self
    }

    /// Creates a user on the first sign-in of an unknown identity (see [`Provisioning`]).
    pub fn with_provisioning(mut self, provisioning: Provisioning) -> Self {
        self.provisioning = Some(provisioning);
        self
    }

    /// The issuer tokens must carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The allowed algorithms.
    pub fn algorithms(&self) -> impl Iterator<Item = SigningAlgorithm> + '_ {
        self.algorithms.iter().copied()
    }

    pub(crate) fn check(&self) -> Result<(), JwtConfigError> {
        if self.issuer.is_empty() {
            return Err(JwtConfigError::EmptyIssuer);
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(JwtConfigError::EmptyAudience);
        }
        if self.algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithm);
        }
        if self.leeway > Self::MAX_LEEWAY {
            return Err(JwtConfigError::LeewayTooLarge {
                leeway: self.leeway,
                max: Self::MAX_LEEWAY,
            });
        }
        Ok(())
    }
}

/// Just-in-time provisioning: the first sign-in of an identity nobody is linked to creates
/// a portal user (email and display name from the token), links the identity to it, and
/// optionally makes the user a member of an org the token names.
///
/// A later sign-in finds the linked user and provisions nothing, so provisioning happens
/// once per identity; a membership removed by an admin is not added back.
#[derive(Debug, Clone)]
pub struct Provisioning {
    pub(crate) require_verified_email: bool,
    pub(crate) membership: Option<MembershipClaim>,
    pub(crate) provisioner: ServiceName,
}

impl Provisioning {
    /// Provisions users from tokens with an `email` claim and `email_verified: true`,
    /// without memberships, recorded as done by the service principal `provisioner`.
    pub fn new(provisioner: ServiceName) -> Self {
        Self {
            require_verified_email: true,
            membership: None,
            provisioner,
        }
    }

    /// Whether the token must say `email_verified: true` (the default). An unverified
    /// address would let whoever controls the issuer's account claim someone else's
    /// address in the portal; turn this off only for an issuer that has no such claim
    /// and only issues addresses it controls.
    pub fn require_verified_email(mut self, required: bool) -> Self {
        self.require_verified_email = required;
        self
    }

    /// Also adds the new user to the org named in a claim.
    pub fn with_membership(mut self, membership: MembershipClaim) -> Self {
        self.membership = Some(membership);
        self
    }
}

/// Which org a provisioned user joins, and with which role.
///
/// The claim holds the org's slug. A token without the claim provisions a user with no
/// membership; a token naming an org that does not exist, or one outside `allowed_orgs`,
/// is refused before anything is written.
#[derive(Debug, Clone)]
pub struct MembershipClaim {
    pub(crate) claim: String,
    pub(crate) role: RoleName,
    pub(crate) allowed_orgs: Option<BTreeSet<Slug>>,
}

impl MembershipClaim {
    /// The org named by the slug in `claim`, with `role`, any org allowed.
    ///
    /// Allowing any org is right only for an issuer the host controls (its own identity
    /// provider). For a customer's identity provider, use [`only`](Self::only), or that
    /// customer could place users in another customer's org.
    pub fn new(claim: impl Into<String>, role: RoleName) -> Self {
        Self {
            claim: claim.into(),
            role,
            allowed_orgs: None,
        }
    }

    /// Only these orgs may be joined.
    pub fn only(mut self, orgs: impl IntoIterator<Item = Slug>) -> Self {
        self.allowed_orgs = Some(orgs.into_iter().collect());
        self
    }
}

/// A [`JwtConfig`] that cannot work.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    /// The issuer is empty.
    #[error("the issuer is empty")]
    EmptyIssuer,
    /// No audience, or an empty one.
    #[error("an audience is empty")]
    EmptyAudience,
    /// The algorithm allow-list is empty.
    #[error("no signing algorithm is allowed")]
    NoAlgorithm,
    /// The leeway is larger than [`JwtConfig::MAX_LEEWAY`].
    #[error("the leeway of {leeway:?} is larger than {max:?}")]
    LeewayTooLarge {
        /// What was asked.
        leeway: Duration,
        /// The most allowed.
        max: Duration,
    },
}
