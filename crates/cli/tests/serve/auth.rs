//! Who may call what: every endpoint with no token, an unknown, revoked and
//! expired token, and each role; the limit on guessed tokens; the listener's
//! address rule; and the `token` commands.

use super::{ok, Served};
use dualsync_testkit::Kind;

/// Every endpoint, with a body where it takes one, and the role it needs.
/// Actions name things that do not exist, so that a caller let in gets a 404
/// (or an empty result) and nothing changes.
const ENDPOINTS: &[(&str, &str, Option<&str>, &str)] = &[
    ("GET", "/api/v1/maps", None, "viewer"),
    ("GET", "/api/v1/maps/items", None, "viewer"),
    ("GET", "/api/v1/maps/items/history", None, "viewer"),
    ("POST", "/api/v1/maps/nomap/pause", None, "operator"),
    ("POST", "/api/v1/maps/nomap/resume", None, "operator"),
    ("POST", "/api/v1/maps/nomap/start", Some("{}"), "operator"),
    ("POST", "/api/v1/maps/nomap/stop", None, "operator"),
    ("POST", "/api/v1/sync", Some(r#"{"maps": ["nomap"]}"#), "operator"),
    ("POST", "/api/v1/plan", Some(r#"{"maps": ["nomap"]}"#), "operator"),
    ("POST", "/api/v1/check", None, "operator"),
    ("GET", "/api/v1/jobs", None, "viewer"),
    ("GET", "/api/v1/jobs/999", None, "viewer"),
    ("POST", "/api/v1/jobs/999/cancel", None, "operator"),
    ("GET", "/api/v1/errors", None, "viewer"),
    ("GET", "/api/v1/errors/export?format=json&map=nomap", None, "viewer"),
    ("POST", "/api/v1/errors/retry", Some(r#"{"map": "nomap"}"#), "operator"),
    ("POST", "/api/v1/errors/999999/retry", None, "operator"),
    ("POST", "/api/v1/errors/999999/skip", Some(r#"{"reason": "test"}"#), "operator"),
    ("GET", "/api/v1/conflicts", None, "viewer"),
    ("POST", "/api/v1/conflicts/999999/resolve", Some(r#"{"take": "a"}"#), "operator"),
    ("GET", "/api/v1/activity", None, "viewer"),
    ("GET", "/api/v1/runs", None, "viewer"),
    ("GET", "/api/v1/runs/999999", None, "viewer"),
    ("GET", "/api/v1/apps", None, "viewer"),
    ("GET", "/api/v1/tokens", None, "admin"),
    ("POST", "/api/v1/tokens", Some(r#"{"name": "made-by-the-matrix", "role": "viewer"}"#), "admin"),
    ("DELETE", "/api/v1/tokens/nobody", None, "admin"),
    ("GET", "/metrics", None, "viewer"),
];

fn rank(role: &str) -> u8 {
    ["viewer", "operator", "admin"].iter().position(|r| *r == role).unwrap() as u8
}

#[test]
fn every_endpoint_needs_a_usable_token_of_its_role() {
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Sqlite], "master") else { return };
    // An expired token and a revoked one, made usable first.
    let expired = ok(&s.w, &["token", "create", "--name", "old", "--role", "admin", "--expires", "1d"]).stdout.trim().to_string();
    s.w.exec("state.db", "UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00.000Z' WHERE name = 'old'");
    let revoked = ok(&s.w, &["token", "create", "--name", "gone", "--role", "admin"]).stdout.trim().to_string();
    ok(&s.w, &["token", "revoke", "gone"]);
    // This test presents many bad tokens on purpose: the guess limit is another test's.
    s.stop();
    s.serve(&["--auth-failures-per-minute", "1000"]);
    let activity_before = s.w.count("state.db", "SELECT count(*) FROM activity");
    let roles = [("viewer", s.viewer.clone()), ("operator", s.operator.clone()), ("admin", s.admin.clone())];
    for &(method, path, body, needed) in ENDPOINTS {
        let none = s.call(method, path, None, body);
        assert_eq!(none.status, 401, "{method} {path} without a token: {}", none.body);
        assert!(none.error().contains("Authorization: Bearer"), "{}", none.body);
        for (what, token, says) in [
            ("an unknown token", "dst_0000", "not known"),
            ("a revoked token", revoked.as_str(), "revoked"),
            ("an expired token", expired.as_str(), "expired"),
        ] {
            let reply = s.call(method, path, Some(token), body);
            assert_eq!(reply.status, 401, "{method} {path} with {what}: {}", reply.body);
            assert!(reply.error().contains(says), "{method} {path} with {what}: {}", reply.body);
        }
        for (role, token) in &roles {
            let reply = s.call(method, path, Some(token), body);
            if rank(role) < rank(needed) {
                assert_eq!(reply.status, 403, "{method} {path} as {role}: {}", reply.body);
                assert!(reply.error().contains(&format!("needs the {needed} role")), "{}", reply.body);
            } else {
                assert!(![401, 403].contains(&reply.status), "{method} {path} as {role}: {} {}", reply.status, reply.body);
                assert!(reply.status < 500, "{method} {path} as {role}: {} {}", reply.status, reply.body);
            }
        }
    }
    // Refused calls changed nothing; the calls let in were logged (as refused: nothing they named exists).
    assert_eq!(s.get("/api/v1/maps/items", &s.viewer).json()["state"], "running");
    let logged = s.w.count("state.db", "SELECT count(*) FROM activity WHERE actor IN ('otto', 'ada')") as usize;
    let let_in = ENDPOINTS.iter().filter(|e| e.0 != "GET").map(|e| 3 - rank(e.3) as usize).sum::<usize>();
    assert_eq!(logged, let_in, "one activity entry per action let in");
    assert_eq!(s.w.count("state.db", "SELECT count(*) FROM activity") as usize, activity_before as usize + let_in);
    let not_logged = s.w.count("state.db", "SELECT count(*) FROM activity WHERE actor = 'vera'");
    assert_eq!(not_logged, 0, "a viewer's refused actions are not actions");
    s.stop();
}

#[test]
fn guessing_tokens_is_held_back_and_health_needs_none() {
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Sqlite], "master") else { return };
    s.stop();
    s.serve(&["--auth-failures-per-minute", "3"]);
    for _ in 0..3 {
        assert_eq!(s.call("GET", "/api/v1/maps", Some("dst_guess"), None).status, 401);
    }
    let held = s.call("GET", "/api/v1/maps", Some(&s.viewer), None);
    assert_eq!(held.status, 429, "{}", held.body);
    assert!(held.head.to_ascii_lowercase().contains("retry-after:"), "{}", held.head);
    assert!(held.error().contains("too many failed attempts"), "{}", held.body);
    // Missing tokens are no guesses, and the open endpoints stay open.
    assert_eq!(s.call("GET", "/healthz", None, None).json()["status"], "up");
    let ready = s.call("GET", "/readyz", None, None);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["ready"], true);
    let doc = s.call("GET", "/api/v1/openapi.json", None, None).json();
    assert!(doc["paths"]["/api/v1/errors/{id}/retry"]["post"].is_object(), "{doc}");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    s.stop();
}

#[test]
fn tokens_are_shown_once_and_stored_as_their_hash() {
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Sqlite], "master") else { return };
    let stored: Vec<String> =
        s.w.rows("state.db", "SELECT sha256 FROM api_tokens").iter().map(|r| crate::util::text(&r[0]).to_string()).collect();
    assert_eq!(stored.len(), 3);
    for token in [&s.admin, &s.operator, &s.viewer] {
        assert!(token.starts_with("dst_") && token.len() == 68, "{token}");
        assert!(!stored.contains(token), "the secret itself is never stored");
    }
    let list = ok(&s.w, &["--format", "json", "token", "list"]).json();
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    assert!(!list.to_string().contains("dst_"), "a list never shows a secret: {list}");
    // Mistakes are usage errors that store nothing.
    for (args, says) in [
        (vec!["token", "create", "--name", "ada", "--role", "viewer"], "exists already"),
        (vec!["token", "create", "--name", "x", "--role", "root"], "pick viewer, operator or admin"),
        (vec!["token", "create", "--name", "x", "--role", "viewer", "--expires", "soon"], "like 90d"),
        (vec!["token", "create", "--name", "x", "--role", "viewer", "--expires", "0d"], "between 1 hour and 10 years"),
        (vec!["token", "revoke", "nobody"], "no usable token"),
    ] {
        let run = s.w.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    assert_eq!(s.w.count("state.db", "SELECT count(*) FROM api_tokens"), 3);
    // An admin makes a token through the API: it works at once; revoked, it stops at once.
    let made = s.post("/api/v1/tokens", &s.admin, r#"{"name": "ci", "role": "viewer", "expires_days": 30}"#);
    assert_eq!(made.status, 201, "{}", made.body);
    let secret = made.json()["token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/api/v1/maps", &secret).status, 200);
    assert_eq!(s.call("DELETE", "/api/v1/tokens/ci", Some(&s.admin), None).status, 200);
    assert_eq!(s.get("/api/v1/maps", &secret).status, 401);
    let listed = s.get("/api/v1/tokens", &s.admin).json();
    assert!(!listed.to_string().contains("dst_") && !listed.to_string().contains("sha256"), "{listed}");
    s.stop();
}

#[test]
fn a_non_loopback_listen_needs_tls_or_a_deliberate_flag() {
    let w = crate::util::Workspace::new();
    w.config("[apps.a]\nurl = \"sqlite://a.db\"\n[apps.b]\nurl = \"sqlite://b.db\"\n");
    let run = w.run(&["serve", "--listen", "0.0.0.0:7799"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not a loopback address") && run.stderr.contains("--insecure-listen"), "{}", run.stderr);
}

#[test]
fn the_dashboard_cookie_is_strict_and_changes_need_its_own_pages() {
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Sqlite], "master") else { return };
    let port = s.port;
    let page = super::http_with(port, "GET", "/", &[], None);
    assert_eq!(page.status, 303, "no session: to the login page");
    assert!(page.head.to_ascii_lowercase().contains("location: /login"), "{}", page.head);
    let form = format!("token={}", s.operator);
    let login = super::http_with(port, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded")], Some(&form));
    assert_eq!(login.status, 303, "{}", login.body);
    let set = login.head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a cookie").to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = format!("dualsync_token={}", s.operator);
    let overview = super::http_with(port, "GET", "/", &[("Cookie", &cookie)], None);
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("otto (operator)") && overview.body.contains(">items</a>"), "{}", overview.body);
    assert!(overview.head.to_ascii_lowercase().contains("content-security-policy: default-src 'self'"), "{}", overview.head);
    assert!(!overview.body.contains("http://") && !overview.body.contains("https://"), "nothing is fetched from elsewhere");
    // Reads with the cookie work; changes need this service's own origin.
    assert_eq!(super::http_with(port, "GET", "/api/v1/maps", &[("Cookie", &cookie)], None).status, 200);
    let here = format!("http://127.0.0.1:{port}");
    for (origin, status) in [(None, 403), (Some("https://evil.example"), 403), (Some(here.as_str()), 200)] {
        let mut headers = vec![("Cookie", cookie.as_str())];
        headers.extend(origin.map(|o| ("Origin", o)));
        let reply = super::http_with(port, "POST", "/api/v1/maps/items/pause", &headers, None);
        assert_eq!(reply.status, status, "origin {origin:?}: {}", reply.body);
    }
    let bad = super::http_with(port, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded")], Some("token=dst_nope"));
    assert_eq!(bad.status, 401);
    assert!(bad.body.contains("not known here") && !bad.head.to_ascii_lowercase().contains("set-cookie"), "{}", bad.body);
    s.stop();
}
