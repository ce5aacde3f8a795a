//! The HTTP side of an OData app: one agent per service (its connections are
//! reused), the sign-in header, a bound on requests in flight, and retries.
//!
//! - 429 and 503 are the service asking for time: the request waits its
//!   `Retry-After` (or a doubling pause) and goes again, for any method: the
//!   service did not process it.
//! - A request that got no answer (reset, timeout) goes again only when it is
//!   idempotent (GET, and the token request); a `$batch` that may have
//!   written comes back as [`Sent::InDoubt`] for the writer to check.

use super::auth::SignIn;
use crate::{ConnectorError, ErrorKind};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use ureq::http;

/// Attempts per request before its failure is reported.
const ATTEMPTS: u32 = 8;
/// The longest single wait a service's `Retry-After` gets.
const MAX_WAIT: Duration = Duration::from_secs(120);

pub struct Client {
    agent: ureq::Agent,
    root: String,
    sign_in: SignIn,
    slots: Arc<Slots>,
}

/// An answer: status, the headers dualsync reads, and the body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The service's clock (`Date`), where it sent one.
    pub date: Option<String>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What became of a request that may change data.
pub enum Sent {
    Answered(Answer),
    /// No answer came (the connection broke): it may or may not have been applied.
    InDoubt(String),
}

/// Requests in flight to one service, shared by all its connections.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn take(self: &Arc<Self>) -> SlotGuard {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        SlotGuard(self.clone())
    }
}

struct SlotGuard(Arc<Slots>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

pub fn agent(timeout: Duration) -> Result<ureq::Agent, ConnectorError> {
    let mut tls = ureq::tls::TlsConfig::builder();
    // The machine's trust store, as the database connections use it (webpki's
    // bundled roots otherwise, where the machine has none).
    if let Some(file) = dualsync_tls::system_roots_file() {
        if let Ok(pem) = std::fs::read(&file) {
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if !certs.is_empty() {
                tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
            }
        }
    }
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_idle_connections_per_host(16)
        .tls_config(tls.build())
        .build();
    Ok(config.into())
}

impl Client {
    pub fn new(root: &str, sign_in: SignIn, timeout: Duration, max_requests: usize) -> Result<Client, ConnectorError> {
        let slots = Arc::new(Slots { free: Mutex::new(max_requests.max(1)), freed: Condvar::new() });
        Ok(Client { agent: agent(timeout)?, root: root.to_string(), sign_in, slots })
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// A GET of `path` (relative to the service root, already encoded), retried until answered.
    pub fn get(&self, path: &str, accept: &str, prefer: Option<&str>) -> Result<Answer, ConnectorError> {
        let mut headers = vec![("Accept", accept.to_string())];
        if let Some(p) = prefer {
            headers.push(("Prefer", p.to_string()));
        }
        match self.send("GET", path, &headers, None, true)? {
            Sent::Answered(a) => Ok(a),
            Sent::InDoubt(why) => Err(unavailable(&self.root, path, &why)),
        }
    }

    /// Sends a request that may write; retried while the service asks for time.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        idempotent: bool,
    ) -> Result<Sent, ConnectorError> {
        let url = format!("{}/{}", self.root, path);
        let mut pause = Duration::from_millis(200);
        let mut signed_again = false;
        for attempt in 1..=ATTEMPTS {
            let authorization = self.sign_in.header(&self.agent)?;
            let mut request = http::Request::builder().method(method).uri(&url);
            if let Some(a) = &authorization {
                request = request.header("Authorization", a.as_str());
            }
            for (name, value) in headers {
                request = request.header(*name, value.as_str());
            }
            let outcome = {
                let _slot = self.slots.take();
                let started = Instant::now();
                let sent = match body {
                    Some(b) => request.body(b.to_vec()).map(|r| self.agent.run(r)),
                    None => request.body(()).map(|r| self.agent.run(r)),
                };
                let sent =
                    sent.map_err(|e| ConnectorError::new(ErrorKind::Database, format!("cannot build the request to {path}: {e}")))?;
                (sent, started.elapsed())
            };
            let response = match outcome.0 {
                Ok(r) => r,
                Err(e) => {
                    let why = describe(&e);
                    if !idempotent && sent_maybe(&e) {
                        return Ok(Sent::InDoubt(why));
                    }
                    if attempt == ATTEMPTS || !retryable(&e) {
                        return Err(unavailable(&self.root, path, &why));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_WAIT);
                    continue;
                }
            };
            let status = response.status().as_u16();
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            let (date, retry_after) = (header("date"), header("retry-after"));
            let mut response = response;
            let body = response.body_mut().with_config().limit(u64::MAX).read_to_vec().map_err(|e| {
                ConnectorError::new(
                    ErrorKind::Unavailable,
                    format!("{}: reading the answer to {method} {}: {e}", self.root, path_only(path)),
                )
            });
            let body = match body {
                Ok(b) => b,
                // The answer broke off: a read goes again, a write may have been applied.
                Err(_) if idempotent && attempt < ATTEMPTS => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_WAIT);
                    continue;
                }
                Err(e) if idempotent => return Err(e),
                Err(e) => return Ok(Sent::InDoubt(e.message)),
            };
            if (status == 429 || status == 503) && attempt < ATTEMPTS {
                std::thread::sleep(retry_after.as_deref().and_then(parse_retry_after).unwrap_or(pause).min(MAX_WAIT));
                pause = (pause * 2).min(MAX_WAIT);
                continue;
            }
            if status == 401 && !signed_again && self.sign_in.renews() {
                // A token the service no longer takes: sign in anew, once.
                self.sign_in.forget();
                signed_again = true;
                continue;
            }
            return Ok(Sent::Answered(Answer { status, body, date }));
        }
        Err(unavailable(&self.root, path, "the service kept answering 429/503 (busy)"))
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(s) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = super::values::http_date_micros(v)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_micros() as i64;
    Some(Duration::from_micros(at.saturating_sub(now).max(0) as u64))
}

/// A path for messages: no query (it may carry key values).
pub fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

fn unavailable(root: &str, path: &str, why: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorKind::Unavailable,
        format!("the OData service at {} did not answer {}: {why}", dualsync_model::config::redact_url(root), path_only(path)),
    )
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t}); raise timeout_seconds if the service is slow"),
        ureq::Error::HostNotFound => "the host name does not resolve".into(),
        ureq::Error::ConnectionFailed => "the connection was refused".into(),
        ureq::Error::Io(io) => format!("the connection broke: {io}"),
        ureq::Error::Tls(t) => format!("TLS refused: {t}"),
        ureq::Error::Rustls(t) => format!(
            "TLS refused: {t}; check that the service's certificate is issued for this host by a CA the machine trusts (SSL_CERT_FILE)"
        ),
        other => other.to_string(),
    }
}

/// Whether a request that failed this way may have reached the service.
fn sent_maybe(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(_) | ureq::Error::Timeout(_))
}

fn retryable(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed)
}

/// Percent-encodes a query value or a key segment (RFC 3986 unreserved kept).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'(' | b')' | b',' | b'\'' | b':' | b'$' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
