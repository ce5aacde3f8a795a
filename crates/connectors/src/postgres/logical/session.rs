//! A replication session: PostgreSQL's streaming replication protocol on a
//! connection opened with `replication=database`, which the `postgres` crate
//! does not speak (it has no CopyBoth). The frames are few: the startup and
//! authentication of any session (trust, password, MD5, SCRAM-SHA-256; TLS
//! as `sslmode` asks), `START_REPLICATION`, then CopyData both ways: the
//! server's XLogData (pgoutput messages) and keepalives, our standby status.

use crate::{ConnectorError, ErrorKind};
use bytes::BytesMut;
use postgres::config::{Host, SslMode};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

trait Socket: Read + Write + Send {}
impl<T: Read + Write + Send> Socket for T {}

pub struct Session {
    socket: Box<dyn Socket>,
    /// Bytes read and not yet framed into messages.
    buffer: Vec<u8>,
    /// The raw socket, for read timeouts (None on a Unix socket behind TLS, which never happens).
    tcp: Option<TcpStream>,
    unix: Option<std::os::unix::net::UnixStream>,
    location: String,
    /// The read mode the socket is in (see `set_timeout`).
    waiting: Option<Option<Duration>>,
}

/// What the server sent in CopyData.
pub enum Frame {
    /// WAL data: the log position it ends at, and a pgoutput message.
    Data { wal_end: u64, message: Vec<u8> },
    /// The server's position, and whether it wants an answer now.
    Keepalive { wal_end: u64, reply: bool },
}

fn io_error(location: &str, e: io::Error) -> ConnectorError {
    ConnectorError::new(ErrorKind::Unavailable, format!("replication session with {location}: {e}"))
}

impl Session {
    /// Opens a replication session with the server of `config`.
    pub fn connect(config: &postgres::Config, tls: &super::super::tls::PgTls, location: &str) -> Result<Session, ConnectorError> {
        let host = config.get_hosts().first().cloned().unwrap_or(Host::Tcp("localhost".into()));
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let timeout = config.get_connect_timeout().copied().unwrap_or(Duration::from_secs(10));
        let fail = |e| io_error(location, e);
        let (mut socket, tcp, unix): (Box<dyn Socket>, _, _) = match &host {
            Host::Tcp(name) => {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port))
                    .map_err(fail)?
                    .next()
                    .ok_or_else(|| ConnectorError::new(ErrorKind::Unavailable, format!("{location}: host {name} has no address")))?;
                let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
                tcp.set_nodelay(true).map_err(fail)?;
                (Box::new(tcp.try_clone().map_err(fail)?), Some(tcp), None)
            }
            Host::Unix(dir) => {
                let unix = std::os::unix::net::UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).map_err(fail)?;
                (Box::new(unix.try_clone().map_err(fail)?), None, Some(unix))
            }
        };
        if let (Host::Tcp(name), Some(tcp)) = (&host, &tcp) {
            if config.get_ssl_mode() != SslMode::Disable {
                let mut buf = BytesMut::new();
                frontend::ssl_request(&mut buf);
                socket.write_all(&buf).map_err(fail)?;
                let mut answer = [0u8; 1];
                socket.read_exact(&mut answer).map_err(fail)?;
                if answer[0] == b'S' {
                    let server = rustls::pki_types::ServerName::try_from(name.clone())
                        .unwrap_or_else(|_| rustls::pki_types::ServerName::try_from("localhost").expect("a valid name"));
                    let conn = rustls::ClientConnection::new(tls.client.clone(), server).map_err(|e| {
                        ConnectorError::new(ErrorKind::Unavailable, format!("replication session with {location}: TLS: {e}"))
                    })?;
                    let mut stream = rustls::StreamOwned::new(conn, tcp.try_clone().map_err(fail)?);
                    // The handshake now, so that a refused certificate says why.
                    while stream.conn.is_handshaking() {
                        stream.conn.complete_io(&mut stream.sock).map_err(|e| match tls.explain(&e) {
                            Some(refused) => {
                                ConnectorError::new(ErrorKind::Unavailable, format!("replication session with {location}: {refused}"))
                            }
                            None => fail(e),
                        })?;
                    }
                    socket = Box::new(stream);
                } else if config.get_ssl_mode() == SslMode::Require {
                    return Err(ConnectorError::new(
                        ErrorKind::Unavailable,
                        format!("{location} offers no TLS and the url says {}; turn ssl on in the server, or lower sslmode", tls.settings),
                    ));
                }
            }
        }
        let mut session = Session { socket, buffer: Vec::new(), tcp, unix, location: location.to_string(), waiting: None };
        session.start_up(config)?;
        Ok(session)
    }

    fn start_up(&mut self, config: &postgres::Config) -> Result<(), ConnectorError> {
        let user = config.get_user().unwrap_or("postgres").to_string();
        let dbname = config.get_dbname().unwrap_or(&user).to_string();
        let mut buf = BytesMut::new();
        let params =
            [("user", user.as_str()), ("database", dbname.as_str()), ("replication", "database"), ("application_name", "dualsync")];
        frontend::startup_message(params, &mut buf).map_err(|e| io_error(&self.location, e))?;
        self.send(&buf)?;
        let password = config.get_password().map(|p| p.to_vec());
        let need_password = || {
            password.clone().ok_or_else(|| {
                ConnectorError::new(ErrorKind::Unavailable, "the server asks for a password: set password_env or password_file".to_string())
            })
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let (tag, body) = self.message(None)?.expect("a read without a timeout returns a message");
            match tag {
                b'R' => {
                    let code = be_i32(&body, 0);
                    let mut out = BytesMut::new();
                    match code {
                        0 => continue,
                        3 => frontend::password_message(&need_password()?, &mut out),
                        5 => {
                            let salt = [body[4], body[5], body[6], body[7]];
                            frontend::password_message(md5_hash(user.as_bytes(), &need_password()?, salt).as_bytes(), &mut out)
                        }
                        10 => {
                            let s = sasl::ScramSha256::new(&need_password()?, sasl::ChannelBinding::unsupported());
                            let r = frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut out);
                            scram = Some(s);
                            r
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| self.protocol("SASL continue before SASL start"))?;
                            s.update(&body[4..]).map_err(|e| self.auth_failed(e))?;
                            frontend::sasl_response(s.message(), &mut out)
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| self.protocol("SASL final before SASL start"))?;
                            s.finish(&body[4..]).map_err(|e| self.auth_failed(e))?;
                            continue;
                        }
                        other => return Err(self.protocol(&format!("authentication method {other} is not supported"))),
                    }
                    .map_err(|e| io_error(&self.location, e))?;
                    self.send(&out)?;
                }
                b'E' => return Err(self.server_error(&body)),
                b'Z' => return Ok(()),
                _ => {} // parameter status, backend key data, notices
            }
        }
    }

    /// Starts streaming the slot's changes committed at or after `from`.
    pub fn start(&mut self, slot: &str, publication: &str, from: u64) -> Result<(), ConnectorError> {
        let sql = format!(
            "START_REPLICATION SLOT {slot} LOGICAL {:X}/{:X} (proto_version '1', publication_names '{publication}', messages 'true')",
            from >> 32,
            from & 0xffff_ffff
        );
        let mut buf = BytesMut::new();
        frontend::query(&sql, &mut buf).map_err(|e| io_error(&self.location, e))?;
        self.send(&buf)?;
        loop {
            let (tag, body) = self.message(None)?.expect("a read without a timeout returns a message");
            match tag {
                b'W' => return Ok(()),
                b'E' => return Err(self.server_error(&body)),
                _ => {}
            }
        }
    }

    /// The next CopyData frame, or None when nothing came within `wait`.
    pub fn next(&mut self, wait: Duration) -> Result<Option<Frame>, ConnectorError> {
        loop {
            let Some((tag, body)) = self.message(Some(wait))? else { return Ok(None) };
            match tag {
                b'd' if body.first() == Some(&b'w') && body.len() >= 25 => {
                    return Ok(Some(Frame::Data { wal_end: be_u64(&body, 9), message: body[25..].to_vec() }));
                }
                b'd' if body.first() == Some(&b'k') && body.len() >= 18 => {
                    return Ok(Some(Frame::Keepalive { wal_end: be_u64(&body, 1), reply: body[17] == 1 }));
                }
                b'E' => return Err(self.server_error(&body)),
                b'c' | b'C' => {
                    return Err(ConnectorError::new(ErrorKind::Unavailable, format!("{}: the server ended replication", self.location)))
                }
                _ => {}
            }
        }
    }

    /// Standby status: everything before `flushed` is stored by the reader;
    /// `received` is how far the stream got.
    pub fn status(&mut self, received: u64, flushed: u64) -> Result<(), ConnectorError> {
        let micros_2000 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as i64 - 946_684_800_000_000;
        let mut body = Vec::with_capacity(34);
        body.push(b'r');
        body.extend_from_slice(&received.to_be_bytes());
        body.extend_from_slice(&flushed.to_be_bytes());
        body.extend_from_slice(&flushed.to_be_bytes());
        body.extend_from_slice(&micros_2000.to_be_bytes());
        body.push(0);
        let mut buf = BytesMut::new();
        frontend::CopyData::new(&body[..]).map_err(|e| io_error(&self.location, e))?.write(&mut buf);
        self.send(&buf)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), ConnectorError> {
        self.set_timeout(None)?;
        self.socket.write_all(bytes).and_then(|_| self.socket.flush()).map_err(|e| io_error(&self.location, e))
    }

    /// How reads wait: blocking (None), up to a time, or not at all (zero).
    fn set_timeout(&mut self, wait: Option<Duration>) -> Result<(), ConnectorError> {
        if self.waiting == Some(wait) {
            return Ok(());
        }
        let nonblocking = wait.is_some_and(|w| w.is_zero());
        let timeout = if nonblocking { None } else { wait };
        let r = match (&self.tcp, &self.unix) {
            (Some(t), _) => t.set_nonblocking(nonblocking).and_then(|_| t.set_read_timeout(timeout)),
            (_, Some(u)) => u.set_nonblocking(nonblocking).and_then(|_| u.set_read_timeout(timeout)),
            _ => Ok(()),
        };
        r.map_err(|e| io_error(&self.location, e))?;
        self.waiting = Some(wait);
        Ok(())
    }

    /// One whole message (tag, body); with `wait`, None when none arrived in time.
    fn message(&mut self, wait: Option<Duration>) -> Result<Option<(u8, Vec<u8>)>, ConnectorError> {
        self.set_timeout(wait)?;
        loop {
            if self.buffer.len() >= 5 {
                let len = be_i32(&self.buffer, 1) as usize;
                if self.buffer.len() > len {
                    let body = self.buffer[5..len + 1].to_vec();
                    let tag = self.buffer[0];
                    self.buffer.drain(..len + 1);
                    return Ok(Some((tag, body)));
                }
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.socket.read(&mut chunk) {
                Ok(0) => {
                    return Err(ConnectorError::new(
                        ErrorKind::Unavailable,
                        format!("{}: the server closed the replication session", self.location),
                    ))
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if wait.is_some() && matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&self.location, e)),
            }
        }
    }

    fn server_error(&self, body: &[u8]) -> ConnectorError {
        let (mut code, mut message) = (String::new(), String::new());
        for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
            let text = String::from_utf8_lossy(&field[1..]).into_owned();
            match field[0] {
                b'C' => code = text,
                b'M' => message = text,
                _ => {}
            }
        }
        // A WAL file the session was reading was removed (see `WAL_MOVED_ON`). The server
        // takes that error's code from errno, which is not always ENOENT (58P01) by then:
        // its English message tells it too.
        if code == "58P01" || message.contains("has already been removed") {
            return ConnectorError::new(ErrorKind::Busy, format!("{} (replication session): {message}; {WAL_MOVED_ON}", self.location));
        }
        let kind = match code.as_str() {
            // The slot or publication is gone, or the user may not replicate: a person must act.
            "42704" | "42501" => ErrorKind::Schema,
            // The slot is in use by another session (a process that is ending).
            "55006" => ErrorKind::Busy,
            _ => ErrorKind::Unavailable,
        };
        ConnectorError::new(kind, format!("{} (replication session): {message}", self.location))
    }

    fn protocol(&self, what: &str) -> ConnectorError {
        ConnectorError::new(ErrorKind::Unavailable, format!("replication session with {}: {what}", self.location))
    }

    fn auth_failed(&self, e: io::Error) -> ConnectorError {
        ConnectorError::new(ErrorKind::Unavailable, format!("replication session with {}: authentication failed: {e}", self.location))
    }
}

/// Said of a session whose WAL was removed under it. Seen once on PostgreSQL
/// 15 under many sessions and forced checkpoints (tests creating databases
/// side by side): a session re-reading a slot from far back failed on a
/// segment a checkpoint had just removed, while the slot was not `lost`, so
/// its restart point had moved past that segment. A new session starts from
/// the slot's restart point; a slot that did lose WAL is reported as `lost`.
pub const WAL_MOVED_ON: &str = "the slot moved on while the session read it: a new session reads on";

pub fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
