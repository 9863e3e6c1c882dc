//! The mechanics of the TOTP second factor: secrets, otpauth URIs, code checks that refuse
//! a replayed step, and recovery codes.
//!
//! - A [`TotpSecret`] is 160 random bits (RFC 4226's recommended length) from the system
//!   generator, held in a [`SecretBox`]: `Debug` shows nothing of it. Stores keep its
//!   bytes; the user sees it once, inside the [`otpauth_uri`] of enrollment (which is a
//!   [`SecretString`] for that reason).
//! - Codes are RFC 6238 with the parameters every authenticator app supports: HMAC-SHA-1,
//!   6 digits, 30-second steps, one step of skew either side (`totp-rs` compares in
//!   constant time). [`check_code`] answers the step a code matched, and refuses a code
//!   whose step is not after `last_step` (the last step accepted for the user), so a code
//!   seen once (over a shoulder, in a proxy log) cannot be played again, nor an older one.
//! - [`RecoveryCodes`] are ten codes of 80 random bits each, shown once as
//!   `xxxx-xxxx-xxxx-xxxx` (base32, lowercase), kept only as their SHA-256 (of the code
//!   without dashes, lowercased, so a user may type them either way). [`find_recovery_code`]
//!   compares a typed code against every stored hash in constant time, without stopping
//!   at a match; the caller marks the one found as used.
//!
//! Nothing here stores anything or keeps time: the service gives the time and the store
//! keeps the secret, the last step and the recovery hashes.

use portal_core::{ErrorCode, PortalError};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use time::OffsetDateTime;
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Bytes in a TOTP secret (160 bits).
pub const SECRET_BYTES: usize = 20;
/// Digits in a code.
pub const DIGITS: u8 = 6;
/// Seconds in a step.
pub const STEP_SECONDS: u64 = 30;
/// Steps of clock skew accepted either side of the current one.
pub const SKEW_STEPS: u16 = 1;
/// Recovery codes made at once.
pub const RECOVERY_CODES: usize = 10;
/// Random bytes in a recovery code (80 bits: 16 base32 characters).
const RECOVERY_BYTES: usize = 10;
/// The lowercase RFC 4648 base32 alphabet of recovery codes.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The system random generator failed.
fn random_failed(err: getrandom::Error) -> PortalError {
    PortalError::new(ErrorCode::Internal, "the system random generator failed").with_source(err.to_string())
}

/// A user's TOTP secret. `Debug` shows nothing of it.
pub struct TotpSecret(SecretBox<[u8; SECRET_BYTES]>);

impl TotpSecret {
    /// A new random secret.
    ///
    /// # Errors
    ///
    /// `internal` when the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(random_failed)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The secret whose bytes a store kept.
    pub fn from_bytes(bytes: [u8; SECRET_BYTES]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// The bytes, for a store to keep.
    pub fn expose_bytes(&self) -> &[u8; SECRET_BYTES] {
        self.0.expose_secret()
    }

    /// The generator of codes for this secret, with `issuer` and `account` for the URI.
    fn totp(&self, issuer: &str, account: &str) -> Result<Totp, PortalError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECONDS)
            .with_secret(Secret::new(Box::from(self.expose_bytes().as_slice())))
            .with_account_name(account)
            .with_issuer(Some(issuer))
            .build()
            .map_err(|err| {
                PortalError::new(ErrorCode::Internal, "a TOTP generator could not be built")
                    .with_source(err.to_string())
            })
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// The `otpauth://totp/...` URI an authenticator app reads (usually from a QR code) to
/// enroll `secret` for `account` (the user's email) of `issuer` (the portal's name). It
/// holds the secret, hence a [`SecretString`].
///
/// # Errors
///
/// `validation.invalid_field` (param `issuer`) when `issuer` is empty or has a `:`, which
/// the URI format reserves; `validation.invalid_field` (param `account`) likewise.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> Result<SecretString, PortalError> {
    for (param, value) in [("issuer", issuer), ("account", account)] {
        if value.is_empty() || value.contains(':') || value.chars().any(char::is_control) {
            return Err(PortalError::invalid_field(
                param,
                "an issuer or account of an otpauth URI is not empty and has no ':' nor control characters",
            ));
        }
    }
    let totp = secret.totp(issuer, account)?;
    let url = totp.to_url().map_err(|err| {
        PortalError::new(ErrorCode::Internal, "an otpauth URI could not be made").with_source(err.to_string())
    })?;
    Ok(SecretString::from(url))
}

/// Why [`check_code`] refused a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    /// Not six digits, or not the code of any step in the window.
    Wrong,
    /// The code of a step at or before the last step accepted: seen before.
    Replayed,
}

/// The step (seconds since the Unix epoch divided by [`STEP_SECONDS`]) the six-digit
/// `code` matches at `now`, within [`SKEW_STEPS`] either side, when that step is after
/// `last_step`; the caller then stores the answer as the new `last_step`.
///
/// # Errors
///
/// [`CodeRefusal::Wrong`] for a malformed code, a code of no step in the window, or a
/// time before the epoch; [`CodeRefusal::Replayed`] for the code of a step not after
/// `last_step`.
pub fn check_code(
    secret: &TotpSecret,
    code: &str,
    now: OffsetDateTime,
    last_step: Option<u64>,
) -> Result<u64, CodeRefusal> {
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeRefusal::Wrong);
    }
    let Ok(seconds) = u64::try_from(now.unix_timestamp()) else {
        return Err(CodeRefusal::Wrong);
    };
    // The URI labels play no part in codes.
    let totp = secret.totp("portal", "user").map_err(|_| CodeRefusal::Wrong)?;
    // `check` answers the earliest matching step of the window; a code can only match one
    // step in practice (another step of the window giving the same code is about a 2-in-a-million chance, and then
    // the earlier step is the conservative answer).
    let step = totp.check(code, seconds).ok_or(CodeRefusal::Wrong)?;
    match last_step {
        Some(last) if step <= last => Err(CodeRefusal::Replayed),
        _ => Ok(step),
    }
}

/// The code of `secret` at `at` (for tests and for hosts that show a code in development).
///
/// # Errors
///
/// `internal` for a time before the epoch.
pub fn code_at(secret: &TotpSecret, at: OffsetDateTime) -> Result<SecretString, PortalError> {
    let seconds = u64::try_from(at.unix_timestamp())
        .map_err(|_| PortalError::new(ErrorCode::Internal, "a TOTP code needs a time after the epoch"))?;
    let totp = secret.totp("portal", "user")?;
    Ok(SecretString::from(totp.generate(seconds).to_string()))
}

/// A fresh set of recovery codes: the codes, to show once, and their hashes, to store.
pub struct RecoveryCodes {
    codes: Vec<SecretString>,
    hashes: Vec<[u8; 32]>,
}

impl RecoveryCodes {
    /// [`RECOVERY_CODES`] new codes.
    ///
    /// # Errors
    ///
    /// `internal` when the system random generator fails.
    pub fn generate() -> Result<Self, PortalError> {
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        let mut hashes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let mut bytes = [0u8; RECOVERY_BYTES];
            getrandom::fill(&mut bytes).map_err(random_failed)?;
            let mut text = String::with_capacity(19);
            // 80 bits are 16 characters of 5 bits, in groups of four.
            let value = bytes.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
            for index in 0..16u32 {
                if index > 0 && index % 4 == 0 {
                    text.push('-');
                }
                let shift = 5 * (15 - index);
                let digit = usize::try_from((value >> shift) & 0x1f).unwrap_or(0);
                text.push(char::from(ALPHABET[digit]));
            }
            hashes.push(recovery_hash(&text));
            codes.push(SecretString::from(text));
        }
        Ok(Self { codes, hashes })
    }

    /// The codes, to show the user once.
    pub fn codes(&self) -> &[SecretString] {
        &self.codes
    }

    /// The SHA-256 of each code, in the order of [`codes`](Self::codes), for a store.
    pub fn hashes(&self) -> &[[u8; 32]] {
        &self.hashes
    }

    /// The codes, given away to be shown.
    pub fn into_codes(self) -> Vec<SecretString> {
        self.codes
    }
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryCodes({} codes)", self.codes.len())
    }
}

/// The SHA-256 a store keeps for the recovery code `code`: of its letters and digits,
/// lowercased, so `ABCD-efgh…` and `abcdefgh…` are the same code.
pub fn recovery_hash(code: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for c in code.chars().filter(|c| *c != '-' && *c != ' ') {
        let lower = c.to_ascii_lowercase();
        let mut buf = [0u8; 4];
        hasher.update(lower.encode_utf8(&mut buf).as_bytes());
    }
    hasher.finalize().into()
}

/// The index in `stored` of the hash of the typed recovery code `code`, if any. Every
/// stored hash is compared, in constant time, whether or not one matched earlier. A code
/// longer than 64 characters is no recovery code and is not hashed.
pub fn find_recovery_code(stored: &[[u8; 32]], code: &str) -> Option<usize> {
    if code.is_empty() || code.len() > 64 {
        return None;
    }
    let typed = recovery_hash(code);
    let mut found: Option<usize> = None;
    for (index, hash) in stored.iter().enumerate() {
        let hit: Choice = hash.ct_eq(&typed);
        if bool::from(hit) && found.is_none() {
            found = Some(index);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn secret() -> TotpSecret {
        // RFC 6238's SHA-1 test secret.
        let mut bytes = [0u8; SECRET_BYTES];
        bytes.copy_from_slice(b"12345678901234567890");
        TotpSecret::from_bytes(bytes)
    }

    #[test]
    fn codes_match_the_rfc_6238_vectors() {
        // RFC 6238 appendix B gives 8 digits; the 6-digit code is their last six.
        for (unix, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
        ] {
            let at = OffsetDateTime::from_unix_timestamp(unix).expect("valid time");
            let code = code_at(&secret(), at).expect("a code");
            assert_eq!(code.expose_secret(), &eight[2..], "at {unix}");
        }
    }

    #[test]
    fn a_code_is_accepted_once_and_one_step_either_side() {
        let now = datetime!(2026-12-06 12:00:15 UTC);
        let step = u64::try_from(now.unix_timestamp()).expect("after the epoch") / STEP_SECONDS;
        let code = code_at(&secret(), now).expect("a code");
        assert_eq!(check_code(&secret(), code.expose_secret(), now, None), Ok(step));
        // The same code again, or after a later step was used, is a replay.
        assert_eq!(
            check_code(&secret(), code.expose_secret(), now, Some(step)),
            Err(CodeRefusal::Replayed)
        );
        assert_eq!(
            check_code(&secret(), code.expose_secret(), now, Some(step + 1)),
            Err(CodeRefusal::Replayed)
        );
        // The previous and next steps' codes are accepted (clock skew); two steps away is not.
        for (offset, expected) in [
            (-30, Ok(step - 1)),
            (30, Ok(step + 1)),
            (-60, Err(CodeRefusal::Wrong)),
            (60, Err(CodeRefusal::Wrong)),
        ] {
            let other = code_at(&secret(), now + time::Duration::seconds(offset)).expect("a code");
            assert_eq!(
                check_code(&secret(), other.expose_secret(), now, Some(step - 2)),
                expected,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn malformed_and_wrong_codes_are_refused() {
        let now = datetime!(2026-12-06 12:00:15 UTC);
        let code = code_at(&secret(), now).expect("a code");
        let good = code.expose_secret();
        let wrong = format!("{:06}", (good.parse::<u32>().expect("digits") + 1) % 1_000_000);
        for bad in [
            "",
            "12345",
            "1234567",
            "12 456",
            "abcdef",
            "１２３４５６",
            wrong.as_str(),
        ] {
            assert_eq!(
                check_code(&secret(), bad, now, None),
                Err(CodeRefusal::Wrong),
                "{bad:?}"
            );
        }
        // Another secret's code is wrong.
        let other = TotpSecret::generate().expect("random");
        let theirs = code_at(&other, now).expect("a code");
        if theirs.expose_secret() != good {
            assert_eq!(
                check_code(&secret(), theirs.expose_secret(), now, None),
                Err(CodeRefusal::Wrong)
            );
        }
    }

    #[test]
    fn the_otpauth_uri_names_issuer_account_and_secret() {
        let uri = otpauth_uri(&secret(), "Acme Portal", "ana@example.com").expect("a URI");
        let uri = uri.expose_secret();
        assert!(
            uri.starts_with("otpauth://totp/Acme%20Portal:ana%40example.com?"),
            "{uri}"
        );
        // The secret in base32, as apps read it.
        assert!(uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{uri}");
        assert!(uri.contains("issuer=Acme%20Portal"), "{uri}");
        for (issuer, account) in [("", "a@b.c"), ("Ac:me", "a@b.c"), ("Acme", "a:b@c.d"), ("Acme", "")] {
            let err = otpauth_uri(&secret(), issuer, account).expect_err("refused");
            assert_eq!(err.code(), ErrorCode::InvalidField);
        }
    }

    #[test]
    fn recovery_codes_are_distinct_and_found_only_by_themselves() {
        let set = RecoveryCodes::generate().expect("random");
        assert_eq!(set.codes().len(), RECOVERY_CODES);
        let texts: Vec<String> = set.codes().iter().map(|c| c.expose_secret().to_owned()).collect();
        for text in &texts {
            assert_eq!(text.len(), 19, "{text}");
            assert_eq!(text.matches('-').count(), 3);
            assert!(text.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)));
        }
        let mut unique = texts.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for (index, text) in texts.iter().enumerate() {
            assert_eq!(find_recovery_code(set.hashes(), text), Some(index));
            // Typed without dashes or in capitals, it is the same code.
            assert_eq!(
                find_recovery_code(set.hashes(), &text.replace('-', "").to_uppercase()),
                Some(index)
            );
        }
        let mut altered = texts[0].clone().into_bytes();
        altered[0] = if altered[0] == b'a' { b'b' } else { b'a' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert_eq!(find_recovery_code(set.hashes(), &altered), None);
        assert_eq!(find_recovery_code(set.hashes(), ""), None);
        assert_eq!(find_recovery_code(set.hashes(), &"a".repeat(65)), None);
        // Another set's code is not in this one.
        let other = RecoveryCodes::generate().expect("random");
        assert_eq!(find_recovery_code(set.hashes(), other.codes()[0].expose_secret()), None);
    }

    #[test]
    fn debug_shows_no_secret() {
        let set = RecoveryCodes::generate().expect("random");
        let shown = format!("{:?} {:?}", secret(), set);
        assert!(!shown.contains("1234567890"), "{shown}");
        for code in set.codes() {
            assert!(!shown.contains(code.expose_secret()), "{shown}");
        }
        assert_eq!(shown, "TotpSecret(..) RecoveryCodes(10 codes)");
    }
}
