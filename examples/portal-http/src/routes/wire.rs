//! Checks of a running server over a raw TCP connection, for what a router test cannot
//! see: whether a keep-alive connection survives a refused request. Each server's tests
//! call [`check_keep_alive`] against a real listener on a loopback port.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a check waits for an answer.
const WAIT: Duration = Duration::from_secs(10);

/// An answer read off the wire.
#[derive(Debug, Clone)]
pub struct WireResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl WireResponse {
    /// The first value of the header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Whether the server said it closes the connection after this answer.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// One HTTP/1.1 connection to a server.
#[derive(Debug)]
pub struct WireClient {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl WireClient {
    /// Connects to `addr`.
    ///
    /// # Errors
    ///
    /// The connection's error, as text.
    pub async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        Ok(Self {
            stream,
            buffer: Vec::new(),
        })
    }

    /// Sends `request` (raw bytes, written as they are) and reads one answer.
    ///
    /// # Errors
    ///
    /// Text saying what failed: the write, the read (a connection closed before a whole
    /// answer came), or the answer's framing.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<WireResponse, String> {
        // A server may answer (and close) before the whole request is written, as it does
        // for a body over the limit: the answer is still read.
        let written = self.stream.write_all(request).await;
        let answer = tokio::time::timeout(WAIT, self.read_response())
            .await
            .map_err(|_| "no answer within 10 s".to_owned())?;
        match (written, answer) {
            (_, Ok(answer)) => Ok(answer),
            (Err(write), Err(read)) => Err(format!("writing the request: {write}; then {read}")),
            (Ok(()), Err(read)) => Err(read),
        }
    }

    /// Whether the server closed the connection: a read finds its end within ten seconds,
    /// as long as an answer may take (a server may first drain the rest of a refused body,
    /// which takes longer than a second on a loaded machine; a connection that stays open
    /// costs the whole wait).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(WAIT, self.stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 8192];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection before a whole answer".to_owned());
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_response(&mut self) -> Result<WireResponse, String> {
        let head_end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        self.buffer.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not a status line: {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            self.read_chunked().await?
        } else {
            let length: usize = find("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            while self.buffer.len() < length {
                self.fill().await?;
            }
            self.buffer.drain(..length).collect()
        };
        Ok(WireResponse { status, headers, body })
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                self.fill().await?;
            };
            let size_text = String::from_utf8_lossy(&self.buffer[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("not a chunk size: {size_text:?}"))?;
            self.buffer.drain(..line_end + 2);
            while self.buffer.len() < size + 2 {
                self.fill().await?;
            }
            body.extend(self.buffer.drain(..size));
            self.buffer.drain(..2);
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

/// A request with the given head lines and body, `Content-Length` set.
fn request(method: &str, path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Checks that a server at `addr` (serving the route table with the body limit
/// `body_limit`) keeps its word on keep-alive connections: after each refused request (a
/// body far over the limit, requests without or with bad credentials, an unknown route or
/// a wrong method with a body just under the limit, a malformed body), either the answer
/// said `Connection: close` and the server closed the connection, or the next request on
/// the same connection is answered. Every refusal is problem+json. Returns how many
/// refusals were checked.
///
/// # Errors
///
/// A description of the first broken promise.
pub async fn check_keep_alive(addr: SocketAddr, body_limit: usize) -> Result<usize, String> {
    let json = "Content-Type: application/json";
    // Far over the limit, so that the server cannot have read it all when it answers.
    let big = vec![b'a'; body_limit.saturating_mul(200).max(200_000)];
    let near = vec![b' '; body_limit.saturating_sub(16)];
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a body over the limit",
            request("POST", "/v1/orgs", &[json, "Authorization: Bearer pss_x"], &big),
            413,
        ),
        (
            "no credentials, with a body",
            request("POST", "/v1/orgs", &[json], br#"{"slug":"a","name":"b"}"#),
            401,
        ),
        (
            "bad credentials, with a body",
            request(
                "POST",
                "/v1/orgs",
                &[json, "Authorization: Bearer pss_nope"],
                br#"{"slug":"a","name":"b"}"#,
            ),
            401,
        ),
        (
            "an unknown route, with a body",
            request("POST", "/v1/nowhere", &[json], &near),
            404,
        ),
        (
            "a wrong method, with a body",
            request("PATCH", "/v1/orgs", &[json], &near),
            405,
        ),
        (
            "a malformed body",
            request("POST", "/v1/auth/sign-in", &[json], b"{\"email\": "),
            400,
        ),
    ];
    for (what, bytes, status) in &cases {
        let mut client = WireClient::connect(addr).await?;
        let answer = client.exchange(bytes).await.map_err(|e| format!("{what}: {e}"))?;
        if answer.status != *status {
            return Err(format!("{what}: status {} instead of {status}", answer.status));
        }
        if answer.header("content-type") != Some(crate::openapi::PROBLEM_JSON) {
            return Err(format!(
                "{what}: {} answered as {:?}, not problem+json",
                answer.status,
                answer.header("content-type")
            ));
        }
        let next = request("GET", crate::routes::OPENAPI_PATH, &[], b"");
        if answer.closes() {
            if !client.is_closed().await {
                return Err(format!("{what}: `Connection: close` but the connection stays open"));
            }
        } else {
            let again = client
                .exchange(&next)
                .await
                .map_err(|e| format!("{what}: the next request on the same connection failed: {e}"))?;
            if again.status != 200 {
                return Err(format!("{what}: the next request answered {}", again.status));
            }
        }
    }
    Ok(cases.len())
}
