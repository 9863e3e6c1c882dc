//! The formats of session tokens and API keys: random, checked, shown once, stored as a hash.
//!
//! | secret | format | length |
//! |---|---|---|
//! | session token | `pss_` + 52 base32 (256 random bits) + 6 base32 (check) | 62 |
//! | password-reset token | `prt_` + 52 base32 (256 random bits) + 6 base32 (check) | 62 |
//! | email-verification token | `pev_` + 52 base32 (256 random bits) + 6 base32 (check) | 62 |
//! | sign-up token | `psu_` + 52 base32 (256 random bits) + 6 base32 (check) | 62 |
//! | change-of-email token | `pec_` + 52 base32 (256 random bits) + 6 base32 (check) | 62 |
//! | MFA challenge token | `pmc_` + 52 base32 (256 random bits) + 6 base32 (check) | 62 |
//! | passkey ceremony token | `ppc_` + 52 base32 (256 random bits) + 6 base32 (check) | 62 |
//! | API key | `pk_live_` + 8 base32 (short id, 40 random bits) + `_` + 52 base32 (256 random bits) + 6 base32 (check) | 75 |
//!
//! The alphabet is `0-9 a-z` without `i l o u` (Crockford's, lowercase). The check is
//! the first 30 bits of the SHA-256 of everything before it, so a mistyped or tampered
//! secret is refused as malformed before any store is asked; it is not a security
//! boundary (the 256 random bits are). Stores keep only [`TokenHash`], the SHA-256 of
//! the whole text. An API key's prefix (`pk_live_` and the short id) is not secret and is
//! shown in listings, so people can tell their keys apart.

use portal_core::tenancy::TokenHash;
use portal_core::{ErrorCode, PortalError};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const SECRET_CHARS: usize = 52;
const CHECK_CHARS: usize = 6;
const SHORT_ID_CHARS: usize = 8;

/// A session token's prefix.
pub const SESSION_PREFIX: &str = "pss_";
/// A password-reset token's prefix.
pub const RESET_PREFIX: &str = "prt_";
/// An email-verification token's prefix.
pub const VERIFY_PREFIX: &str = "pev_";
/// A sign-up token's prefix.
pub const SIGN_UP_PREFIX: &str = "psu_";
/// A change-of-email token's prefix.
pub const EMAIL_CHANGE_PREFIX: &str = "pec_";
/// An MFA challenge token's prefix.
pub const CHALLENGE_PREFIX: &str = "pmc_";
/// A passkey ceremony token's prefix.
pub const CEREMONY_PREFIX: &str = "ppc_";
/// An API key's prefix, before its short id.
pub const API_KEY_PREFIX: &str = "pk_live_";

/// The system random generator failed.
fn random_failed(err: getrandom::Error) -> PortalError {
    PortalError::new(ErrorCode::Internal, "the system random generator failed").with_source(err.to_string())
}

/// Appends `bytes` in base32 (5 bits a character, the last one padded with zeros).
fn push_base32(out: &mut String, bytes: &[u8]) {
    let mut acc: u32 = 0;
    let mut bits = 0;
    for byte in bytes {
        acc = (acc << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x1f) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 0x1f) as usize]));
    }
}

/// The six check characters of `body`.
fn check_of(body: &str) -> [u8; CHECK_CHARS] {
    let digest = Sha256::digest(body.as_bytes());
    let mut text = String::with_capacity(8);
    push_base32(&mut text, &digest[..4]);
    let mut out = [0u8; CHECK_CHARS];
    out.copy_from_slice(&text.as_bytes()[..CHECK_CHARS]);
    out
}

/// Whether each byte is in [`ALPHABET`]: one table look-up a byte (a search of the
/// alphabet for each of a token's 52 characters was a tenth of an authenticated read).
fn is_base32(text: &[u8]) -> bool {
    text.iter().all(|b| IN_ALPHABET[usize::from(*b)])
}

/// `IN_ALPHABET[b]`: whether the byte `b` is in [`ALPHABET`].
static IN_ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = true;
        i += 1;
    }
    table
};

/// `body` followed by its check characters.
fn with_check(mut body: String) -> SecretString {
    let check = check_of(&body);
    body.extend(check.iter().map(|b| char::from(*b)));
    SecretString::from(body)
}

/// Whether `text` is `body` and a matching check, in constant time on the check.
fn check_holds(text: &str) -> bool {
    let Some(split) = text.len().checked_sub(CHECK_CHARS) else {
        return false;
    };
    let (Some(body), Some(check)) = (text.get(..split), text.get(split..)) else {
        return false;
    };
    check_of(body).ct_eq(check.as_bytes()).into()
}

/// A new single-use token: `prefix`, 256 random bits in base32, then its check characters.
fn prefixed_token(prefix: &str) -> Result<SecretString, PortalError> {
    let mut body = String::with_capacity(prefix.len() + SECRET_CHARS + CHECK_CHARS);
    body.push_str(prefix);
    push_base32(&mut body, &random_bytes::<32>()?);
    Ok(with_check(body))
}

/// Whether `text` has the exact shape of a [`prefixed_token`] of `prefix` and its check holds.
fn has_prefixed_shape(prefix: &str, text: &SecretString) -> bool {
    let raw = text.expose_secret();
    raw.len() == prefix.len() + SECRET_CHARS + CHECK_CHARS
        && raw.starts_with(prefix)
        && is_base32(&raw.as_bytes()[prefix.len()..])
        && check_holds(raw)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], PortalError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(random_failed)?;
    Ok(bytes)
}

/// A session token: shown once to the client (usually as a cookie), then only its hash
/// is kept. `Debug` shows nothing of it.
pub struct SessionToken(SecretString);

impl SessionToken {
    /// Makes a new random token.
    ///
    /// # Errors
    ///
    /// `internal.error` if the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        let mut body = String::with_capacity(SESSION_PREFIX.len() + SECRET_CHARS + CHECK_CHARS);
        body.push_str(SESSION_PREFIX);
        push_base32(&mut body, &random_bytes::<32>()?);
        Ok(Self(with_check(body)))
    }

    /// Reads a token the client presented; `None` unless it has a token's exact shape and
    /// its check holds.
    pub fn parse(text: &SecretString) -> Option<Self> {
        let raw = text.expose_secret();
        let ok = raw.len() == SESSION_PREFIX.len() + SECRET_CHARS + CHECK_CHARS
            && raw.starts_with(SESSION_PREFIX)
            && is_base32(&raw.as_bytes()[SESSION_PREFIX.len()..])
            && check_holds(raw);
        ok.then(|| Self(text.clone()))
    }

    /// The hash stores keep.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.expose_secret())
    }

    /// The token, to hand to the client once.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

/// A password-reset token: mailed once as part of a link, then only its hash is kept.
/// `Debug` shows nothing of it.
pub struct ResetToken(SecretString);

impl ResetToken {
    /// Makes a new random token.
    ///
    /// # Errors
    ///
    /// `internal.error` if the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        prefixed_token(RESET_PREFIX).map(Self)
    }

    /// Reads a token the client presented; `None` unless it has a token's exact shape and
    /// its check holds (so a mistyped or tampered token is refused before any store is
    /// asked).
    pub fn parse(text: &SecretString) -> Option<Self> {
        has_prefixed_shape(RESET_PREFIX, text).then(|| Self(text.clone()))
    }

    /// The hash stores keep.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.expose_secret())
    }

    /// The token, to put in the link once.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

/// An email-verification token: mailed once as part of a link, then only its hash is
/// kept. `Debug` shows nothing of it.
pub struct VerifyToken(SecretString);

impl VerifyToken {
    /// Makes a new random token.
    ///
    /// # Errors
    ///
    /// `internal.error` if the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        prefixed_token(VERIFY_PREFIX).map(Self)
    }

    /// Reads a token the client presented; `None` unless it has a token's exact shape and
    /// its check holds.
    pub fn parse(text: &SecretString) -> Option<Self> {
        has_prefixed_shape(VERIFY_PREFIX, text).then(|| Self(text.clone()))
    }

    /// The hash stores keep.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.expose_secret())
    }

    /// The token, to put in the link once.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl std::fmt::Debug for VerifyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyToken([REDACTED])")
    }
}

/// A sign-up token: mailed once as part of a link that creates an account, then only its
/// hash is kept. `Debug` shows nothing of it.
pub struct SignUpToken(SecretString);

impl SignUpToken {
    /// Makes a new random token.
    ///
    /// # Errors
    ///
    /// `internal.error` if the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        prefixed_token(SIGN_UP_PREFIX).map(Self)
    }

    /// Reads a token the client presented; `None` unless it has a token's exact shape and
    /// its check holds.
    pub fn parse(text: &SecretString) -> Option<Self> {
        has_prefixed_shape(SIGN_UP_PREFIX, text).then(|| Self(text.clone()))
    }

    /// The hash stores keep.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.expose_secret())
    }

    /// The token, to put in the link once.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl std::fmt::Debug for SignUpToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignUpToken([REDACTED])")
    }
}

/// A change-of-email token: mailed once to the new address as part of a link, then only
/// its hash is kept. `Debug` shows nothing of it.
pub struct EmailChangeToken(SecretString);

impl EmailChangeToken {
    /// Makes a new random token.
    ///
    /// # Errors
    ///
    /// `internal.error` if the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        prefixed_token(EMAIL_CHANGE_PREFIX).map(Self)
    }

    /// Reads a token the client presented; `None` unless it has a token's exact shape and
    /// its check holds.
    pub fn parse(text: &SecretString) -> Option<Self> {
        has_prefixed_shape(EMAIL_CHANGE_PREFIX, text).then(|| Self(text.clone()))
    }

    /// The hash stores keep.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.expose_secret())
    }

    /// The token, to put in the link once.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl std::fmt::Debug for EmailChangeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailChangeToken([REDACTED])")
    }
}

impl std::fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetToken([REDACTED])")
    }
}

/// An MFA challenge token: answered once by a password sign-in for a user with a second
/// factor, then only its hash is kept. `Debug` shows nothing of it.
pub struct ChallengeToken(SecretString);

impl ChallengeToken {
    /// Makes a new random token.
    ///
    /// # Errors
    ///
    /// `internal.error` if the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        prefixed_token(CHALLENGE_PREFIX).map(Self)
    }

    /// Reads a token the client presented; `None` unless it has a token's exact shape and
    /// its check holds.
    pub fn parse(text: &SecretString) -> Option<Self> {
        has_prefixed_shape(CHALLENGE_PREFIX, text).then(|| Self(text.clone()))
    }

    /// The hash stores keep.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.expose_secret())
    }

    /// The token, to answer once.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl std::fmt::Debug for ChallengeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChallengeToken([REDACTED])")
    }
}

/// A passkey ceremony token: it names the relying party's state of one registration or
/// sign-in between its two steps; shown once, then only its hash is kept. `Debug` shows
/// nothing of it.
pub struct CeremonyToken(SecretString);

impl CeremonyToken {
    /// Makes a new random token.
    ///
    /// # Errors
    ///
    /// `internal.error` if the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        prefixed_token(CEREMONY_PREFIX).map(Self)
    }

    /// Reads a token the client presented; `None` unless it has a token's exact shape and
    /// its check holds.
    pub fn parse(text: &SecretString) -> Option<Self> {
        has_prefixed_shape(CEREMONY_PREFIX, text).then(|| Self(text.clone()))
    }

    /// The hash stores keep.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.expose_secret())
    }

    /// The token, to answer once.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl std::fmt::Debug for CeremonyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CeremonyToken([REDACTED])")
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken([REDACTED])")
    }
}

/// An API key: shown once to its creator, then only its hash and its readable prefix are
/// kept. `Debug` shows the prefix only.
pub struct ApiKeyToken {
    secret: SecretString,
    prefix: String,
}

impl ApiKeyToken {
    /// Makes a new random key.
    ///
    /// # Errors
    ///
    /// `internal.error` if the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        let mut body = String::with_capacity(API_KEY_PREFIX.len() + SHORT_ID_CHARS + 1 + SECRET_CHARS + CHECK_CHARS);
        body.push_str(API_KEY_PREFIX);
        push_base32(&mut body, &random_bytes::<5>()?);
        let prefix = body.clone();
        body.push('_');
        push_base32(&mut body, &random_bytes::<32>()?);
        Ok(Self {
            secret: with_check(body),
            prefix,
        })
    }

    /// Reads a key a client presented; `None` unless it has a key's exact shape and its
    /// check holds.
    pub fn parse(text: &SecretString) -> Option<Self> {
        let raw = text.expose_secret();
        let id_end = API_KEY_PREFIX.len() + SHORT_ID_CHARS;
        let bytes = raw.as_bytes();
        let ok = raw.len() == id_end + 1 + SECRET_CHARS + CHECK_CHARS
            && raw.starts_with(API_KEY_PREFIX)
            && is_base32(&bytes[API_KEY_PREFIX.len()..id_end])
            && bytes[id_end] == b'_'
            && is_base32(&bytes[id_end + 1..])
            && check_holds(raw);
        ok.then(|| Self {
            secret: text.clone(),
            prefix: raw[..id_end].to_owned(),
        })
    }

    /// The readable start (`pk_live_` and the short id), not secret.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash stores keep.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.secret.expose_secret())
    }

    /// The key, to hand to its creator once.
    pub fn into_secret(self) -> SecretString {
        self.secret
    }
}

impl std::fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeyToken({}_[REDACTED])", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests assert")]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_table_is_the_alphabet() {
        for byte in 0..=u8::MAX {
            assert_eq!(is_base32(&[byte]), ALPHABET.contains(&byte), "byte {byte}");
        }
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn formats_have_their_documented_shape() {
        let session = SessionToken::generate().unwrap().into_secret();
        assert_eq!(session.expose_secret().len(), 62);
        assert!(session.expose_secret().starts_with("pss_"));
        let key = ApiKeyToken::generate().unwrap();
        let prefix = key.prefix().to_owned();
        let text = key.into_secret();
        assert_eq!(text.expose_secret().len(), 75);
        assert!(prefix.starts_with("pk_live_") && prefix.len() == 16);
        assert!(text.expose_secret().starts_with(&format!("{prefix}_")));
    }

    #[test]
    fn debug_shows_no_secret() {
        let session = SessionToken::generate().unwrap();
        assert_eq!(format!("{session:?}"), "SessionToken([REDACTED])");
        let key = ApiKeyToken::generate().unwrap();
        let shown = format!("{key:?}");
        let text = key.into_secret();
        assert!(!shown.contains(&text.expose_secret()[17..]), "{shown}");
    }

    #[test]
    fn tokens_of_the_other_kind_and_garbage_are_refused() {
        let session = SessionToken::generate().unwrap().into_secret();
        let key = ApiKeyToken::generate().unwrap().into_secret();
        assert!(ApiKeyToken::parse(&session).is_none());
        assert!(SessionToken::parse(&key).is_none());
        for bad in ["", "pss_", "pk_live_", "pss_ü", &"x".repeat(62)] {
            assert!(SessionToken::parse(&secret(bad)).is_none(), "{bad}");
            assert!(ApiKeyToken::parse(&secret(bad)).is_none(), "{bad}");
        }
    }

    /// A verification token has its documented shape, round-trips through `parse`, hides
    /// itself from `Debug`, and neither a reset token nor a changed one parses as one.
    #[test]
    fn verification_tokens_are_their_own_kind() {
        let token = VerifyToken::generate().unwrap();
        assert_eq!(format!("{token:?}"), "VerifyToken([REDACTED])");
        let hash = token.hash();
        let text = token.into_secret();
        assert_eq!(text.expose_secret().len(), 62);
        assert!(text.expose_secret().starts_with("pev_"));
        assert!(VerifyToken::parse(&text).unwrap().hash().ct_eq(&hash));
        assert!(ResetToken::parse(&text).is_none());
        let reset = ResetToken::generate().unwrap().into_secret();
        assert!(VerifyToken::parse(&reset).is_none());
        let mut tampered = text.expose_secret().to_owned();
        let last = if tampered.ends_with('0') { "1" } else { "0" };
        tampered.replace_range(61.., last);
        assert!(
            VerifyToken::parse(&secret(&tampered)).is_none(),
            "a changed check is refused"
        );
    }

    /// A change-of-email token has its documented shape, hides itself from `Debug`, and
    /// neither a verification token nor a changed one parses as one.
    #[test]
    fn email_change_tokens_are_their_own_kind() {
        let token = EmailChangeToken::generate().unwrap();
        assert_eq!(format!("{token:?}"), "EmailChangeToken([REDACTED])");
        let hash = token.hash();
        let text = token.into_secret();
        assert_eq!(text.expose_secret().len(), 62);
        assert!(text.expose_secret().starts_with("pec_"));
        assert!(EmailChangeToken::parse(&text).unwrap().hash().ct_eq(&hash));
        assert!(VerifyToken::parse(&text).is_none());
        let verify = VerifyToken::generate().unwrap().into_secret();
        assert!(EmailChangeToken::parse(&verify).is_none());
        let mut tampered = text.expose_secret().to_owned();
        let last = if tampered.ends_with('0') { "1" } else { "0" };
        tampered.replace_range(61.., last);
        assert!(EmailChangeToken::parse(&secret(&tampered)).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn session_tokens_round_trip(_seed in any::<u8>()) {
            let token = SessionToken::generate().unwrap();
            let hash = token.hash();
            let text = token.into_secret();
            let parsed = SessionToken::parse(&text).unwrap();
            prop_assert!(parsed.hash().ct_eq(&hash));
        }

        #[test]
        fn api_keys_round_trip(_seed in any::<u8>()) {
            let key = ApiKeyToken::generate().unwrap();
            let (hash, prefix) = (key.hash(), key.prefix().to_owned());
            let text = key.into_secret();
            let parsed = ApiKeyToken::parse(&text).unwrap();
            prop_assert!(parsed.hash().ct_eq(&hash));
            prop_assert_eq!(parsed.prefix(), prefix.as_str());
        }

        /// Any change of one character (to any other byte) is refused by the parser or
        /// yields another hash, which no store holds.
        #[test]
        fn any_change_to_a_token_is_refused_or_changes_its_hash(index in 0usize..75, byte in any::<u8>()) {
            for (text, hash, session) in [
                {
                    let t = SessionToken::generate().unwrap();
                    let h = t.hash();
                    (t.into_secret(), h, true)
                },
                {
                    let k = ApiKeyToken::generate().unwrap();
                    let h = k.hash();
                    (k.into_secret(), h, false)
                },
            ] {
                let mut bytes = text.expose_secret().as_bytes().to_vec();
                let i = index % bytes.len();
                prop_assume!(bytes[i] != byte);
                bytes[i] = byte;
                let changed = secret(&String::from_utf8_lossy(&bytes));
                let parsed_hash = if session {
                    SessionToken::parse(&changed).map(|t| t.hash())
                } else {
                    ApiKeyToken::parse(&changed).map(|k| k.hash())
                };
                if let Some(other) = parsed_hash {
                    prop_assert!(!other.ct_eq(&hash), "a changed token kept its hash");
                }
            }
        }

        #[test]
        fn truncated_or_extended_tokens_are_refused(cut in 1usize..62, extra in "[0-9a-z]{1,4}") {
            let text = SessionToken::generate().unwrap().into_secret();
            let raw = text.expose_secret();
            prop_assert!(SessionToken::parse(&secret(&raw[..raw.len() - cut])).is_none());
            let longer = format!("{raw}{extra}");
            prop_assert!(SessionToken::parse(&secret(&longer)).is_none());
        }
    }
}
