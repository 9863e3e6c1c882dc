//! Mail: the [`Mailer`] port that delivers a [`MailMessage`] (one recipient, a subject, a
//! plain-text and an HTML body), and the [`MailTemplates`] the identity flows render their
//! messages from, which a host replaces with its own wording and brand.
//!
//! `portal-core` names the shapes only; the adapters live in `portal-adapters::mail`
//! (SMTP through `lettre`, and a development mailer writing each message to a folder).
//!
//! A message's bodies usually carry a secret (a password-reset link), so they are
//! [`SecretString`]s: `Debug` of a message shows its recipient and subject, never a body.

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::error::{ErrorCode, PortalError};
use crate::tenancy::Email;

/// One message to one recipient, with a plain-text and an HTML body of the same content.
#[derive(Clone)]
pub struct MailMessage {
    /// The recipient.
    pub to: Email,
    /// The subject line (one line; the adapters refuse line breaks).
    pub subject: String,
    /// The plain-text body.
    pub text: SecretString,
    /// The HTML body.
    pub html: SecretString,
}

impl fmt::Debug for MailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailMessage")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The mail server could not be reached, refused the connection or failed for now;
    /// a later attempt may succeed.
    #[error("the mail server is unavailable: {0}")]
    Unavailable(String),
    /// The message cannot be sent as it is (a header with a line break, a recipient the
    /// server refuses permanently).
    #[error("the message was refused: {0}")]
    Rejected(String),
}

impl From<MailError> for PortalError {
    fn from(err: MailError) -> Self {
        PortalError::new(ErrorCode::MailUnavailable, "the message could not be delivered").with_source(err)
    }
}

/// Delivers mail.
///
/// # Errors
///
/// [`MailError::Unavailable`] when delivery failed for now, [`MailError::Rejected`] when
/// the message cannot be delivered as it is.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Delivers `message` (to the mail server, or wherever the adapter keeps it).
    async fn send(&self, message: &MailMessage) -> Result<(), MailError>;
}

/// The text of one kind of message: a subject, a plain-text body and an HTML body, each
/// with `{{name}}` placeholders.
///
/// [`render`](Self::render) puts each value in as it is into the subject and the text, and
/// HTML-escaped into the HTML body; an unknown placeholder stays as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTemplate {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

impl MailTemplate {
    /// A template of these three texts.
    pub fn new(subject: impl Into<String>, text: impl Into<String>, html: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            text: text.into(),
            html: html.into(),
        }
    }

    /// The message to `to`, each `{{name}}` of `values` filled in.
    pub fn render(&self, to: &Email, values: &[(&str, &str)]) -> MailMessage {
        let fill = |template: &str, escape: bool| {
            let mut out = template.to_owned();
            for (name, value) in values {
                let value = if escape {
                    html_escape(value)
                } else {
                    (*value).to_owned()
                };
                out = out.replace(&format!("{{{{{name}}}}}"), &value);
            }
            out
        };
        MailMessage {
            to: to.clone(),
            subject: fill(&self.subject, false).replace(['\r', '\n'], " "),
            text: SecretString::from(fill(&self.text, false)),
            html: SecretString::from(fill(&self.html, true)),
        }
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn html_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The messages the identity flows send; replace any of them with the host's own.
///
/// Placeholders: `{{product}}` in every template (the host's product name); `{{link}}`
/// and `{{minutes}}` in [`password_reset`](Self::password_reset); `{{link}}` and
/// `{{hours}}` in [`email_verification`](Self::email_verification),
/// [`sign_up`](Self::sign_up) and [`email_change`](Self::email_change); `{{new_email}}` in
/// [`email_change_notice`](Self::email_change_notice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTemplates {
    /// The host's product name, filled in as `{{product}}`.
    pub product: String,
    /// A password-reset link for an address that has an account (`{{link}}`, valid
    /// `{{minutes}}` minutes).
    pub password_reset: MailTemplate,
    /// The answer to a password-reset request for an address that has no account: it
    /// tells the owner of the address, and nobody else, that there is none.
    pub password_reset_unknown: MailTemplate,
    /// The notice that the account's password was changed or reset.
    pub password_changed: MailTemplate,
    /// The notice that the host removed every second factor of the account (and signed
    /// every session out), after the owner lost them.
    pub second_factors_reset: MailTemplate,
    /// An email-verification link (`{{link}}`, valid `{{hours}}` hours).
    pub email_verification: MailTemplate,
    /// A sign-up link for an address with no account (`{{link}}`, valid `{{hours}}`
    /// hours): it creates the account.
    pub sign_up: MailTemplate,
    /// The answer to a sign-up request for an address that already has an account: sign
    /// in, or reset the password.
    pub sign_up_existing: MailTemplate,
    /// The answer to a sign-up request for an address the host's sign-up policy does not
    /// admit (by invitation only, or a domain no org has claimed).
    pub sign_up_refused: MailTemplate,
    /// A change-of-email link, sent to the new address (`{{link}}`, valid `{{hours}}`
    /// hours): it moves the account to this address.
    pub email_change: MailTemplate,
    /// The notice to an account's current address that a change to `{{new_email}}` was
    /// asked for (no link: the change happens only from the new address).
    pub email_change_notice: MailTemplate,
    /// The answer to a change-of-email request for an address that already has an
    /// account, sent to that address: nothing changes.
    pub email_change_taken: MailTemplate,
}

impl Default for MailTemplates {
    fn default() -> Self {
        Self {
            product: "the portal".to_owned(),
            password_reset: MailTemplate::new(
                "Reset your password for {{product}}",
                "Someone asked to reset the password of your account at {{product}}.\n\n\
                 To choose a new password, open this link within {{minutes}} minutes:\n\n{{link}}\n\n\
                 The link works once. If you did not ask for it, ignore this message: your password stays as it is.\n",
                "<p>Someone asked to reset the password of your account at {{product}}.</p>\
                 <p>To choose a new password, open this link within {{minutes}} minutes:</p>\
                 <p><a href=\"{{link}}\">{{link}}</a></p>\
                 <p>The link works once. If you did not ask for it, ignore this message: your password stays as it is.</p>",
            ),
            password_reset_unknown: MailTemplate::new(
                "Password reset request for {{product}}",
                "Someone asked to reset the password of an account at {{product}} with this address, \
                 but this address has no account.\n\nIf it was you, you may have signed up with another address. \
                 If not, ignore this message.\n",
                "<p>Someone asked to reset the password of an account at {{product}} with this address, \
                 but this address has no account.</p><p>If it was you, you may have signed up with another address. \
                 If not, ignore this message.</p>",
            ),
            password_changed: MailTemplate::new(
                "Your password for {{product}} was changed",
                "The password of your account at {{product}} was just changed, and every session was signed out.\n\n\
                 If you did not do this, reset your password now and tell your administrator.\n",
                "<p>The password of your account at {{product}} was just changed, and every session was signed out.</p>\
                 <p>If you did not do this, reset your password now and tell your administrator.</p>",
            ),
            second_factors_reset: MailTemplate::new(
                "Your sign-in factors for {{product}} were reset",
                "Support removed every second factor of your account at {{product}} (the authenticator app, \
                 its recovery codes and every passkey), and every session was signed out.\n\n\
                 Sign in with your password and set up a second factor again.\n\n\
                 If you did not ask for this, reset your password now and tell your administrator.\n",
                "<p>Support removed every second factor of your account at {{product}} (the authenticator app, \
                 its recovery codes and every passkey), and every session was signed out.</p>\
                 <p>Sign in with your password and set up a second factor again.</p>\
                 <p>If you did not ask for this, reset your password now and tell your administrator.</p>",
            ),
            email_verification: MailTemplate::new(
                "Confirm your email address for {{product}}",
                "To confirm that this address is yours at {{product}}, open this link within {{hours}} hours, \
                 signed in to your account:\n\n{{link}}\n\n\
                 The link works once. If you did not ask for it, ignore this message.\n",
                "<p>To confirm that this address is yours at {{product}}, open this link within {{hours}} hours, \
                 signed in to your account:</p>\
                 <p><a href=\"{{link}}\">{{link}}</a></p>\
                 <p>The link works once. If you did not ask for it, ignore this message.</p>",
            ),
            sign_up: MailTemplate::new(
                "Finish signing up for {{product}}",
                "Someone asked to create an account at {{product}} with this address.\n\n\
                 To choose your name and password, open this link within {{hours}} hours:\n\n{{link}}\n\n\
                 The link works once. If you did not ask for it, ignore this message: no account is made.\n",
                "<p>Someone asked to create an account at {{product}} with this address.</p>\
                 <p>To choose your name and password, open this link within {{hours}} hours:</p>\
                 <p><a href=\"{{link}}\">{{link}}</a></p>\
                 <p>The link works once. If you did not ask for it, ignore this message: no account is made.</p>",
            ),
            sign_up_existing: MailTemplate::new(
                "Sign-up request for {{product}}",
                "Someone asked to create an account at {{product}} with this address, \
                 but this address already has one.\n\nIf it was you, sign in, or reset your password if you forgot it. \
                 If not, ignore this message.\n",
                "<p>Someone asked to create an account at {{product}} with this address, \
                 but this address already has one.</p><p>If it was you, sign in, or reset your password if you forgot it. \
                 If not, ignore this message.</p>",
            ),
            sign_up_refused: MailTemplate::new(
                "Sign-up request for {{product}}",
                "Someone asked to create an account at {{product}} with this address, \
                 but accounts there are made by invitation for this address.\n\n\
                 If it was you, ask an administrator of your organization to invite you. If not, ignore this message.\n",
                "<p>Someone asked to create an account at {{product}} with this address, \
                 but accounts there are made by invitation for this address.</p>\
                 <p>If it was you, ask an administrator of your organization to invite you. If not, ignore this message.</p>",
            ),
            email_change: MailTemplate::new(
                "Confirm your new email address for {{product}}",
                "Someone asked to move an account at {{product}} to this address.\n\n\
                 To confirm, open this link within {{hours}} hours, signed in to that account:\n\n{{link}}\n\n\
                 The link works once. If you did not ask for it, ignore this message: nothing changes.\n",
                "<p>Someone asked to move an account at {{product}} to this address.</p>\
                 <p>To confirm, open this link within {{hours}} hours, signed in to that account:</p>\
                 <p><a href=\"{{link}}\">{{link}}</a></p>\
                 <p>The link works once. If you did not ask for it, ignore this message: nothing changes.</p>",
            ),
            email_change_notice: MailTemplate::new(
                "A change of your email address at {{product}} was requested",
                "Someone signed in to your account at {{product}} asked to change its address to {{new_email}}.\n\n\
                 Nothing changes until the link sent to that address is opened. If this was not you, \
                 change your password now and tell your administrator.\n",
                "<p>Someone signed in to your account at {{product}} asked to change its address to {{new_email}}.</p>\
                 <p>Nothing changes until the link sent to that address is opened. If this was not you, \
                 change your password now and tell your administrator.</p>",
            ),
            email_change_taken: MailTemplate::new(
                "Email change request for {{product}}",
                "Someone asked to move an account at {{product}} to this address, \
                 but this address already has an account, so nothing changed.\n\n\
                 If it was you, sign in with this address instead. If not, ignore this message.\n",
                "<p>Someone asked to move an account at {{product}} to this address, \
                 but this address already has an account, so nothing changed.</p>\
                 <p>If it was you, sign in with this address instead. If not, ignore this message.</p>",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests assert")]

    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_template_fills_its_placeholders_escaping_only_the_html() {
        let to = Email::new("ann@example.com").unwrap();
        let message = MailTemplate::new(
            "Hi {{name}}\r\nBcc: x",
            "Go to {{link}}",
            "<a href=\"{{link}}\">{{name}}</a>",
        )
        .render(&to, &[("link", "https://x.test/r?a=1&b=\"2\""), ("name", "<Ann>")]);
        assert_eq!(message.subject, "Hi <Ann>  Bcc: x", "line breaks never reach a header");
        assert_eq!(message.text.expose_secret(), "Go to https://x.test/r?a=1&b=\"2\"");
        assert_eq!(
            message.html.expose_secret(),
            "<a href=\"https://x.test/r?a=1&amp;b=&quot;2&quot;\">&lt;Ann&gt;</a>"
        );
    }

    #[test]
    fn debug_of_a_message_shows_no_body() {
        let to = Email::new("ann@example.com").unwrap();
        let message = MailTemplates::default()
            .password_reset
            .render(&to, &[("link", "https://x.test/r?token=prt_secret")]);
        let shown = format!("{message:?}");
        assert!(shown.contains("ann@example.com"));
        assert!(!shown.contains("prt_secret"), "{shown}");
        assert!(message.text.expose_secret().contains("prt_secret"));
    }
}
