//! OData apps signing in with OAuth2 client credentials against a real token service
//! (`oidc-provider`, started per test by the testkit) whose JWTs the CAP server checks against
//! the published keys: the right secret syncs, a wrong one fails naming the token endpoint and the
//! client without showing the secret, and an expired token is renewed.

use crate::util::Workspace;
use dualsync_testkit::odata::{Idp, ODataServer, Options};

const MODEL: &str = "namespace t;
entity Item { key k: String(100); name: String(100); modifiedAt: Timestamp @cds.on.insert: $now @cds.on.update: $now; }";

const CLIENT: &str = "dualsync-sync";
/// Characters a form body must encode: a space, `+`, `&`, `=`, `%`.
const SECRET: &str = "s3cr3t +&=% client";

/// A token service, a CAP server taking only its tokens, and a workspace with an SQLite app
/// (`item` holding `rows`) and the CAP app signing in with the secret in `secret.txt`.
fn setup(ttl_seconds: u64, extra: &str, rows: &str) -> Option<(Idp, ODataServer, Workspace)> {
    let idp = Idp::start(CLIENT, SECRET, ttl_seconds)?;
    let server = ODataServer::start(MODEL, Options { bearer: Some(idp.bearer_check()), ..Options::default() })?;
    let w = Workspace::new();
    w.exec("db.db", &format!("CREATE TABLE item (k TEXT PRIMARY KEY, name TEXT); INSERT INTO item VALUES {rows};"));
    w.config(&format!(
        r#"
[apps.db]
url = "sqlite://db.db"

[apps.svc]
kind = "odata"
url = "{}"
changed = "modifiedAt"
auth = "oauth2"
token_url = "{}"
client_id = "{CLIENT}"
client_secret_file = "secret.txt"
{extra}

[[maps]]
name = "items"
master = "db"
[maps.db]
table = "item"
key = "k"
[maps.svc]
table = "Item"
key = "k"
[[maps.columns]]
db = "k"
svc = "k"
[[maps.columns]]
db = "name"
svc = "name"
"#,
        server.url(),
        idp.token_url()
    ));
    Some((idp, server, w))
}

fn names(server: &ODataServer) -> Vec<Option<String>> {
    server.texts("SELECT name FROM t_Item ORDER BY k")
}

#[test]
fn the_right_secret_signs_in_and_the_rows_are_written() {
    let Some((idp, server, w)) = setup(300, "scope = \"odata\"", "('a', 'one'), ('b', 'two')") else { return };
    std::fs::write(w.path("secret.txt"), format!("{SECRET}\n")).unwrap();
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}\n{}\n{}", run.stdout, run.stderr, server.log(), idp.log());
    assert_eq!(names(&server), [Some("one".to_string()), Some("two".to_string())]);
    assert!(idp.issued() >= 1 && idp.refused() == 0, "{}", idp.log());
    // Every request to the service carried a valid token: none was refused.
    assert!(!server.log().contains("bearer refused"), "{}", server.log());
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));
    // The rows read back compare equal: nothing to write the second time.
    let again = w.run(&["--format", "json", "sync"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(super::written(&again), 0, "{}", again.stdout);
}

#[test]
fn a_wrong_secret_fails_naming_the_token_url_and_client_but_never_the_secret() {
    let Some((idp, server, w)) = setup(300, "", "('a', 'one')") else { return };
    let wrong = "not-the-s3cr3t-at-all";
    std::fs::write(w.path("secret.txt"), format!("{wrong}\n")).unwrap();
    for args in [&["sync"][..], &["--format", "json", "sync"][..]] {
        let run = w.run(args);
        assert_ne!(run.code, 0, "{}{}", run.stdout, run.stderr);
        let stderr = &run.stderr;
        assert!(stderr.contains(&idp.token_url()), "the token url in: {stderr}");
        assert!(stderr.contains(CLIENT), "the client id in: {stderr}");
        assert!(stderr.contains("refused") && stderr.contains("invalid_client"), "{stderr}");
        for shown in [&run.stdout, &run.stderr] {
            assert!(!shown.contains(wrong) && !shown.contains(SECRET), "the secret shown: {shown}");
        }
    }
    assert!(idp.refused() >= 1 && idp.issued() == 0, "{}", idp.log());
    // The service was never let in, and nothing was written.
    assert_eq!(server.texts("SELECT count(*) FROM t_Item"), [Some("0".to_string())]);
    assert!(!server.log().contains("[odata] - POST"), "{}", server.log());
}

#[test]
fn an_expired_token_is_renewed() {
    let Some((idp, server, w)) = setup(3, "", "('a', 'one')") else { return };
    std::fs::write(w.path("secret.txt"), format!("{SECRET}\n")).unwrap();
    let first = w.run(&["sync"]);
    assert_eq!(first.code, 0, "{}{}\n{}", first.stdout, first.stderr, server.log());
    assert_eq!(names(&server), [Some("one".to_string())]);
    let after_first = idp.issued();
    assert!(after_first >= 1, "{}", idp.log());

    // Every token issued so far has expired (the service refuses them: see the testkit's tests).
    std::thread::sleep(std::time::Duration::from_millis(4000));
    w.exec("db.db", "UPDATE item SET name = 'changed'; INSERT INTO item VALUES ('b', 'two');");
    let second = w.run(&["sync"]);
    assert_eq!(second.code, 0, "{}{}\n{}", second.stdout, second.stderr, server.log());
    assert_eq!(names(&server), [Some("changed".to_string()), Some("two".to_string())]);
    assert!(idp.issued() >= 2 && idp.issued() > after_first, "{}", idp.log());

    // A 401 in the middle of a sync (a token the service stopped taking): the client signs in
    // anew, once, and goes on.
    server.fault(r#"{"status": 401, "count": 1}"#);
    w.exec("db.db", "UPDATE item SET name = 'third' WHERE k = 'a';");
    let before = idp.issued();
    let third = w.run(&["sync"]);
    assert_eq!(third.code, 0, "{}{}\n{}", third.stdout, third.stderr, server.faults());
    assert!(server.faults().contains(r#""401":1"#), "{}", server.faults());
    assert_eq!(names(&server), [Some("third".to_string()), Some("two".to_string())]);
    assert!(idp.issued() >= before + 2, "a new token after the 401: {}", idp.log());
    assert_eq!(idp.refused(), 0, "{}", idp.log());
}
