//! `Principal`: who performs an action (a user, an API key of one org, or the host's own
//! service code), and its stable string form.
//!
//! It sits at the bottom of the crate with the rest of the shared vocabulary (the names in
//! [`access`](crate::access)): every service and port speaks of principals, and this module
//! imports none of them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::PortalError;
use crate::ids::{ApiKeyId, OrgId, UserId};

/// Who performs an action.
///
/// This enum is exhaustive on purpose: every authorization decision must say what it
/// does for each kind of actor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// A person, signed in with a password, a session or their company's identity provider.
    User(UserId),
    /// An API key; it belongs to exactly one organization and acts only there.
    ApiKey {
        /// The key.
        key: ApiKeyId,
        /// The organization that owns the key.
        org: OrgId,
    },
    /// The host service's own trusted code (sign-up, background jobs, migrations).
    Service(ServiceName),
}

impl Principal {
    /// The user behind this principal, if it is a person.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Principal::User(user) => Some(*user),
            Principal::ApiKey { .. } | Principal::Service(_) => None,
        }
    }
}

/// The string form is stable and is what stores keep: `usr_…`, `key_…@org_…`, `svc:name`.
impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(user) => fmt::Display::fmt(user, f),
            Principal::ApiKey { key, org } => write!(f, "{key}@{org}"),
            Principal::Service(name) => write!(f, "svc:{name}"),
        }
    }
}

/// The string is not a principal's string form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a principal (expected `usr_…`, `key_…@org_…` or `svc:name`)")]
pub struct ParsePrincipalError(String);

impl FromStr for Principal {
    type Err = ParsePrincipalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = || ParsePrincipalError(s.chars().take(64).collect());
        if let Some(name) = s.strip_prefix("svc:") {
            return ServiceName::new(name).map(Principal::Service).map_err(|_| fail());
        }
        if let Some((key, org)) = s.split_once('@') {
            return Ok(Principal::ApiKey {
                key: key.parse().map_err(|_| fail())?,
                org: org.parse().map_err(|_| fail())?,
            });
        }
        s.parse().map(Principal::User).map_err(|_| fail())
    }
}

impl Serialize for Principal {
    /// The string form. A user's is the user id's, serialized without an intermediate
    /// `String` (a principal is in every access decision's detail).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Principal::User(user) => user.serialize(serializer),
            Principal::ApiKey { .. } | Principal::Service(_) => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The name of a trusted service principal: 1 to 64 of `a-z 0-9 - _ .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServiceName(String);

impl ServiceName {
    /// Validates a service name.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `service`) if the name is empty, longer than 64
    /// characters or holds other characters.
    pub fn new(name: &str) -> Result<Self, PortalError> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(PortalError::invalid_field(
                "service",
                format!(
                    "`{}` is not a valid service name",
                    name.chars().take(64).collect::<String>()
                ),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::ids::SequentialIds;

    #[test]
    fn principals_round_trip_through_their_string_form() {
        let ids = SequentialIds::default();
        let at = OffsetDateTime::UNIX_EPOCH;
        for principal in [
            Principal::User(UserId::generate(&ids, at)),
            Principal::ApiKey {
                key: ApiKeyId::generate(&ids, at),
                org: OrgId::generate(&ids, at),
            },
            Principal::Service(ServiceName::new("billing-sync").unwrap()),
        ] {
            assert_eq!(principal.to_string().parse::<Principal>().unwrap(), principal);
            let json = serde_json::to_value(&principal).unwrap();
            assert_eq!(
                json,
                serde_json::Value::String(principal.to_string()),
                "serialized as the string form"
            );
            assert_eq!(serde_json::from_value::<Principal>(json).unwrap(), principal);
        }
        assert!("svc:Bad Name".parse::<Principal>().is_err());
        assert!("org_00000000000000000000000000".parse::<Principal>().is_err());
    }
}
