//! What the operator of a reference server does from its console rather than over HTTP:
//! the servers have no operator identity, so what only the host may do runs as the
//! service principal `operator`, started by hand (`cargo run -p example-axum-portal --
//! reset-second-factors <email> <reason>`, or the same on `example-actix-portal`), read by
//! [`Command::parse`].

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

/// One of the operator's console commands, read from a reference server's arguments: with
/// none, the server serves; with one of these, it runs it on its own database and settings
/// and exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `reset-second-factors <email> <reason>`: [`reset_second_factors`].
    ResetSecondFactors {
        /// The user's address.
        email: String,
        /// Why (kept in the audit log).
        reason: String,
    },
}

/// Why an operator's command did not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The arguments name no command, or the wrong number of arguments.
    #[error("{0} (the one command is `reset-second-factors <email> <reason>`; with none, the server serves)")]
    Usage(String),
    /// The command ran and the portal refused it (or storage failed).
    #[error("{what}: {} ({source})", source.code())]
    Refused {
        /// What the command was doing.
        what: String,
        /// The portal's error.
        source: PortalError,
    },
}

impl Command {
    /// The command `args` (the program's arguments, without its name) name, or `None` when
    /// there are none (the server serves).
    ///
    /// # Errors
    ///
    /// [`CommandError::Usage`] for an unknown command or a wrong number of arguments.
    pub fn parse(args: &[String]) -> Result<Option<Self>, CommandError> {
        match args {
            [] => Ok(None),
            [command, email, reason] if command == "reset-second-factors" => Ok(Some(Self::ResetSecondFactors {
                email: email.clone(),
                reason: reason.clone(),
            })),
            [command, rest @ ..] if command == "reset-second-factors" => Err(CommandError::Usage(format!(
                "`reset-second-factors` takes an address and a reason, not {} arguments",
                rest.len()
            ))),
            [command, rest @ ..] => Err(CommandError::Usage(format!(
                "unknown command: `{command}` with {} arguments",
                rest.len()
            ))),
        }
    }

    /// Runs the command on `api`; answers the line to print.
    ///
    /// # Errors
    ///
    /// [`CommandError::Refused`] with the portal's error.
    pub async fn run(&self, api: &Api) -> Result<String, CommandError> {
        match self {
            Self::ResetSecondFactors { email, reason } => {
                let reset = reset_second_factors(api, email, reason)
                    .await
                    .map_err(|source| CommandError::Refused {
                        what: format!("resetting the second factors of {email}"),
                        source,
                    })?;
                Ok(format!(
                    "{email}: {} sessions ended, authenticator app {}, {} passkeys removed",
                    reset.sessions_revoked,
                    if reset.totp_removed { "removed" } else { "none" },
                    reset.passkeys_removed
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Command, CommandError};

    fn args(all: &[&str]) -> Vec<String> {
        all.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn no_arguments_serve_and_the_reset_takes_exactly_an_address_and_a_reason() {
        assert_eq!(Command::parse(&[]).ok(), Some(None));
        assert_eq!(
            Command::parse(&args(&["reset-second-factors", "a@b.example", "lost phone"])).ok(),
            Some(Some(Command::ResetSecondFactors {
                email: "a@b.example".to_owned(),
                reason: "lost phone".to_owned()
            }))
        );
        for wrong in [
            &["reset-second-factors"][..],
            &["reset-second-factors", "a@b.example"],
            &["reset-second-factors", "a@b.example", "lost", "phone"],
            &["serve"],
            &["--help"],
        ] {
            assert!(
                matches!(Command::parse(&args(wrong)), Err(CommandError::Usage(_))),
                "{wrong:?}"
            );
        }
    }
}
