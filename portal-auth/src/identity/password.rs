//! Passwords: argon2id hashing with documented parameters, the password policy, and the
//! breached-password port.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use portal_core::tenancy::TokenHash;
use portal_core::{ErrorCode, PortalError};
use secrecy::{ExposeSecret, SecretString};

/// The argon2id cost parameters.
///
/// The default is OWASP's first recommended configuration for argon2id: 19 MiB of
/// memory (`m = 19456` KiB), 2 iterations (`t = 2`), 1 lane (`p = 1`), with a 16-byte
/// random salt and a 32-byte output, argon2 version 0x13. Raise them as hardware allows:
/// a stored hash made with other parameters is rehashed with the current ones the next
/// time its owner signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

fn internal(message: &str, err: impl ToString) -> PortalError {
    PortalError::new(ErrorCode::Internal, message.to_owned()).with_source(err.to_string())
}

/// Hashes and verifies passwords with argon2id. CPU-bound and slow on purpose: the
/// identity service calls it on tokio's blocking threads, never on the async ones, at
/// most [`HashLimit::permits`](super::HashLimit::permits) at once.
///
/// It counts the computations running now and the most that ever ran at once (clones
/// share the counts), so the bound on concurrent argon2 work can be observed.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    params: PasswordParams,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

/// Counts one computation of a [`PasswordHasher`] while it lives.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn start(running: &'a AtomicUsize, peak: &AtomicUsize) -> Self {
        let now = running.fetch_add(1, Ordering::AcqRel) + 1;
        peak.fetch_max(now, Ordering::AcqRel);
        Self(running)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).finish()
    }
}

impl Default for PasswordHasher {
    /// A hasher with the default [`PasswordParams`] (argon2's own defaults).
    fn default() -> Self {
        Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT),
            params: PasswordParams::default(),
            running: Arc::default(),
            peak: Arc::default(),
        }
    }
}

impl PasswordHasher {
    /// A hasher with `params`.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `password_params`) for parameters argon2 refuses
    /// (such as less than 8 KiB per lane).
    pub fn new(params: PasswordParams) -> Result<Self, PortalError> {
        let argon_params = Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
            .map_err(|err| PortalError::invalid_field("password_params", err.to_string()))?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params),
            params,
            running: Arc::default(),
            peak: Arc::default(),
        })
    }

    /// The parameters new hashes get.
    pub fn params(&self) -> PasswordParams {
        self.params
    }

    /// How many hashes and verifications run now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// The most hashes and verifications that ever ran at once.
    pub fn peak_running(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }

    /// Hashes `password` with a fresh random salt, as a PHC string.
    ///
    /// # Errors
    ///
    /// `internal.error` if the random generator or argon2 fails.
    pub fn hash(&self, password: &SecretString) -> Result<SecretString, PortalError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|err| internal("the system random generator failed", err))?;
        let salt = SaltString::encode_b64(&salt).map_err(|err| internal("argon2 refused the salt", err))?;
        let _running = Running::start(&self.running, &self.peak);
        let hash = self
            .argon2
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map_err(|err| internal("argon2 failed", err))?;
        Ok(SecretString::from(hash.to_string()))
    }

    /// Whether `password` matches the PHC string `hash`, compared in constant time by
    /// argon2. A hash that does not parse matches nothing.
    pub fn verify(&self, hash: &SecretString, password: &SecretString) -> bool {
        match PasswordHash::new(hash.expose_secret()) {
            Ok(parsed) => {
                let _running = Running::start(&self.running, &self.peak);
                self.argon2
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok()
            }
            Err(_) => false,
        }
    }

    /// Whether `hash` was made with another algorithm, version or parameters than this
    /// hasher's, so it should be replaced after the next successful verification.
    pub fn needs_rehash(&self, hash: &SecretString) -> bool {
        let Ok(parsed) = PasswordHash::new(hash.expose_secret()) else {
            return true;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return true;
        };
        parsed.algorithm.as_str() != "argon2id"
            || parsed.version != Some(0x13)
            || params.m_cost() != self.params.memory_kib
            || params.t_cost() != self.params.iterations
            || params.p_cost() != self.params.parallelism
    }
}

/// Tells whether a password appears in a known data breach (such as a k-anonymity
/// lookup against a breach corpus, run by the host).
///
/// # Errors
///
/// Any `PortalError`; the identity service refuses the password change with it rather
/// than accept a password it could not check.
#[async_trait]
pub trait BreachedPasswordCheck: Send + Sync + 'static {
    /// Whether `password` is known to be breached.
    async fn is_breached(&self, password: &SecretString) -> Result<bool, PortalError>;
}

/// The default [`BreachedPasswordCheck`]: it knows no breach, so only the length bounds
/// apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBreachCheck;

#[async_trait]
impl BreachedPasswordCheck for NoBreachCheck {
    async fn is_breached(&self, _password: &SecretString) -> Result<bool, PortalError> {
        Ok(false)
    }
}

/// A [`BreachedPasswordCheck`] against a fixed list (a host's own list of the most
/// common passwords, the embedded [`common`](Self::common) list, or tests). It keeps the
/// SHA-256 of each, never the text.
#[derive(Clone, Default)]
pub struct KnownBreachedPasswords {
    hashes: HashSet<TokenHash>,
    fold_case: bool,
}

/// The embedded list of [`KnownBreachedPasswords::common`], one password a line.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

impl KnownBreachedPasswords {
    /// A check that refuses exactly `passwords`.
    pub fn new<'a>(passwords: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            hashes: passwords.into_iter().map(TokenHash::of).collect(),
            fold_case: false,
        }
    }

    /// The offline default: the 11,611 passwords of at least 8 characters among the 30,000
    /// most common ones of Xato's corpus of ten million leaked passwords, as ranked in the
    /// frequency list of zxcvbn (Dropbox's password strength estimator, MIT licence; taken
    /// from the Rust port `zxcvbn` 3.1.1, `src/frequency_lists.rs`). The list is lowercase,
    /// so a password is refused when its lowercase form is on it (`Password1234` as
    /// `password1234`). Shorter passwords are left out: no length policy accepts them.
    pub fn common() -> Self {
        Self {
            hashes: COMMON_PASSWORDS
                .lines()
                .filter(|line| !line.is_empty())
                .map(TokenHash::of)
                .collect(),
            fold_case: true,
        }
    }

    /// How many passwords the check knows.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the check knows no password.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    fn knows(&self, text: &str) -> bool {
        let hash = TokenHash::of(text);
        self.hashes.iter().any(|known| known.ct_eq(&hash))
    }
}

impl std::fmt::Debug for KnownBreachedPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownBreachedPasswords")
            .field("count", &self.hashes.len())
            .field("fold_case", &self.fold_case)
            .finish()
    }
}

#[async_trait]
impl BreachedPasswordCheck for KnownBreachedPasswords {
    async fn is_breached(&self, password: &SecretString) -> Result<bool, PortalError> {
        let text = password.expose_secret();
        if self.knows(text) {
            return Ok(true);
        }
        Ok(self.fold_case && self.knows(&text.to_lowercase()))
    }
}

/// The length bounds of a new password, in characters. NIST SP 800-63B asks for at
/// least 8 and accepting at least 64; the defaults are 12 and 128 (the upper bound keeps
/// one sign-in's hashing cost bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// The fewest characters.
    pub min_chars: usize,
    /// The most characters.
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 128,
        }
    }
}

impl PasswordPolicy {
    /// Checks the length bounds.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `password`) outside the bounds; the message
    /// states the bounds, never the password.
    pub fn check_length(&self, password: &SecretString) -> Result<(), PortalError> {
        let chars = password.expose_secret().chars().count();
        if (self.min_chars..=self.max_chars).contains(&chars) {
            Ok(())
        } else {
            Err(PortalError::invalid_field(
                "password",
                format!("a password has {} to {} characters", self.min_chars, self.max_chars),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests assert")]

    use super::*;

    fn light() -> PasswordHasher {
        PasswordHasher::new(PasswordParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = light();
        let hash = hasher.hash(&secret("correct horse battery")).unwrap();
        assert!(hash.expose_secret().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(hasher.verify(&hash, &secret("correct horse battery")));
        assert!(!hasher.verify(&hash, &secret("correct horse batterY")));
        assert!(!hasher.verify(&secret("not a phc string"), &secret("x")));
    }

    #[test]
    fn hashes_of_other_parameters_need_rehashing() {
        let hash = light().hash(&secret("correct horse battery")).unwrap();
        assert!(!light().needs_rehash(&hash));
        let raised = PasswordHasher::new(PasswordParams {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        assert!(raised.needs_rehash(&hash));
        assert!(
            raised.verify(&hash, &secret("correct horse battery")),
            "old hashes still verify"
        );
        assert!(light().needs_rehash(&secret("garbage")));
    }

    #[test]
    fn parameters_argon2_refuses_are_a_validation_error() {
        let err = PasswordHasher::new(PasswordParams {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidField);
    }

    #[test]
    fn the_policy_bounds_length_in_characters() {
        let policy = PasswordPolicy::default();
        assert!(policy.check_length(&secret("short")).is_err());
        assert!(policy.check_length(&secret("twelve chars")).is_ok());
        assert!(policy.check_length(&secret(&"é".repeat(128))).is_ok());
        let err = policy.check_length(&secret(&"a".repeat(129))).unwrap_err();
        assert_eq!(err.param(), Some("password"));
        assert!(!err.message().contains("aaaa"));
    }

    #[tokio::test]
    async fn the_known_list_refuses_exactly_its_passwords() {
        let check = KnownBreachedPasswords::new(["password1234", "qwertyuiop12"]);
        assert!(check.is_breached(&secret("password1234")).await.unwrap());
        assert!(!check.is_breached(&secret("password12345")).await.unwrap());
        assert!(!NoBreachCheck.is_breached(&secret("password1234")).await.unwrap());
    }

    /// The embedded list holds its 11,611 passwords, refuses them in any case, and lets
    /// a password that is not on it through.
    #[tokio::test]
    async fn the_common_list_refuses_common_passwords_in_any_case() {
        let check = KnownBreachedPasswords::common();
        assert_eq!(check.len(), 11_611);
        for common in ["password", "qwertyuiop", "1qaz2wsx3edc", "Password123", "QWERTY123456"] {
            assert!(check.is_breached(&secret(common)).await.unwrap(), "{common}");
        }
        for rare in ["correct horse battery staple", "Tr0ub4dor&3-xk!", "password12345678901"] {
            assert!(!check.is_breached(&secret(rare)).await.unwrap(), "{rare}");
        }
        assert!(
            !KnownBreachedPasswords::new(["password1234"])
                .is_breached(&secret("PASSWORD1234"))
                .await
                .unwrap(),
            "a host's own list is matched exactly"
        );
        assert!(!format!("{check:?}").contains("qwerty"));
    }
}
