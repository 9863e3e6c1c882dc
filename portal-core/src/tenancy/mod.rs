//! Tenancy: organizations, users, memberships and invitations.
//!
//! The values here validate themselves on construction, so a `Slug` or an `Email` in a
//! signature is always well formed; the [`TenancyStore`] port persists them and the
//! [`TenancyService`] runs the use cases. [`ApiVersionStore`] keeps the API version each
//! org is pinned to.

mod api_version;
mod service;
mod store;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::context::Principal;
use crate::error::{PortalError, shown};
use crate::ids::{InvitationId, OrgId, UserId};

pub use crate::access::RoleName;
pub use api_version::{ApiVersionName, ApiVersionStore};
pub use service::{NewOrg, NewUser, OrgUpdate, TenancyConfig, TenancyService, UserOrg, permissions};
#[cfg(feature = "mock")]
pub use store::MockTenancyStore;
pub use store::TenancyStore;

fn invalid(param: &str, message: String) -> PortalError {
    PortalError::invalid_field(param, message)
}

/// An organization's URL name: 3 to 63 of `a-z 0-9 -`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    /// Validates a slug.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `slug`) if it breaks the rules above.
    pub fn new(slug: &str) -> Result<Self, PortalError> {
        let ok = (3..=63).contains(&slug.len())
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !slug.starts_with('-')
            && !slug.ends_with('-');
        if ok {
            Ok(Self(slug.to_owned()))
        } else {
            Err(invalid(
                "slug",
                format!(
                    "`{}` is not a valid slug: use 3 to 63 of a-z, 0-9 and `-`, not at either end",
                    shown(slug)
                ),
            ))
        }
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A bounded, trimmed, printable name: 1 to 200 characters, no control characters.
fn check_name(param: &str, name: &str) -> Result<String, PortalError> {
    let trimmed = name.trim();
    let count = trimmed.chars().count();
    if count == 0 {
        return Err(invalid(param, format!("`{param}` must not be empty")));
    }
    if count > 200 {
        return Err(invalid(param, format!("`{param}` is longer than 200 characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid(param, format!("`{param}` holds control characters")));
    }
    Ok(trimmed.to_owned())
}

/// An organization's display name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgName(String);

impl OrgName {
    /// Validates a name.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `name`) if empty after trimming, longer than 200
    /// characters, or holding control characters.
    pub fn new(name: &str) -> Result<Self, PortalError> {
        check_name("name", name).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's display name, with the same rules as [`OrgName`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// Validates a display name.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `display_name`) as for [`OrgName::new`].
    pub fn new(name: &str) -> Result<Self, PortalError> {
        check_name("display_name", name).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, normalized: trimmed and lowercased.
///
/// Lowercasing the local part is a deliberate choice: real mail systems treat it as
/// case-insensitive, and two accounts for `Ann@x.com` and `ann@x.com` would be a support
/// problem, never a feature.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Normalizes and validates an address.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `email`) unless it is `local@domain` with a
    /// local part of 1 to 64 characters, a domain of dot-separated labels of letters,
    /// digits and inner hyphens with at least one dot, no spaces, and 254 characters at most.
    pub fn new(email: &str) -> Result<Self, PortalError> {
        let normalized = email.trim().to_lowercase();
        let fail = || invalid("email", format!("`{}` is not a valid email address", shown(email)));
        if normalized.len() > 254 || normalized.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail());
        }
        let (local, domain) = normalized.rsplit_once('@').ok_or_else(fail)?;
        let local_ok = (1..=64).contains(&local.len())
            && !local.contains('@')
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && !local.contains(['"', '(', ')', ',', ':', ';', '<', '>', '[', '\\', ']']);
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(normalized))
        } else {
            Err(fail())
        }
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The roles of one membership: 1 to 16 distinct names, kept sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "BTreeSet<RoleName>", into = "BTreeSet<RoleName>")]
pub struct RoleSet(BTreeSet<RoleName>);

impl RoleSet {
    /// The most roles one membership may hold.
    pub const MAX: usize = 16;

    /// Validates a set of roles.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `roles`) if it is empty or holds more than
    /// [`RoleSet::MAX`] roles.
    pub fn new(roles: impl IntoIterator<Item = RoleName>) -> Result<Self, PortalError> {
        let set: BTreeSet<RoleName> = roles.into_iter().collect();
        if set.is_empty() {
            return Err(invalid("roles", "a membership needs at least one role".to_owned()));
        }
        if set.len() > Self::MAX {
            return Err(invalid(
                "roles",
                format!("a membership holds at most {} roles", Self::MAX),
            ));
        }
        Ok(Self(set))
    }

    /// Parses role names and validates the set. A list longer than [`RoleSet::MAX`] is
    /// refused even when repeats would shrink it (so an API's `maxItems` is exact).
    ///
    /// # Errors
    ///
    /// As [`RoleName::new`] and [`RoleSet::new`]; `validation.invalid_field` (param
    /// `roles`) for more than [`RoleSet::MAX`] names.
    pub fn parse<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<Self, PortalError> {
        let roles = names
            .into_iter()
            .map(|name| RoleName::new(name.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if roles.len() > Self::MAX {
            return Err(invalid(
                "roles",
                format!("a membership holds at most {} roles", Self::MAX),
            ));
        }
        Self::new(roles)
    }

    /// A set of one role.
    pub fn one(role: RoleName) -> Self {
        Self(BTreeSet::from([role]))
    }

    /// Whether the set holds `role`.
    pub fn contains(&self, role: &RoleName) -> bool {
        self.0.contains(role)
    }

    /// Whether the set holds the owner role.
    pub fn has_owner(&self) -> bool {
        self.0.iter().any(RoleName::is_owner)
    }

    /// The roles in name order.
    pub fn iter(&self) -> impl Iterator<Item = &RoleName> {
        self.0.iter()
    }

    /// The roles as a slice-like vector, for an access request.
    pub fn to_vec(&self) -> Vec<RoleName> {
        self.0.iter().cloned().collect()
    }

    /// The union with `other`, capped at [`RoleSet::MAX`].
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `roles`) if the union is too large.
    pub fn union(&self, other: &RoleSet) -> Result<RoleSet, PortalError> {
        Self::new(self.0.iter().chain(other.0.iter()).cloned())
    }

    /// Roles in `self` but not in `other`.
    pub fn difference<'a>(&'a self, other: &'a RoleSet) -> impl Iterator<Item = &'a RoleName> {
        self.0.difference(&other.0)
    }
}

impl TryFrom<BTreeSet<RoleName>> for RoleSet {
    type Error = PortalError;

    fn try_from(value: BTreeSet<RoleName>) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<RoleSet> for BTreeSet<RoleName> {
    fn from(value: RoleSet) -> Self {
        value.0
    }
}

/// Free-form key/value data an integrator attaches to an organization, bounded so a
/// client cannot store megabytes: at most 32 entries, keys of 1 to 64 of
/// `a-z A-Z 0-9 _ . -`, values of at most 1,024 characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// The most entries.
    pub const MAX_ENTRIES: usize = 32;

    /// Validates metadata.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `metadata` or `metadata.<key>`) if a bound is broken.
    pub fn new(entries: BTreeMap<String, String>) -> Result<Self, PortalError> {
        if entries.len() > Self::MAX_ENTRIES {
            return Err(invalid(
                "metadata",
                format!("metadata holds at most {} entries", Self::MAX_ENTRIES),
            ));
        }
        for (key, value) in &entries {
            let key_ok = (1..=64).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !key_ok {
                return Err(invalid(
                    "metadata",
                    format!("`{}` is not a valid metadata key", shown(key)),
                ));
            }
            if value.chars().count() > 1024 {
                return Err(invalid(
                    &format!("metadata.{key}"),
                    format!("the value of `{key}` is longer than 1024 characters"),
                ));
            }
        }
        Ok(Self(entries))
    }

    /// The entries in key order.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl TryFrom<BTreeMap<String, String>> for Metadata {
    type Error = PortalError;

    fn try_from(value: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Metadata> for BTreeMap<String, String> {
    fn from(value: Metadata) -> Self {
        value.0
    }
}

macro_rules! string_conversions {
    ($($ty:ident),*) => {$(
        impl TryFrom<String> for $ty {
            type Error = PortalError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(&value)
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> Self {
                value.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

string_conversions!(Slug, OrgName, DisplayName, Email);

/// An organization: a customer of the host's product, and a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Its id.
    pub id: OrgId,
    /// Its unique URL name.
    pub slug: Slug,
    /// Its display name.
    pub name: OrgName,
    /// Integrator data.
    pub metadata: Metadata,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A person who can sign in and belong to organizations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Their id.
    pub id: UserId,
    /// Their normalized, unique email address.
    pub email: Email,
    /// How they are shown.
    pub display_name: DisplayName,
    /// When they were created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A user's membership of an organization, with their roles there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The organization.
    pub org: OrgId,
    /// The member.
    pub user: UserId,
    /// Their roles in the organization.
    pub roles: RoleSet,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the membership last changed: its roles were set, or an invitation to the
    /// org was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Where an invitation stands. Expiry is not a state: it follows from
/// [`Invitation::expires_at`] and the time of the question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InvitationState {
    /// Waiting to be accepted.
    Pending,
    /// Accepted by `by` at `at`; it cannot be used again.
    Accepted {
        /// Who accepted it.
        by: UserId,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Revoked at `at`; it cannot be used.
    Revoked {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// An invitation to join an organization with some roles.
///
/// The token that accepts it is shown once, when it is created; only its
/// [`TokenHash`] is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The organization to join.
    pub org: OrgId,
    /// Who may accept it.
    pub email: Email,
    /// The roles the new member gets.
    pub roles: RoleSet,
    /// Who sent it.
    pub invited_by: Principal,
    /// When it was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops being usable.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Where it stands.
    pub state: InvitationState,
    /// The SHA-256 of its token.
    #[serde(skip)]
    pub token_hash: TokenHash,
}

impl Invitation {
    /// Whether it can be accepted at `now`: pending and not expired.
    pub fn is_usable_at(&self, now: OffsetDateTime) -> bool {
        matches!(self.state, InvitationState::Pending) && now < self.expires_at
    }
}

/// The SHA-256 digest of a secret token: what stores keep instead of the token.
///
/// Tokens carry 256 bits of randomness, so a fast hash is enough: there is nothing to
/// guess, and lookups by hash need no per-row salt.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a token's text.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Compares in constant time.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Four bytes are enough to tell hashes apart in a log and reveal nothing.
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The secret that accepts an invitation: `pit_` and 52 base32 characters (256 bits).
///
/// It is a [`SecretString`]: `Debug` shows `[REDACTED]`, and the text is read only
/// through [`expose_secret`](secrecy::ExposeSecret::expose_secret).
pub struct InvitationToken(SecretString);

impl InvitationToken {
    const PREFIX: &'static str = "pit_";

    /// Makes a new random token.
    pub(crate) fn generate() -> Result<Self, PortalError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|err| {
            PortalError::new(crate::error::ErrorCode::Internal, "the system random generator failed")
                .with_source(err.to_string())
        })?;
        let mut text = String::with_capacity(Self::PREFIX.len() + 52);
        text.push_str(Self::PREFIX);
        // 256 bits in 5-bit groups, the last group padded with zeros.
        let mut acc: u16 = 0;
        let mut bits = 0;
        for byte in bytes {
            acc = (acc << 8) | u16::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                text.push(char::from(BASE32[usize::from((acc >> bits) & 0x1f)]));
            }
        }
        if bits > 0 {
            text.push(char::from(BASE32[usize::from((acc << (5 - bits)) & 0x1f)]));
        }
        Ok(Self(SecretString::from(text)))
    }

    /// Wraps a token a user presented.
    ///
    /// # Errors
    ///
    /// `invitation.not_found` if it does not have a token's shape, so a malformed token
    /// is answered exactly like an unknown one.
    pub fn parse(token: SecretString) -> Result<Self, PortalError> {
        let text = token.expose_secret();
        let ok = text.len() == Self::PREFIX.len() + 52
            && text.starts_with(Self::PREFIX)
            && text.as_bytes()[Self::PREFIX.len()..].iter().all(|b| BASE32.contains(b));
        if ok {
            Ok(Self(token))
        } else {
            Err(PortalError::new(
                crate::error::ErrorCode::InvitationNotFound,
                "no such invitation",
            ))
        }
    }

    /// The hash that stores keep.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.expose_secret())
    }
}

impl ExposeSecret<str> for InvitationToken {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for InvitationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InvitationToken([REDACTED])")
    }
}

const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
