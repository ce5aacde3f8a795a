//! A real OData v4 server per test: SAP CAP (`@sap/cds` on Node 22) serving a CDS model from a
//! SQLite file, bound to 127.0.0.1 on a port the system picks.
//!
//! The npm fixture in `crates/testkit/odata` holds CAP and Node 22 (`npm ci --prefix
//! crates/testkit/odata`); without it the tests skip with a message saying so, and under `CI=true`
//! they fail instead. Each [`ODataServer`] is a CAP project in its own temporary folder:
//!
//! - the model is written to `db/schema.cds`. A model without a `service` of its own is served by
//!   a generated service `S` at `/odata/v4/s` ([`ODataServer::url`]) exposing every entity under its
//!   short name (`t.Item` as the entity set `Item`; a short name found in two namespaces is exposed
//!   as `t_Item`). A model that declares services is served as written;
//! - the schema is deployed to a new SQLite file, whose tables CAP names `<namespace>_<Entity>`
//!   (`t_Item`): [`ODataServer::exec`] and [`ODataServer::texts`] reach it directly, for fixtures
//!   and assertions, while CAP serves it;
//! - `/__faults` injects faults into the next requests to `/odata/*` ([`ODataServer::fault`]);
//! - the server's output goes to a log file ([`ODataServer::log`]), shown when it fails to start;
//! - sign-in is none, HTTP basic ([`Options::basic`]) or OAuth2 bearer JWTs ([`Options::bearer`])
//!   from a real token service, [`Idp`] (`oidc-provider`, client credentials), started per test too.
//!
//! What CAP does that a client must cope with: decimals are JSON strings (`"2.50"`); the page size
//! is the server's (`Prefer: odata.maxpagesize` is ignored), with an `@odata.nextLink` holding a
//! `$skiptoken`; an entity with `@odata.etag` refuses a write without `If-Match` (428) or with a
//! stale one (412), and takes `If-Match: *`. A JSON `$batch` needs relative URLs (`Item('a')`);
//! in an `atomicityGroup` with a failed request, the group is rolled back but its other requests
//! still answer 201/200 each. A duplicate key answers 500 (`UNIQUE constraint failed: t_Item.k`),
//! a too long value 400 with the field as `target`.
//!
//! ```no_run
//! use dualsync_testkit::odata::{ODataServer, Options};
//! let Some(server) = ODataServer::start(
//!     "namespace t; entity Item { key k: String(100); name: String(100); }",
//!     Options::default(),
//! ) else { return };
//! server.exec("INSERT INTO t_Item (k, name) VALUES ('a', 'A')");
//! let items = format!("{}/Item", server.url()); // http://127.0.0.1:PORT/odata/v4/s/Item
//! server.fault(r#"{"status": 503, "retry_after": 1, "count": 2}"#);
//! // … the client under test reads `items`, retries twice, then succeeds …
//! assert!(server.faults().contains(r#""503":2"#));
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The service root of a model without services of its own.
pub const SERVICE_PATH: &str = "/odata/v4/s";

/// How long a server may take to deploy its model and listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How the server is set up; `Options::default()` is no login and CAP's page size.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// HTTP basic authentication with this one user `(name, password)`: a request without it (or
    /// with a wrong password) gets 401 and `WWW-Authenticate: Basic realm="Users"`. `None`:
    /// anyone is let in, as a privileged user. The password must not be empty (CAP would take any)
    /// and neither may hold a `:` (CAP cuts the credentials at every `:`, and would refuse them).
    pub basic: Option<(String, String)>,
    /// The page size of every entity set (CAP's `cds.query.limit`, as both default and maximum):
    /// a read answers at most this many rows, and an `@odata.nextLink` when there are more, even
    /// with a larger `$top`. `None`: CAP's 1000.
    pub page_size: Option<usize>,
    /// OAuth2 access tokens: every request needs `Authorization: Bearer <JWT>`, checked against
    /// the token service's keys (see [`BearerCheck`]; [`Idp::bearer_check`] gives one for an
    /// [`Idp`]). Not together with `basic`.
    pub bearer: Option<BearerCheck>,
    /// A PATCH to an entity that does not exist creates it (CAP's `runtime.patch_as_upsert`),
    /// as Dataverse's does: the service a `dialect = "dataverse"` app expects.
    pub patch_as_upsert: bool,
    /// Change tracking as Dataverse serves it (`odata/delta.js`): a read with `Prefer:
    /// odata.track-changes` ends with a delta link, which answers the rows created, changed
    /// (through the API) or deleted since. Entity sets with one key column only.
    pub track_changes: bool,
}

/// How the server checks bearer tokens (`odata/bearer-auth.js`, with `jose`): a JWT signed with a
/// key from `jwks_url`, its `iss` being `issuer` and its `aud` holding `audience`, not expired.
/// Without one: 401 and `WWW-Authenticate: Bearer realm="dualsync-test"`; with a bad or expired
/// one: 401 and `error="invalid_token"`, the reason in `error_description`; when the keys cannot
/// be fetched: 503. A valid token makes the request a privileged CAP user.
#[derive(Clone, Debug)]
pub struct BearerCheck {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
}

/// One CAP server, killed (with its process group) and its folder removed on drop.
pub struct ODataServer {
    child: Child,
    /// Held open: the server ends by itself when it closes, even if this process is killed.
    stdin: Option<ChildStdin>,
    port: u16,
    dir: tempfile::TempDir,
}

/// An answer to [`ODataServer::request`].
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// A header's value, by name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The npm fixture: CAP, Node 22 and the server's JS.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("odata")
}

impl ODataServer {
    /// Deploys `model` (CDS source, see the module's documentation) to a new SQLite file and
    /// serves it, or None when the npm fixture is not installed outside CI (the reason is printed).
    /// Panics, with the server's output, when it does not start.
    pub fn start(model: &str, options: Options) -> Option<ODataServer> {
        let node = node("OData")?;
        if let Some((user, password)) = &options.basic {
            assert!(!password.is_empty(), "basic auth needs a password: CAP lets an empty one in with any password");
            assert!(!user.contains(':') && !password.contains(':'), "CAP's basic auth cuts the credentials at every `:`");
            assert!(options.bearer.is_none(), "basic and bearer are two ways of signing in: choose one");
        }

        let dir = tempfile::Builder::new().prefix("dualsync-odata-").tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("db")).expect("db folder");
        std::fs::write(dir.path().join("db/schema.cds"), model).expect("write the model");
        std::fs::write(dir.path().join("package.json"), package_json(&options)).expect("write package.json");
        let env: &[(&str, &str)] = if options.track_changes { &[("DUALSYNC_ODATA_TRACK_CHANGES", "1")] } else { &[] };
        let (child, stdin, port) = launch(&node, "server.js", dir.path(), env, "the OData server");
        Some(ODataServer { child, stdin, port, dir })
    }

    /// The service root of a model without services of its own: `http://127.0.0.1:PORT/odata/v4/s`
    /// (no trailing slash).
    pub fn url(&self) -> String {
        format!("{}{SERVICE_PATH}", self.base_url())
    }

    /// `http://127.0.0.1:PORT`, for a model that declares its own service paths.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The SQLite file CAP serves.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("db.sqlite")
    }

    /// Runs SQL (fixtures) on CAP's SQLite file, while CAP serves it: the next request sees it.
    /// Tables are `<namespace>_<Entity>` (`t_Item`); a `Timestamp` is ISO text
    /// (`2024-01-01T00:00:00.000Z`), a `Decimal` a REAL.
    pub fn exec(&self, sql: &str) {
        self.sqlite().execute_batch(sql).unwrap_or_else(|e| panic!("sqlite: {e}\n{sql}"));
    }

    /// The first column of a query's rows on CAP's SQLite file, as text (NULL as None).
    pub fn texts(&self, sql: &str) -> Vec<Option<String>> {
        let c = self.sqlite();
        let mut s = c.prepare(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        s.query_map([], |r| r.get::<_, rusqlite::types::Value>(0))
            .unwrap()
            .map(|v| match v.unwrap() {
                rusqlite::types::Value::Null => None,
                rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                rusqlite::types::Value::Real(f) => Some(f.to_string()),
                rusqlite::types::Value::Text(t) => Some(t),
                rusqlite::types::Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            })
            .collect()
    }

    fn sqlite(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.db_path()).expect("open CAP's SQLite file");
        c.busy_timeout(Duration::from_secs(30)).expect("busy timeout");
        c
    }

    /// Queues faults for the next requests to `/odata/*` (`POST /__faults`), in the order posted:
    ///
    /// - `{"status": 429, "retry_after": 1, "count": 2}`: the next 2 requests answer 429 with
    ///   `Retry-After: 1` (any status; `retry_after` optional, `count` 1 by default);
    /// - `{"reset": 1}`: the next request's connection is closed without an answer;
    /// - `{"reset_after_handling": 1}`: the next request runs (a `$batch` writes and commits), then
    ///   its connection is closed instead of the answer being sent;
    /// - `{"delay_ms": 3000, "count": 1}`: the next request waits that long, then runs;
    /// - `"match": "$batch"` beside any of these: only a request whose `METHOD /path?query`
    ///   contains the text takes the fault (here: the next `$batch`); others pass;
    /// - `{"clear": true}`: drops pending faults and zeroes the counters of [`ODataServer::faults`].
    pub fn fault(&self, json: &str) {
        let reply = self
            .request("POST", "/__faults", &[("Content-Type", "application/json")], Some(json))
            .unwrap_or_else(|e| panic!("POST /__faults: {e}\n{}", self.log()));
        assert_eq!(reply.status, 200, "POST /__faults {json}: {}", reply.body);
    }

    /// The fault counters (`GET /__faults`), JSON like
    /// `{"seen":7,"batches":2,"requests":["GET /odata/v4/s/$metadata",…],`
    /// `"injected":{"status":{"429":2},"reset":1,"reset_after_handling":0,"delay":0},"pending":0}`:
    /// `seen` counts every request to `/odata/*` (faulted ones too), `batches` those to `$batch`,
    /// `requests` lists them in order (the last 1000), `pending` the faults not yet taken.
    pub fn faults(&self) -> String {
        let reply = self.request("GET", "/__faults", &[], None).unwrap_or_else(|e| panic!("GET /__faults: {e}\n{}", self.log()));
        assert_eq!(reply.status, 200, "GET /__faults: {}", reply.body);
        reply.body
    }

    /// One plain HTTP/1.1 request to the server (`path` from the root: `/odata/v4/s/Item?$top=1`),
    /// on a new connection, for tests that look at the server themselves. An error when the
    /// connection ends without an answer (a `reset` fault).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> std::io::Result<Reply> {
        request(self.port, method, path, headers, body)
    }

    /// What the server printed so far (CAP's log, request lines, errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server and removes its folder (what dropping it does).
    pub fn stop(self) {}
}

impl Drop for ODataServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        kill(&mut self.child);
    }
}

/// A real OAuth2 token service per test: `oidc-provider` (`odata/idp.mjs`) with the
/// client-credentials grant only, for one client, bound to 127.0.0.1 on a port the system picks.
///
/// The client signs in with its secret in the form body (`client_secret_post`) or with HTTP basic
/// (`client_secret_basic`); a wrong id or secret gets 401 `{"error":"invalid_client",
/// "error_description":"client authentication failed"}`. Its access tokens are RS256 JWTs for the
/// audience [`Idp::AUDIENCE`] (the default resource: a token request needs no `resource`), lasting
/// the TTL given to [`Idp::start`] (also their `expires_in`), signed with a key made at start and
/// published at [`Idp::jwks_url`]. The client may ask for the scope `odata`, or none.
///
/// ```no_run
/// use dualsync_testkit::odata::{Idp, ODataServer, Options};
/// let Some(idp) = Idp::start("dualsync", "s3cr3t", 300) else { return };
/// let options = Options { bearer: Some(idp.bearer_check()), ..Options::default() };
/// let Some(server) = ODataServer::start("namespace t; entity Item { key k: Integer; }", options) else { return };
/// // … the client under test signs in at idp.token_url() and reads server.url() …
/// assert!(idp.issued() >= 1);
/// ```
pub struct Idp {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Idp {
    /// The audience (resource server) of every token.
    pub const AUDIENCE: &str = "urn:dualsync:odata";
    /// The scope a client may ask for.
    pub const SCOPE: &str = "odata";

    /// Starts the token service for the one client `client_id` with `secret`, its tokens lasting
    /// `ttl_seconds` (at least 1), or None when the npm fixture is not installed outside CI (as
    /// [`ODataServer::start`]). Panics, with its output, when it does not start.
    pub fn start(client_id: &str, secret: &str, ttl_seconds: u64) -> Option<Idp> {
        let node = node("OAuth2")?;
        assert!(ttl_seconds >= 1, "a token must last at least a second");
        assert!(!client_id.is_empty() && !secret.is_empty(), "the client needs an id and a secret");
        let dir = tempfile::Builder::new().prefix("dualsync-idp-").tempdir().expect("temp dir");
        let ttl = ttl_seconds.to_string();
        let env = [("IDP_CLIENT_ID", client_id), ("IDP_CLIENT_SECRET", secret), ("IDP_TTL", ttl.as_str())];
        let (child, stdin, port) = launch(&node, "idp.mjs", dir.path(), &env, "the token service");
        Some(Idp { child, stdin, port, dir })
    }

    /// `http://127.0.0.1:PORT`: the `iss` of its tokens.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The token endpoint, `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer())
    }

    /// The published keys, `http://127.0.0.1:PORT/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer())
    }

    /// What an [`ODataServer`] needs to take this service's tokens ([`Options::bearer`]).
    pub fn bearer_check(&self) -> BearerCheck {
        BearerCheck { jwks_url: self.jwks_url(), issuer: self.issuer(), audience: Idp::AUDIENCE.to_string() }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many token requests were answered with a token so far.
    pub fn issued(&self) -> u64 {
        self.count("issued")
    }

    /// How many token requests were refused so far (a wrong secret, an unknown client or scope…).
    pub fn refused(&self) -> u64 {
        self.count("refused")
    }

    fn count(&self, name: &str) -> u64 {
        let reply = request(self.port, "GET", "/__issued", &[], None).unwrap_or_else(|e| panic!("GET /__issued: {e}\n{}", self.log()));
        assert_eq!(reply.status, 200, "GET /__issued: {}", reply.body);
        json_number(&reply.body, name).unwrap_or_else(|| panic!("no {name} in {}", reply.body))
    }

    /// Asks for a token itself (client credentials, the secret in the form body): the token, or
    /// the answer when it is refused (`Err((status, body))`).
    pub fn token(&self, client_id: &str, secret: &str) -> Result<String, (u16, String)> {
        let body = format!("grant_type=client_credentials&client_id={}&client_secret={}", form(client_id), form(secret));
        let reply = request(self.port, "POST", "/token", &[("Content-Type", "application/x-www-form-urlencoded")], Some(&body))
            .unwrap_or_else(|e| panic!("POST /token: {e}\n{}", self.log()));
        match json_text(&reply.body, "access_token") {
            Some(token) if reply.status == 200 => Ok(token),
            _ => Err((reply.status, reply.body)),
        }
    }

    /// What it printed so far: `issued token N to CLIENT (expires in S s)` and `refused token
    /// request: ERROR (DESCRIPTION)` per request, errors.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        drop(self.stdin.take());
        kill(&mut self.child);
    }
}

/// Node 22 from the npm fixture, or None (the reason printed) when the fixture is not installed
/// outside CI; under `CI=true` a panic. `what` names the tests for the message.
fn node(what: &str) -> Option<PathBuf> {
    let fixture = fixture();
    let node = fixture.join("node_modules/node/bin/node");
    if !node.is_file() || !fixture.join("node_modules/@sap/cds/package.json").is_file() {
        let why = format!("the {what} tests need CAP and Node 22 in {}/node_modules, which are missing", fixture.display());
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}; CI requires them: run `npm ci --prefix crates/testkit/odata --no-audit --no-fund` (as .ci/run does)");
        }
        // Straight to the stderr handle: the test harness captures eprintln!, and a skip must be seen.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {why} (install them: npm ci --prefix crates/testkit/odata)");
        return None;
    }
    Some(node)
}

/// Runs one of the fixture's scripts with `node` in `dir` (its output to `dir/server.log`) and
/// waits for its `listening on 127.0.0.1:PORT` line: the process, its standard input (held open:
/// the script ends when it closes, even if this process is killed) and the port. Panics with the
/// output when it ends or does not listen in time.
fn launch(node: &Path, script: &str, dir: &Path, env: &[(&str, &str)], what: &str) -> (Child, Option<ChildStdin>, u16) {
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).expect("server log");
    let mut command = Command::new(node);
    command
        .arg(fixture().join(script))
        .current_dir(dir)
        .env("PORT", "0")
        .env("DUALSYNC_ODATA_STDIN_EXIT", "1")
        .env("NODE_NO_WARNINGS", "1")
        // The project's own configuration, not one the environment would select.
        .env_remove("NODE_ENV")
        .env_remove("CDS_ENV")
        .env_remove("NODE_OPTIONS")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("server log"))
        .stderr(log);
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", node.display()));
    let stdin = child.stdin.take();

    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(port) = listening_port(&text) {
            return (child, stdin, port);
        }
        let failure = match child.try_wait() {
            Ok(Some(status)) => Some(format!("{what} ended ({status})")),
            _ if started.elapsed() > START_TIMEOUT => Some(format!("{what} did not listen within {START_TIMEOUT:?}")),
            _ => None,
        };
        if let Some(failure) = failure {
            drop(stdin);
            kill(&mut child);
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("{failure}; its output:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port` on a new connection.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> std::io::Result<Reply> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_reply(&raw)
}

/// `application/x-www-form-urlencoded` text.
fn form(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
            b' ' => "+".to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A whole number member of flat JSON (`{"issued":2,…}`).
fn json_number(json: &str, name: &str) -> Option<u64> {
    let at = json.find(&format!("\"{name}\":"))? + name.len() + 3;
    let digits: String = json[at..].trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A string member without escapes (a token) of flat JSON.
fn json_text(json: &str, name: &str) -> Option<String> {
    let at = json.find(&format!("\"{name}\":\""))? + name.len() + 4;
    json[at..].split('"').next().map(str::to_string)
}

/// Kills the server with its process group (server.js starts no other process, but would any
/// have started, it goes too), and reaps it.
fn kill(child: &mut Child) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    let _ = child.kill();
    let _ = child.wait();
}

/// The port of the `listening on 127.0.0.1:PORT` line.
fn listening_port(log: &str) -> Option<u16> {
    log.lines().find_map(|l| l.strip_prefix("listening on 127.0.0.1:")).and_then(|p| p.trim().parse().ok())
}

/// The project's `package.json`: the `cds` configuration of the database, auth and limits.
fn package_json(options: &Options) -> String {
    let auth = match &options.basic {
        Some((user, password)) => format!(
            r#"{{"kind": "basic", "login_required": true, "users": {{{}: {{"password": {}, "roles": ["admin"]}}}}}}"#,
            json_string(user),
            json_string(password)
        ),
        None => match &options.bearer {
            Some(check) => format!(
                r#"{{"impl": {}, "jwks_url": {}, "issuer": {}, "audience": {}}}"#,
                json_string(&fixture().join("bearer-auth.js").to_string_lossy()),
                json_string(&check.jwks_url),
                json_string(&check.issuer),
                json_string(&check.audience)
            ),
            None => r#"{"kind": "dummy"}"#.to_string(),
        },
    };
    let mut query = match options.page_size {
        Some(n) => format!(r#", "query": {{"limit": {{"default": {n}, "max": {n}}}}}"#),
        None => String::new(),
    };
    if options.patch_as_upsert {
        query.push_str(r#", "runtime": {"patch_as_upsert": true}"#);
    }
    format!(
        r#"{{
  "name": "dualsync-odata-test",
  "private": true,
  "cds": {{
    "requires": {{"db": {{"kind": "sqlite", "credentials": {{"url": "db.sqlite"}}}}, "auth": {auth}}},
    "server": {{"body_parser": {{"limit": "100mb"}}}}{query}
  }}
}}
"#
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An HTTP/1.1 answer read to the end of the connection (with a length or chunked).
fn parse_reply(raw: &[u8]) -> std::io::Result<Reply> {
    use std::io::{Error, ErrorKind};
    if raw.is_empty() {
        return Err(Error::new(ErrorKind::UnexpectedEof, "the connection closed without an answer"));
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| Error::new(ErrorKind::InvalidData, "no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no status line"))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body).ok_or_else(|| Error::new(ErrorKind::InvalidData, "bad chunked body"))?;
    }
    Ok(Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&data[..eol]).ok()?.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "namespace t;
entity Item {
  key k: String(100);
  name: String(100);
  qty: Integer;
  price: Decimal(14,2);
  modifiedAt: Timestamp @cds.on.insert: $now @cds.on.update: $now;
}";

    fn etag_model() -> String {
        MODEL.replace("@cds.on.update: $now;", "@cds.on.update: $now @odata.etag;")
    }

    fn get(server: &ODataServer, path: &str, headers: &[(&str, &str)]) -> Reply {
        server
            .request("GET", &format!("{SERVICE_PATH}{path}"), headers, None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", server.log()))
    }

    fn base64(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                out.push(if i <= c.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
            }
        }
        out
    }

    #[test]
    fn serves_the_model_and_rows_written_to_its_file() {
        let Some(server) = ODataServer::start(MODEL, Options::default()) else { return };
        let metadata = get(&server, "/$metadata", &[]);
        assert_eq!(metadata.status, 200, "{}", metadata.body);
        assert!(metadata.body.contains(r#"<EntitySet Name="Item" EntityType="S.Item"/>"#), "{}", metadata.body);

        server.exec("INSERT INTO t_Item (k, name, qty, price, modifiedAt) VALUES ('a', 'A', 3, 2.5, '2024-01-01T00:00:00.000Z')");
        let items = get(&server, "/Item", &[]);
        assert_eq!(items.status, 200);
        assert!(
            items.body.contains(r#"{"k":"a","name":"A","qty":3,"price":"2.50","modifiedAt":"2024-01-01T00:00:00.000Z"}"#),
            "{}",
            items.body
        );

        // A write through OData reaches the file.
        let posted = server
            .request("POST", &format!("{SERVICE_PATH}/Item"), &[("Content-Type", "application/json")], Some(r#"{"k":"b","price":"1.25"}"#))
            .unwrap();
        assert_eq!(posted.status, 201, "{}", posted.body);
        assert_eq!(server.texts("SELECT price FROM t_Item WHERE k = 'b'"), [Some("1.25".to_string())]);
        assert_eq!(server.faults().matches("/odata/").count(), 3, "{}", server.faults());
    }

    #[test]
    fn an_etag_requires_if_match_and_the_page_size_holds() {
        let Some(server) = ODataServer::start(&etag_model(), Options { page_size: Some(2), ..Options::default() }) else {
            return;
        };
        server.exec("INSERT INTO t_Item (k, name, modifiedAt) VALUES ('a', 'A', '2024-01-01T00:00:00.000Z'), ('b', 'B', '2024-01-01T00:00:00.000Z'), ('c', 'C', '2024-01-01T00:00:00.000Z')");
        let page = get(&server, "/Item?$top=10", &[]);
        assert!(page.body.contains(r#""@odata.nextLink":"Item?%24top=10&%24skiptoken="#), "{}", page.body);
        assert_eq!(page.body.matches(r#""k":"#).count(), 2, "{}", page.body);

        let patch = |if_match: Option<&str>| {
            let mut headers = vec![("Content-Type", "application/json")];
            headers.extend(if_match.map(|m| ("If-Match", m)));
            server.request("PATCH", &format!("{SERVICE_PATH}/Item('a')"), &headers, Some(r#"{"qty":1}"#)).unwrap().status
        };
        assert_eq!(patch(None), 428);
        assert_eq!(patch(Some(r#"W/"2023-01-01T00:00:00.000Z""#)), 412);
        assert_eq!(patch(Some(r#"W/"2024-01-01T00:00:00.000Z""#)), 200);
        assert_eq!(patch(Some("*")), 200);
        assert_eq!(server.texts("SELECT qty FROM t_Item WHERE k = 'a'"), [Some("1".to_string())]);
    }

    #[test]
    fn basic_auth_lets_only_the_user_in() {
        let options = Options { basic: Some(("alice".into(), "pa\"ss word".into())), ..Options::default() };
        let Some(server) = ODataServer::start(MODEL, options) else { return };
        let anonymous = get(&server, "/Item", &[]);
        assert_eq!(anonymous.status, 401);
        assert_eq!(anonymous.header("www-authenticate"), Some(r#"Basic realm="Users""#));
        let wrong = format!("Basic {}", base64(b"alice:nope"));
        assert_eq!(get(&server, "/$metadata", &[("Authorization", &wrong)]).status, 401);
        let right = format!("Basic {}", base64(b"alice:pa\"ss word"));
        let reply = get(&server, "/$metadata", &[("Authorization", &right)]);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    #[test]
    fn bearer_tokens_of_the_idp_let_in_until_they_expire() {
        let Some(idp) = Idp::start("dualsync", "s3 cr+t&=", 2) else { return };
        let options = Options { bearer: Some(idp.bearer_check()), ..Options::default() };
        let Some(server) = ODataServer::start(MODEL, options) else { return };

        let anonymous = get(&server, "/Item", &[]);
        assert_eq!(anonymous.status, 401, "{}", anonymous.body);
        assert_eq!(anonymous.header("www-authenticate"), Some(r#"Bearer realm="dualsync-test""#));
        let garbage = get(&server, "/Item", &[("Authorization", "Bearer abc.def.ghi")]);
        assert_eq!(garbage.status, 401);
        assert!(garbage.header("www-authenticate").unwrap().contains(r#"error="invalid_token""#), "{:?}", garbage.headers);

        let (status, body) = idp.token("dualsync", "wrong").unwrap_err();
        assert_eq!(status, 401);
        assert!(body.contains("invalid_client"), "{body}");
        let (status, _) = idp.token("someone", "s3 cr+t&=").unwrap_err();
        assert_eq!(status, 401);

        let token = idp.token("dualsync", "s3 cr+t&=").unwrap_or_else(|e| panic!("{e:?}\n{}", idp.log()));
        let bearer = format!("Bearer {token}");
        let reply = get(&server, "/Item", &[("Authorization", &bearer)]);
        assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
        let posted = server
            .request(
                "POST",
                &format!("{SERVICE_PATH}/Item"),
                &[("Authorization", bearer.as_str()), ("Content-Type", "application/json")],
                Some(r#"{"k":"b"}"#),
            )
            .unwrap();
        assert_eq!(posted.status, 201, "{}", posted.body);
        assert_eq!(server.texts("SELECT k FROM t_Item"), [Some("b".to_string())]);

        // The secret in HTTP basic (client_secret_basic) works too.
        let basic = format!("Basic {}", base64(b"dualsync:s3%20cr%2Bt%26%3D"));
        let headers = [("Authorization", basic.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        let reply = request(idp.port(), "POST", "/token", &headers, Some("grant_type=client_credentials")).unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.contains(r#""expires_in":2"#), "{}", reply.body);
        assert_eq!((idp.issued(), idp.refused()), (2, 2), "{}", idp.log());

        // Expired: refused, with the reason.
        std::thread::sleep(Duration::from_millis(3100));
        let expired = get(&server, "/Item", &[("Authorization", &bearer)]);
        assert_eq!(expired.status, 401);
        assert!(expired.header("www-authenticate").unwrap().contains("ERR_JWT_EXPIRED"), "{:?}", expired.headers);
        assert!(server.log().contains("bearer refused: ERR_JWT_EXPIRED"), "{}", server.log());

        // A token of another token service (its own key and issuer) is refused.
        let Some(other) = Idp::start("dualsync", "s3 cr+t&=", 60) else { return };
        let foreign = format!("Bearer {}", other.token("dualsync", "s3 cr+t&=").unwrap());
        assert_eq!(get(&server, "/Item", &[("Authorization", &foreign)]).status, 401);

        let (port, pid) = (idp.port(), idp.child.id());
        drop(idp);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still runs");
    }

    #[test]
    fn faults_are_answered_then_service_resumes() {
        let Some(server) = ODataServer::start(MODEL, Options::default()) else { return };
        server.fault(r#"{"status": 429, "retry_after": 1, "count": 2}"#);
        for _ in 0..2 {
            let reply = get(&server, "/Item", &[]);
            assert_eq!((reply.status, reply.header("retry-after")), (429, Some("1")));
        }
        assert_eq!(get(&server, "/Item", &[]).status, 200);

        server.fault(r#"{"reset": 1}"#);
        let reset = server.request("GET", &format!("{SERVICE_PATH}/Item"), &[], None);
        assert!(reset.is_err(), "{reset:?}");
        assert_eq!(get(&server, "/Item", &[]).status, 200);

        // Only the next $batch is reset, after it wrote.
        server.fault(r#"{"reset_after_handling": 1, "match": "$batch"}"#);
        assert_eq!(get(&server, "/Item", &[]).status, 200);
        let batch = r#"{"requests":[{"id":"1","atomicityGroup":"g","method":"POST","url":"Item","headers":{"content-type":"application/json"},"body":{"k":"x"}}]}"#;
        let path = format!("{SERVICE_PATH}/$batch");
        let lost = server.request("POST", &path, &[("Content-Type", "application/json")], Some(batch));
        assert!(lost.is_err(), "{lost:?}");
        assert_eq!(server.texts("SELECT k FROM t_Item"), [Some("x".to_string())]);
        let again = server.request("POST", &path, &[("Content-Type", "application/json")], Some(batch)).unwrap();
        assert_eq!(again.status, 200);
        assert!(again.body.contains(r#""status":500"#) && again.body.contains("UNIQUE constraint failed"), "{}", again.body);

        server.fault(r#"{"delay_ms": 300}"#);
        let started = Instant::now();
        assert_eq!(get(&server, "/Item", &[]).status, 200);
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());

        let counters = server.faults();
        for part in [
            r#""seen":9"#,
            r#""batches":2"#,
            r#""status":{"429":2}"#,
            r#""reset":1"#,
            r#""reset_after_handling":1"#,
            r#""delay":1"#,
            r#""pending":0"#,
        ] {
            assert!(counters.contains(part), "{part} in {counters}");
        }
    }

    #[test]
    fn a_model_with_services_is_served_as_written() {
        let model = "namespace t; entity Item { key k: Integer; }
service Mine @(path: '/odata/v4/mine') { entity Things as projection on t.Item; }";
        let Some(server) = ODataServer::start(model, Options::default()) else { return };
        assert_eq!(server.request("GET", "/odata/v4/mine/Things", &[], None).unwrap().status, 200);
        assert_eq!(get(&server, "/$metadata", &[]).status, 404);
    }

    #[test]
    fn a_short_name_in_two_namespaces_is_served_under_full_names() {
        let model = "namespace t; entity Item { key k: Integer; } entity Other { key k: Integer; }
context u { entity Item { key k: Integer; } }";
        let Some(server) = ODataServer::start(model, Options::default()) else { return };
        let metadata = get(&server, "/$metadata", &[]).body;
        for set in ["t_Item", "t_u_Item", "Other"] {
            assert!(metadata.contains(&format!(r#"<EntitySet Name="{set}""#)), "{set} in {metadata}");
        }
        server.exec("INSERT INTO t_u_Item (k) VALUES (7)");
        assert!(get(&server, "/t_u_Item", &[]).body.contains(r#"{"k":7}"#));
    }

    #[test]
    fn drop_kills_the_server() {
        let Some(server) = ODataServer::start(MODEL, Options::default()) else { return };
        let (port, pid, db) = (server.port(), server.child.id(), server.db_path());
        assert!(db.is_file());
        drop(server);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still runs");
        assert!(!db.exists());
    }

    #[test]
    fn a_model_that_does_not_compile_fails_with_the_servers_output() {
        if !fixture().join("node_modules/node/bin/node").is_file() {
            return;
        }
        let failed = std::panic::catch_unwind(|| ODataServer::start("namespace t; entity Item { key k: Nonsense; }", Options::default()));
        let message = failed.err().and_then(|e| e.downcast::<String>().ok()).expect("a panic with a message");
        assert!(message.contains("Nonsense"), "{message}");
    }

    #[test]
    fn reply_parsing() {
        let r =
            parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.as_str(), r.header("x-a")), (200, "abcde", Some("b")));
        assert!(parse_reply(b"").is_err());
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
        assert_eq!([base64(b"a"), base64(b"ab"), base64(b"abc")], ["YQ==", "YWI=", "YWJj"]);
        assert_eq!(listening_port("[cds] x\nlistening on 127.0.0.1:4711\n"), Some(4711));
        assert_eq!(form("a b+c&=é~"), "a+b%2Bc%26%3D%C3%A9%7E");
        assert_eq!(json_number(r#"{"issued":12,"refused":0}"#, "refused"), Some(0));
        assert_eq!(json_number(r#"{"issued":12,"refused":0}"#, "issued"), Some(12));
        assert_eq!(json_text(r#"{"access_token":"ey.x.y","expires_in":5}"#, "access_token").as_deref(), Some("ey.x.y"));
    }
}
