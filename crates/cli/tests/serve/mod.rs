//! `dualsync serve` on a free port over real apps (SQLite, PostgreSQL):
//! the API with every role and bad tokens, actions and their activity log,
//! bad requests, metrics, health, and a clean exit on SIGTERM.

mod api;
mod auth;
mod browser;
mod tls;

use crate::util::{Run, Workspace};
use dualsync_testkit::{Kind, TestDb};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// App `b` refuses names over 10 characters, so that a row can fail on purpose.
const TABLE_A: &str = "CREATE TABLE item (k {key} PRIMARY KEY, name {text}, qty {int})";
const TABLE_B: &str = "CREATE TABLE item (k {key} PRIMARY KEY, name {text} CHECK (length(name) <= 10), qty {int})";

/// Two apps with an `item` map between them, a token of each role, and `serve` running.
pub struct Served {
    pub w: Workspace,
    pub db: [TestDb; 2],
    pub port: u16,
    child: Option<Child>,
    pub admin: String,
    pub operator: String,
    pub viewer: String,
}

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}\n{}", self.status, self.head, self.body))
    }

    /// The message of a JSON error body; the body must be one.
    pub fn error(&self) -> String {
        let body = self.json();
        assert_eq!(body["error"]["status"], self.status, "{body}");
        body["error"]["message"].as_str().expect("an error message").to_string()
    }
}

impl Served {
    /// Apps of these kinds with rows k1..k3 on `a`, the map started (its
    /// initial sync done), and `serve` answering.
    pub fn start(kinds: [Kind; 2], policy: &str) -> Option<Served> {
        let db = [TestDb::new(kinds[0])?, TestDb::new(kinds[1])?];
        db[0].exec(TABLE_A);
        db[1].exec(TABLE_B);
        db[0].exec("INSERT INTO item VALUES ('k1', 'one', 1), ('k2', 'two', 2), ('k3', 'three', 3)");
        let w = Workspace::new();
        w.config(&format!(
            r#"
[state]
url = "sqlite://state.db"
[apps.a]
url = "{}"
[apps.b]
url = "{}"
[[maps]]
name = "items"
master = "a"
conflict = "{policy}"
[maps.a]
table = "item"
key = "k"
[maps.b]
table = "item"
key = "k"
[[maps.columns]]
a = "k"
b = "k"
[[maps.columns]]
a = "name"
b = "name"
[[maps.columns]]
a = "qty"
b = "qty"
"#,
            db[0].url, db[1].url
        ));
        ok(&w, &["start", "items"]);
        let token = |name: &str, role: &str| ok(&w, &["token", "create", "--name", name, "--role", role]).stdout.trim().to_string();
        let (admin, operator, viewer) = (token("ada", "admin"), token("otto", "operator"), token("vera", "viewer"));
        let mut served = Served { w, db, port: 0, child: None, admin, operator, viewer };
        served.serve(&[]);
        Some(served)
    }

    /// Starts `serve` on a port it picks (with `extra` arguments) and waits until it listens.
    pub fn serve(&mut self, extra: &[&str]) {
        self.child = Some(
            Command::new(env!("CARGO_BIN_EXE_dualsync"))
                .current_dir(self.w.dir.path())
                .env_remove("DUALSYNC_CONFIG")
                .args(["serve", "--listen", "127.0.0.1:0", "--poll-ms", "5"])
                .args(extra)
                .stdout(Stdio::from(std::fs::File::create(self.w.path("serve.out")).unwrap()))
                .stderr(Stdio::from(std::fs::File::create(self.w.path("serve.err")).unwrap()))
                .spawn()
                .expect("start dualsync serve"),
        );
        let end = Instant::now() + Duration::from_secs(60);
        self.port = loop {
            let out = std::fs::read_to_string(self.w.path("serve.out")).unwrap_or_default();
            let port = out.lines().find_map(|l| {
                let at = l.strip_prefix("listening on http://").or_else(|| l.strip_prefix("listening on https://"))?;
                at.split(' ').next()?.rsplit(':').next()?.parse().ok()
            });
            if let Some(port) = port {
                break port;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("serve ended ({status}) before it listened:\n{}", self.output());
            }
            assert!(Instant::now() < end, "serve did not listen within a minute:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        };
    }

    pub fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.w.path(f)).unwrap_or_default();
        format!("{}{}", read("serve.out"), read("serve.err"))
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        http(self.port, method, path, token, body)
    }

    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None)
    }

    pub fn post(&self, path: &str, token: &str, body: &str) -> Reply {
        self.call("POST", path, Some(token), Some(body))
    }

    /// SIGTERM: `serve` must finish and exit 0. Returns its output.
    pub fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else { return String::new() };
        // SAFETY: sends a signal to our own child process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < end, "serve did not stop on SIGTERM:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = self.output();
        assert_eq!(status.code(), Some(0), "serve exits 0 on SIGTERM:\n{out}");
        out
    }

    /// Every row of an app as `k|name|qty`, in key order.
    pub fn dump(&self, side: usize) -> Vec<String> {
        self.db[side]
            .texts("SELECT concat(k, '|', coalesce(name, '∅'), '|', coalesce(CAST(qty AS {cast_text}), '∅')) FROM item ORDER BY k")
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }

    /// Waits until app `side` holds `row`.
    pub fn wait_for_row(&self, side: usize, row: &str) {
        let end = Instant::now() + Duration::from_secs(30);
        while !self.dump(side).iter().any(|r| r == row) {
            assert!(Instant::now() < end, "{row} did not arrive in app {side}: {:?}\n{}", self.dump(side), self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn ok(w: &Workspace, args: &[&str]) -> Run {
    let run = w.run(args);
    assert_eq!(run.code, 0, "{args:?}\n{}\n{}", run.stdout, run.stderr);
    run
}

/// One HTTP/1.1 request on its own connection.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let json = body.is_some_and(|b| !b.is_empty());
    let headers: Vec<(&str, &str)> = headers.into_iter().chain(json.then_some(("Content-Type", "application/json"))).collect();
    http_with(port, method, path, &headers, body)
}

/// One HTTP/1.1 request with these headers (Host and Content-Length are added).
pub fn http_with(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to serve");
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    let body = body.unwrap_or("");
    request += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, rest) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Reply { status, head: head.to_string(), body: if chunked { unchunk(rest) } else { rest.to_string() } }
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}
