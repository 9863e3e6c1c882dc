//! [`SupportAccess`]: the levels of access a support grant gives, and the built-in roles
//! they map to.

use serde::{Deserialize, Serialize};

use super::RoleName;

/// The built-in role a read-only grant gives: read actions on the org's resources.
pub const SUPPORT_READONLY_ROLE: &str = "support_readonly";
/// The built-in role a read-write grant gives: reads, and writes on customer-facing
/// resources (never role assignment or role management).
pub const SUPPORT_ROLE: &str = "support";

/// How much a grant lets the staff member do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupportAccess {
    /// Read only: the role `support_readonly`.
    ReadOnly,
    /// Reads and support work: the role `support`.
    ReadWrite,
}

impl SupportAccess {
    /// The built-in role this access level gives in the org.
    pub fn role(self) -> RoleName {
        let name = match self {
            SupportAccess::ReadOnly => SUPPORT_READONLY_ROLE,
            SupportAccess::ReadWrite => SUPPORT_ROLE,
        };
        RoleName::builtin(name)
    }

    /// The stored form: `read_only` or `read_write`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SupportAccess::ReadOnly => "read_only",
            SupportAccess::ReadWrite => "read_write",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read_only" => Some(SupportAccess::ReadOnly),
            "read_write" => Some(SupportAccess::ReadWrite),
            _ => None,
        }
    }
}
