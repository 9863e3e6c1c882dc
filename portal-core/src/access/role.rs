//! [`RoleName`]: the name of a role, built-in or an org's own.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Name;
use crate::error::PortalError;

/// A role's name: 1 to 64 of `a-z 0-9 _ -`, starting with a letter.
///
/// Built-in roles are [`owner`](RoleName::owner), [`admin`](RoleName::admin),
/// [`member`](RoleName::member), [`viewer`](RoleName::viewer) and
/// [`billing`](RoleName::billing); organizations may define others.
///
/// The text is an [`access::Name`](crate::access::Name): a built-in role's name is a
/// constant whichever way it was made ([`RoleName::new`] and deserializing recognize
/// them), so reading a membership of built-in roles allocates nothing for them and their
/// text is one copy in the program; any other name is shared text (an `Arc<str>`), so
/// cloning a role name, as a [`Denial`](crate::access::Denial) does with the actor's
/// roles, counts a reference instead of copying it.
///
/// ```
/// use portal_core::tenancy::RoleName;
/// assert_eq!(RoleName::new("admin").unwrap(), RoleName::admin());
/// assert_eq!(RoleName::new("support-lead").unwrap().as_str(), "support-lead");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleName(Name);

impl RoleName {
    /// Validates a role name.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `roles`) if it breaks the rule above.
    pub fn new(name: &str) -> Result<Self, PortalError> {
        if Self::is_valid(name) {
            Ok(Self(Self::constant_for(name).unwrap_or_else(|| Name::from(name))))
        } else {
            Err(PortalError::invalid_field(
                "roles",
                format!("`{}` is not a valid role name", crate::error::shown(name)),
            ))
        }
    }

    /// Whether `name` is a valid role name (see [`new`](Self::new)), without making one.
    ///
    /// ```
    /// use portal_core::tenancy::RoleName;
    /// assert!(RoleName::is_valid("support-lead"));
    /// assert!(!RoleName::is_valid("Support Lead"));
    /// assert!(!RoleName::is_valid(""));
    /// ```
    pub fn is_valid(name: &str) -> bool {
        (1..=64).contains(&name.len())
            && name.as_bytes()[0].is_ascii_lowercase()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    }

    pub(crate) const fn builtin(name: &'static str) -> Self {
        Self(Name::from_static(name))
    }

    /// The constant of a built-in role's name ([`BUILTIN_ROLES`](super::BUILTIN_ROLES)),
    /// `None` for any other name.
    fn constant_for(name: &str) -> Option<Name> {
        super::BUILTIN_ROLES
            .iter()
            .find(|known| known.name == name)
            .map(|known| Name::from_static(known.name))
    }

    /// Full control of the organization, including its owners.
    pub fn owner() -> Self {
        Self::builtin("owner")
    }
    /// Manages members, invitations and settings, but not owners.
    pub fn admin() -> Self {
        Self::builtin("admin")
    }
    /// Works in the organization.
    pub fn member() -> Self {
        Self::builtin("member")
    }
    /// Reads the organization.
    pub fn viewer() -> Self {
        Self::builtin("viewer")
    }
    /// Handles billing.
    pub fn billing() -> Self {
        Self::builtin("billing")
    }

    /// Whether this is the owner role.
    pub fn is_owner(&self) -> bool {
        self.0 == "owner"
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoleName {
    type Error = PortalError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<RoleName> for String {
    fn from(value: RoleName) -> Self {
        String::from(value.0)
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_role_names_are_constants_however_they_are_made() {
        let made = [
            RoleName::new("viewer").unwrap(),
            serde_json::from_str::<RoleName>(r#""billing""#).unwrap(),
            RoleName::try_from("owner".to_owned()).unwrap(),
            RoleName::admin(),
            RoleName::member(),
        ];
        for role in &made {
            assert!(role.0.is_constant(), "{role} was not made a constant");
        }
        let custom = RoleName::new("support-lead").unwrap();
        assert!(!custom.0.is_constant());
        // Either way a role name is its text: equal, ordered and serialized by it.
        assert_eq!(RoleName::new("viewer").unwrap(), RoleName::viewer());
        assert!(RoleName::new("admin").unwrap() < custom);
        assert_eq!(serde_json::to_string(&made[1]).unwrap(), r#""billing""#);
        assert_eq!(String::from(custom), "support-lead");
    }
}
