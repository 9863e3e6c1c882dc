//! A real SMTP server for tests: `aiosmtpd` (PyPI) on a free loopback port, storing every
//! message it receives in a Maildir, which [`SmtpSink::wait_for`] reads back and parses.
//!
//! The Python interpreter that has `aiosmtpd` is named by `PORTAL_TEST_AIOSMTPD_PYTHON`
//! (`.ci/run` installs it in a venv under `/var/tmp` and sets it); without it,
//! [`SmtpSink::start`] returns `None` and the test says it was skipped, as the Postgres
//! tests do. Include it with `#[path = "…/smtp_sink/mod.rs"] mod smtp_sink;`.
#![allow(dead_code, reason = "each test binary uses a different subset of the helpers")]
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "a harness that cannot start fails the test"
)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable naming a Python interpreter that can `import aiosmtpd`.
pub(crate) const AIOSMTPD_VAR: &str = "PORTAL_TEST_AIOSMTPD_PYTHON";

/// A running `aiosmtpd`, stopped (and its Maildir removed) on drop.
pub(crate) struct SmtpSink {
    child: Child,
    /// The port it listens on, at 127.0.0.1.
    pub(crate) port: u16,
    dir: PathBuf,
}

/// One received message, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// The `To` header.
    pub(crate) to: String,
    /// The `From` header.
    pub(crate) from: String,
    /// The `Subject` header, decoded.
    pub(crate) subject: String,
    /// The `text/plain` part, decoded.
    pub(crate) text: String,
    /// The `text/html` part, decoded.
    pub(crate) html: String,
}

impl SmtpSink {
    /// Starts the server, or `None` (printing why) when `PORTAL_TEST_AIOSMTPD_PYTHON` is
    /// unset.
    pub(crate) fn start() -> Option<Self> {
        let Some(python) = std::env::var_os(AIOSMTPD_VAR) else {
            eprintln!("skipped: {AIOSMTPD_VAR} is unset (`.ci/run` installs aiosmtpd and sets it)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("portal-smtp-sink-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let sink = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(sink)
    }

    /// Every message received so far, oldest first.
    pub(crate) fn received(&self) -> Vec<Received> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok());
        files
            .iter()
            .filter_map(|path| std::fs::read(path).ok())
            .map(|bytes| parse(&bytes))
            .collect()
    }

    /// Waits (up to 20 s) until `count` messages have arrived, and returns them.
    pub(crate) async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{count} messages expected, {} arrived",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn parse(bytes: &[u8]) -> Received {
    use mailparse::MailHeaderMap;
    let mail = mailparse::parse_mail(bytes).expect("a received message parses");
    let header = |name: &str| mail.headers.get_first_value(name).unwrap_or_default();
    let mut text = String::new();
    let mut html = String::new();
    for part in mail.parts() {
        match part.ctype.mimetype.as_str() {
            "text/plain" => text = part.get_body().expect("a text body"),
            "text/html" => html = part.get_body().expect("an HTML body"),
            _ => {}
        }
    }
    Received {
        to: header("To"),
        from: header("From"),
        subject: header("Subject"),
        text,
        html,
    }
}

/// The first `http(s)://…` link in `text` that contains `needle`.
pub(crate) fn link_in(text: &str, needle: &str) -> Option<String> {
    text.split_whitespace()
        .map(|word| word.trim_matches(|c: char| matches!(c, '<' | '>' | '"' | '(' | ')')))
        .find(|word| (word.starts_with("http://") || word.starts_with("https://")) && word.contains(needle))
        .map(str::to_owned)
}
