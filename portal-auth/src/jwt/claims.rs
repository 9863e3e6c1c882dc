//! Reading a token: its header before any key is chosen, and its claims after the
//! signature is verified, checked against the configuration and the time of the request.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portal_core::identity::{AuthFailure, ExternalIdentity};
use serde::Deserialize;
use time::OffsetDateTime;

use super::config::{JwtConfig, SigningAlgorithm};

/// The parts of a JOSE header the authenticator acts on, read before the signature is
/// checked and so not trusted for anything but choosing the key and algorithm.
#[derive(Debug)]
pub(crate) struct UnverifiedHeader {
    pub(crate) alg: SigningAlgorithm,
    pub(crate) kid: String,
}

/// The header as it comes; unknown members are ignored (`jku`, `x5u` and `jwk` among
/// them: keys only ever come from the host's JWKS).
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// The longest `kid` accepted, in bytes; it is logged, so it is bounded.
pub(crate) const MAX_KID_LEN: usize = 256;

/// Reads the header of `token`, refusing what no key should be looked up for.
///
/// - More or fewer than three dot-separated parts (a JWE has five), a header that is not
///   base64url JSON, a missing or oversized `kid`, or any `crit` member (this verifier
///   understands no extensions): [`AuthFailure::Malformed`].
/// - An `alg` that is missing, `none`, symmetric, unknown or not allowed by the host:
///   [`AuthFailure::AlgorithmNotAllowed`].
///
/// On failure the `kid` is returned when it could be read, for diagnostics.
pub(crate) fn read_header(token: &str, config: &JwtConfig) -> Result<UnverifiedHeader, (AuthFailure, Option<String>)> {
    if token.len() > JwtConfig::MAX_TOKEN_LEN {
        return Err((AuthFailure::Malformed, None));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err((AuthFailure::Malformed, None));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| (AuthFailure::Malformed, None))?;
    let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| (AuthFailure::Malformed, None))?;
    let kid = raw.kid.filter(|kid| printable(kid, MAX_KID_LEN));
    let alg = raw
        .alg
        .as_deref()
        .and_then(SigningAlgorithm::from_name)
        .filter(|alg| config.algorithms.contains(alg))
        .ok_or_else(|| (AuthFailure::AlgorithmNotAllowed, kid.clone()))?;
    if raw.crit.is_some() {
        return Err((AuthFailure::Malformed, kid));
    }
    let kid = kid.ok_or((AuthFailure::Malformed, None))?;
    Ok(UnverifiedHeader { alg, kid })
}

/// Whether `text` is 1 to `max` bytes without control characters.
fn printable(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && !text.chars().any(char::is_control)
}

/// `aud`: one string or an array of them (RFC 7519, section 4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// `email_verified`: a boolean, or the strings `"true"`/`"false"` some providers send.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(&self) -> bool {
        match self {
            Flag::Bool(value) => *value,
            Flag::Text(text) => text == "true",
        }
    }
}

/// The claims the authenticator reads; the others are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    email: Option<String>,
    email_verified: Option<Flag>,
    name: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// Claims that passed every check.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) email: Option<String>,
    pub(crate) email_verified: bool,
    pub(crate) name: Option<String>,
    other: serde_json::Map<String, serde_json::Value>,
}

impl Checked {
    /// A string claim other than the registered ones, such as the org claim.
    pub(crate) fn text(&self, claim: &str) -> Option<&str> {
        self.other.get(claim).and_then(serde_json::Value::as_str)
    }
}

impl Claims {
    /// Checks verified claims at `now`, in this order:
    ///
    /// 1. `iss`, `sub`, `aud` and `exp` are present, and `sub` is 1 to 255 bytes without
    ///    control characters: else [`AuthFailure::Malformed`].
    /// 2. `iss` is exactly the configured issuer: else [`AuthFailure::WrongIssuer`].
    /// 3. `aud` names a configured audience: else [`AuthFailure::WrongAudience`].
    /// 4. `now < exp + leeway`: else [`AuthFailure::Expired`].
    /// 5. `nbf <= now + leeway` and `iat <= now + leeway` when present: else
    ///    [`AuthFailure::NotYetValid`].
    pub(crate) fn check(
        self,
        config: &JwtConfig,
        now: OffsetDateTime,
    ) -> Result<Checked, (AuthFailure, Option<String>)> {
        let issuer = self.iss.clone();
        let fail = |failure| (failure, issuer.clone());
        let (Some(iss), Some(sub), Some(aud), Some(exp)) = (self.iss, self.sub, self.aud, self.exp) else {
            return Err(fail(AuthFailure::Malformed));
        };
        if !printable(&sub, ExternalIdentity::MAX_SUBJECT_LEN) {
            return Err(fail(AuthFailure::Malformed));
        }
        if iss != config.issuer {
            return Err(fail(AuthFailure::WrongIssuer));
        }
        let audience_ok = match &aud {
            Audience::One(one) => config.audiences.contains(one),
            Audience::Many(many) => many.iter().any(|one| config.audiences.contains(one)),
        };
        if !audience_ok {
            return Err(fail(AuthFailure::WrongAudience));
        }
        let now = now.unix_timestamp();
        let leeway = seconds(config.leeway);
        if now >= exp.saturating_add(leeway) {
            return Err(fail(AuthFailure::Expired));
        }
        let ahead = now.saturating_add(leeway);
        if self.nbf.is_some_and(|nbf| nbf > ahead) || self.iat.is_some_and(|iat| iat > ahead) {
            return Err(fail(AuthFailure::NotYetValid));
        }
        Ok(Checked {
            issuer: iss,
            subject: sub,
            email: self.email,
            email_verified: self.email_verified.is_some_and(|flag| flag.is_true()),
            name: self.name,
            other: self.other,
        })
    }
}

/// Whole seconds of `duration`, saturating.
fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
