//! The API version an org is pinned to: a dated name (`2026-06-01`) that the host's HTTP
//! layer answers the org's requests in when they name no version, and the
//! [`ApiVersionStore`] port that keeps it per org.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::invalid;
use crate::audit::AuditEvent;
use crate::error::{PortalError, shown};
use crate::ids::OrgId;
use crate::store::StoreError;

/// A dated API version's name: `YYYY-MM-DD`, a real calendar day. Which versions exist is
/// the HTTP layer's business; this only holds the form, so a stored pin reads back
/// checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiVersionName(String);

impl ApiVersionName {
    /// Validates a version name.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `version`) unless it is a `YYYY-MM-DD` date.
    pub fn new(name: &str) -> Result<Self, PortalError> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let ok = name.len() == 10 && time::Date::parse(name, &format).is_ok();
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(invalid(
                "version",
                format!("`{}` is not an API version: use a date, `YYYY-MM-DD`", shown(name)),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ApiVersionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ApiVersionName {
    type Error = PortalError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<ApiVersionName> for String {
    fn from(value: ApiVersionName) -> Self {
        value.0
    }
}

/// Keeps the API version each org is pinned to.
///
/// Every implementation must pass the clause
/// `portal_core::testing::tenancy::api_version_pins_are_per_org_and_need_the_org` (run
/// with the tenancy suite). An org without a pin has none ([`None`]): the HTTP layer
/// decides what that means (the oldest version, for orgs created before pins existed).
///
/// # Errors
///
/// As every store: [`StoreError::Unavailable`], [`StoreError::Backend`],
/// [`StoreError::Corrupt`] (a stored name that is not a version name).
#[async_trait]
pub trait ApiVersionStore: Send + Sync + 'static {
    /// The version `org` is pinned to, if it was pinned.
    async fn api_version(&self, org: OrgId) -> Result<Option<ApiVersionName>, StoreError>;

    /// Pins `org` to `version` (replacing any pin), writing `event` to the org's audit log
    /// in the same transaction when given (a change an org's customers audit; the pin set
    /// when the org is created has none).
    ///
    /// # Errors
    ///
    /// - [`StoreError::NotFound`] (`organization`) if the org does not exist (nothing is
    ///   written).
    async fn pin_api_version(
        &self,
        org: OrgId,
        version: &ApiVersionName,
        event: Option<&AuditEvent>,
    ) -> Result<(), StoreError>;
}

#[async_trait]
impl<S: ApiVersionStore + ?Sized> ApiVersionStore for std::sync::Arc<S> {
    async fn api_version(&self, org: OrgId) -> Result<Option<ApiVersionName>, StoreError> {
        (**self).api_version(org).await
    }

    async fn pin_api_version(
        &self,
        org: OrgId,
        version: &ApiVersionName,
        event: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        (**self).pin_api_version(org, version, event).await
    }
}

#[cfg(test)]
mod tests {
    use super::ApiVersionName;

    #[test]
    fn names_are_real_dates() {
        assert!(ApiVersionName::new("2026-06-01").is_ok());
        assert!(ApiVersionName::new("2026-02-30").is_err());
        assert!(ApiVersionName::new("2026-6-1").is_err());
        assert!(ApiVersionName::new("2026-06-01\0").is_err());
        assert!(ApiVersionName::new("").is_err());
    }
}
