//! The mail adapters against real receivers: `SmtpMailer` delivers to an `aiosmtpd`
//! server the test starts (the message read back from its Maildir, both bodies intact),
//! refuses to send in the clear when STARTTLS is required and not offered, and reports an
//! unreachable server as `Unavailable`; `FolderMailer` writes a parseable message file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

#[path = "smtp_sink/mod.rs"]
mod smtp_sink;

use std::time::Duration;

use portal_adapters::mail::{FolderMailer, SmtpConfig, SmtpMailer, SmtpSecurity};
use portal_core::mail::{MailError, MailMessage, MailTemplates, Mailer};
use portal_core::tenancy::Email;
use secrecy::SecretString;
use smtp_sink::{SmtpSink, link_in};

fn config(port: u16, security: SmtpSecurity) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        security,
        credentials: None,
        from: "Portal <no-reply@portal.example>".to_owned(),
        timeout: Duration::from_secs(10),
    }
}

fn message() -> MailMessage {
    // A long link: the transfer encoding folds it, and the receiver must get it whole.
    let link = format!(
        "https://portal.example/reset-password?token=prt_{}",
        "a1b2c3".repeat(12)
    );
    MailTemplates::default().password_reset.render(
        &Email::new("Ann@Example.com").unwrap(),
        &[("link", &link), ("minutes", "30"), ("product", "Acme portal")],
    )
}

#[tokio::test]
async fn smtp_delivers_both_bodies_to_a_real_server() {
    let Some(sink) = SmtpSink::start() else { return };
    let mailer = SmtpMailer::new(config(sink.port, SmtpSecurity::None)).unwrap();
    mailer.send(&message()).await.unwrap();
    let received = sink.wait_for(1).await;
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.to, "ann@example.com");
    assert!(mail.from.contains("no-reply@portal.example"), "{}", mail.from);
    assert_eq!(mail.subject, "Reset your password for Acme portal");
    let expected = format!(
        "https://portal.example/reset-password?token=prt_{}",
        "a1b2c3".repeat(12)
    );
    assert_eq!(
        link_in(&mail.text, "token=").as_deref(),
        Some(expected.as_str()),
        "{}",
        mail.text
    );
    assert!(mail.html.contains(&format!("href=\"{expected}\"")), "{}", mail.html);
    assert!(mail.text.contains("within 30 minutes"));
}

#[tokio::test]
async fn smtp_refuses_to_send_in_the_clear_when_starttls_is_not_offered() {
    let Some(sink) = SmtpSink::start() else { return };
    let mailer = SmtpMailer::new(config(sink.port, SmtpSecurity::StartTls)).unwrap();
    let err = mailer.send(&message()).await.unwrap_err();
    assert!(
        matches!(err, MailError::Unavailable(_) | MailError::Rejected(_)),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.received().is_empty(), "nothing was delivered without TLS");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_maps_to_mail_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mailer = SmtpMailer::new(config(port, SmtpSecurity::None)).unwrap();
    let err = mailer.send(&message()).await.unwrap_err();
    assert!(matches!(err, MailError::Unavailable(_)), "{err:?}");
    let portal: portal_core::PortalError = err.into();
    assert_eq!(portal.code(), portal_core::ErrorCode::MailUnavailable);
}

#[tokio::test]
async fn the_folder_mailer_writes_one_parseable_file_per_message() {
    let dir = std::env::temp_dir().join(format!("portal-folder-mailer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mailer = FolderMailer::new(&dir, "no-reply@portal.example").unwrap();
    mailer.send(&message()).await.unwrap();
    mailer.send(&message()).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 2);
    let bytes = std::fs::read(&files[0]).unwrap();
    let parsed = mailparse::parse_mail(&bytes).unwrap();
    let text = parsed.subparts[0].get_body().unwrap();
    assert!(link_in(&text, "token=prt_").is_some(), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_sender_that_is_no_mailbox_is_refused_and_debug_hides_the_password() {
    let mut bad = config(25, SmtpSecurity::None);
    bad.from = "not a mailbox".to_owned();
    assert!(matches!(SmtpMailer::new(bad), Err(MailError::Rejected(_))));
    let mut with_password = config(25, SmtpSecurity::StartTls);
    with_password.credentials = Some(("relay".to_owned(), SecretString::from("hunter2-smtp".to_owned())));
    assert!(!format!("{with_password:?}").contains("hunter2-smtp"));
}
