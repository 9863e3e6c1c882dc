//! What the operator of a reference server does from its console rather than over HTTP:
//! the servers have no operator identity, so what only the host may do runs as the
//! service principal `operator`, started by hand (`cargo run -p example-axum-portal --
//! reset-second-factors <email> <reason>`).

use portal_auth::identity::FactorReset;
use portal_core::context::ServiceName;
use portal_core::tenancy::Email;
use portal_core::{ErrorCode, PortalError, Principal};

use crate::Api;

/// The service the operator's commands act as: the actor of their audit events.
pub const OPERATOR: &str = "operator";

/// Resets every second factor of the user with `email` and ends their sessions, for
/// `reason` ([`IdentityService::reset_second_factors`](portal_auth::identity::IdentityService::reset_second_factors)):
/// support's way back in for a user who lost every factor, once the operator has made
/// sure, out of band, that whoever asks owns the address.
///
/// # Errors
///
/// `validation.invalid_field` (`email`: no address; `reason`); `user.not_found`;
/// `storage.*`.
pub async fn reset_second_factors(api: &Api, email: &str, reason: &str) -> Result<FactorReset, PortalError> {
    let email = Email::new(email)?;
    let user = api
        .tenancy_store()
        .find_user_by_email(&email)
        .await?
        .ok_or_else(|| PortalError::new(ErrorCode::UserNotFound, "no user has this address"))?;
    let ctx = api
        .portal()
        .context(Principal::Service(ServiceName::new(OPERATOR)?))
        .build();
    api.identity().reset_second_factors(&ctx, user.id, reason).await
}
