//! Mail adapters of `portal_core::mail::Mailer`: [`SmtpMailer`] sends over SMTP (lettre;
//! STARTTLS, implicit TLS or plain, with optional credentials held as secrets), and
//! [`FolderMailer`] writes each message, as the RFC 5322 text an SMTP server would
//! receive, to a file in a folder and logs the file's path: the development default, so a
//! demo works offline.
//!
//! Both build the same multipart/alternative message (plain text, then HTML) from a
//! `MailMessage`. Neither logs a body: bodies carry secrets such as reset links.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use portal_core::mail::{MailError, MailMessage, Mailer};
use secrecy::{ExposeSecret, SecretString};

/// The sender of every message, as `Name <address>` or `address`.
///
/// # Errors
///
/// `MailError::Rejected` when `from` is no mailbox.
pub fn parse_sender(from: &str) -> Result<Mailbox, MailError> {
    from.parse::<Mailbox>()
        .map_err(|err| MailError::Rejected(format!("`{from}` is not a sender mailbox: {err}")))
}

/// The message `message` from `from`, ready for a transport.
fn build(from: &Mailbox, message: &MailMessage) -> Result<Message, MailError> {
    let to = message
        .to
        .as_str()
        .parse::<Mailbox>()
        .map_err(|err| MailError::Rejected(format!("the recipient is not a mailbox: {err}")))?;
    if message.subject.contains(['\r', '\n']) {
        return Err(MailError::Rejected("the subject holds a line break".to_owned()));
    }
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(message.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            message.text.expose_secret().to_owned(),
            message.html.expose_secret().to_owned(),
        ))
        .map_err(|err| MailError::Rejected(format!("the message cannot be built: {err}")))
}

/// How an [`SmtpMailer`] secures its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP, upgraded with STARTTLS; refused when the server does not offer it
    /// (the usual submission port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption at all: only for a relay on loopback or a test server.
    None,
}

/// Where and how an [`SmtpMailer`] delivers.
#[derive(Clone)]
pub struct SmtpConfig {
    /// The server's host name (checked against its certificate under TLS).
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// STARTTLS, TLS or none.
    pub security: SmtpSecurity,
    /// The user name and password, if the server asks for them.
    pub credentials: Option<(String, SecretString)>,
    /// The sender of every message (`Portal <no-reply@example.com>`).
    pub from: String,
    /// How long one delivery may take, connection included.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends mail to an SMTP server (lettre's pooled async transport on tokio).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer delivering as `config` says. Nothing is connected until the first
    /// message.
    ///
    /// # Errors
    ///
    /// `MailError::Rejected` for a sender that is no mailbox or TLS parameters that
    /// cannot be built for the host.
    pub fn new(config: SmtpConfig) -> Result<Self, MailError> {
        let from = parse_sender(&config.from)?;
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned())
                .map_err(|err| MailError::Rejected(format!("TLS for `{host}` cannot be set up: {err}")))
        };
        let security = match config.security {
            SmtpSecurity::StartTls => Tls::Required(tls(&config.host)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls(&config.host)?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
            .port(config.port)
            .tls(security)
            .timeout(Some(config.timeout));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            host: config.host,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        let built = build(&self.from, message)?;
        match self.transport.send(built).await {
            Ok(_) => {
                tracing::debug!(host = %self.host, subject = %message.subject, "mail delivered");
                Ok(())
            }
            Err(err) if err.is_permanent() => Err(MailError::Rejected(err.to_string())),
            Err(err) => Err(MailError::Unavailable(err.to_string())),
        }
    }
}

/// Writes each message to `<folder>/<time>-<n>.eml` (the RFC 5322 text, as an SMTP server
/// would receive it) and logs the path at INFO: the development mailer.
#[derive(Debug)]
pub struct FolderMailer {
    folder: PathBuf,
    from: Mailbox,
    count: AtomicU64,
}

impl FolderMailer {
    /// A mailer writing into `folder` (created when missing) as `from`.
    ///
    /// # Errors
    ///
    /// `MailError::Rejected` for a sender that is no mailbox; `MailError::Unavailable`
    /// when the folder cannot be created.
    pub fn new(folder: impl Into<PathBuf>, from: &str) -> Result<Self, MailError> {
        let folder = folder.into();
        std::fs::create_dir_all(&folder).map_err(|err| {
            MailError::Unavailable(format!(
                "the mail folder `{}` cannot be created: {err}",
                folder.display()
            ))
        })?;
        Ok(Self {
            folder,
            from: parse_sender(from)?,
            count: AtomicU64::new(0),
        })
    }

    /// The folder messages are written to.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

#[async_trait]
impl Mailer for FolderMailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        let text = build(&self.from, message)?.formatted();
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let path = self.folder.join(format!("{stamp}-{}-{n}.eml", std::process::id()));
        let written = path.clone();
        tokio::task::spawn_blocking(move || std::fs::write(&written, text))
            .await
            .map_err(|err| MailError::Unavailable(format!("the writing task failed: {err}")))?
            .map_err(|err| MailError::Unavailable(format!("`{}` cannot be written: {err}", path.display())))?;
        tracing::info!(path = %path.display(), subject = %message.subject, "mail written to a file (development mailer)");
        Ok(())
    }
}
