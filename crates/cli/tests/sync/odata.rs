//! OData v4 apps against a real OData server (SAP CAP on Node 22, started
//! per test by the testkit): initial sync both ways with a database, refused
//! rows isolated by splitting changesets, ETags, basic auth, throttling and
//! resets, live sync by polling the change timestamp, and by change tracking
//! (delta links, as Dataverse serves them).

use crate::util::Workspace;
use dualsync_testkit::odata::{ODataServer, Options};
use dualsync_testkit::{Kind, TestDb};

const MODEL: &str = "namespace t;
entity Item { key co: String(10); key k: String(100); name: String(100); qty: Integer; price: Decimal(20,4);
              note: LargeString; modifiedAt: Timestamp @cds.on.insert: $now @cds.on.update: $now; }
entity Etagged { key k: String(100); name: String(100); modifiedAt: Timestamp @cds.on.insert: $now @cds.on.update: $now @odata.etag; }";

const DB: &str = "CREATE TABLE item (co {key} NOT NULL, k {key} NOT NULL, name {text}, qty {int}, price NUMERIC(20,4), note {longtext},
                  PRIMARY KEY (co, k))";

/// Hard text: quotes, a line break, a tab, emoji and right-to-left scripts.
const HARD: &str = "He said \"hi\", then 'left';\nline two\r\n\ttabbed, émoji 🚀, עברית العربية & ?x=1#y %20 + /";

fn config(db: &TestDb, server: &ODataServer, master: &str, extra: &str) -> String {
    format!(
        r#"
[apps.db]
url = "{}"

[apps.svc]
kind = "odata"
url = "{}"
changed = "modifiedAt"
change_window_seconds = 1
changeset_size = 3
{extra}

[[maps]]
name = "items"
master = "{master}"
[maps.db]
table = "item"
key = "k"
company = "co"
[maps.svc]
table = "Item"
key = "k"
company = "co"
[[maps.columns]]
db = "k"
svc = "k"
[[maps.columns]]
db = "name"
svc = "name"
[[maps.columns]]
db = "qty"
svc = "qty"
[[maps.columns]]
db = "price"
svc = "price"
[[maps.columns]]
db = "note"
svc = "note"
"#,
        db.url,
        server.url()
    )
}

fn initial_sync_both_ways(kind: Kind) {
    let Some(db) = TestDb::new(kind) else { return };
    let Some(server) = ODataServer::start(MODEL, Options::default()) else { return };
    db.exec(DB);
    let hard = HARD.replace('\'', "''");
    db.exec(&format!(
        "INSERT INTO item VALUES ('C1', 'a', 'from db', 1, 123456789.1234, '{hard}'), ('C1', 'b', '', NULL, NULL, NULL),
         ('C2', 'c', 'two', 2, 0.0001, '')"
    ));
    server.exec(&format!(
        "INSERT INTO t_Item (co, k, name, qty, price, note) VALUES ('C1', 'a', 'from svc', 9, NULL, NULL), ('C1', 's1', '{hard}', 3, 1.5, NULL),
         ('C2', 's''2', 'quote key', NULL, NULL, '')"
    ));
    let w = Workspace::new();
    w.config(&config(&db, &server, "db", ""));
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}\n{}", run.stdout, run.stderr, server.log());
    let one = |sql: &str| server.texts(sql).into_iter().next().flatten();
    // The master's row wins; hard text, '' and NULL arrive as they were.
    assert_eq!(one("SELECT name FROM t_Item WHERE k = 'a'").as_deref(), Some("from db"));
    assert_eq!(one("SELECT note FROM t_Item WHERE k = 'a'").as_deref(), Some(HARD));
    assert_eq!(one("SELECT name FROM t_Item WHERE k = 'b'").as_deref(), Some(""));
    assert_eq!(server.texts("SELECT note FROM t_Item WHERE k = 'b'"), [None]);
    assert_eq!(one("SELECT note FROM t_Item WHERE k = 'c'").as_deref(), Some(""));
    let dbone = |sql: &str| db.texts(sql).into_iter().next().flatten();
    assert_eq!(dbone("SELECT name FROM item WHERE k = 's1'").as_deref(), Some(HARD));
    assert_eq!(dbone("SELECT co FROM item WHERE k = 's''2'").as_deref(), Some("C2"));
    assert_eq!(
        dbone("SELECT CAST(price AS {cast_text}) FROM item WHERE k = 's1'").map(|p| p.trim_end_matches('0').to_string()).as_deref(),
        Some("1.5")
    );
    // Every digit of the decimal reached the service (CAP keeps it in a REAL: read it back through the API).
    let reply = server
        .request(
            "GET",
            "/odata/v4/s/Item?$filter=k%20eq%20'a'&$select=price",
            &[("Accept", "application/json;IEEE754Compatible=true")],
            None,
        )
        .unwrap();
    assert!(reply.body.contains("123456789.1234"), "{}", reply.body);
    // Nothing differs the second time: the values read back compare equal.
    let again = w.run(&["--format", "json", "sync"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(super::written(&again), 0, "{}", again.stdout);
}

#[test]
fn initial_sync_sqlite_and_odata_both_ways() {
    initial_sync_both_ways(Kind::Sqlite);
}

#[test]
fn initial_sync_postgres_and_odata_both_ways() {
    initial_sync_both_ways(Kind::Postgres);
}

#[test]
fn refused_rows_are_isolated_by_splitting_changesets_and_the_rest_lands() {
    let (Some(db), Some(server)) = (TestDb::new(Kind::Sqlite), ODataServer::start(MODEL, Options::default())) else { return };
    db.exec(DB);
    // 10 rows; one too long for String(100) as the service counts (51 emoji = 102 UTF-16 units).
    let mut rows: Vec<String> = (0..10).map(|i| format!("('C1', 'r{i}', 'name {i}', {i}, NULL, NULL)")).collect();
    rows[2] = format!("('C1', 'r2', '{}', 2, NULL, NULL)", "😀".repeat(51));
    // One the service itself refuses inside a changeset of 3: more decimals than Decimal(20,4) takes.
    rows[7] = "('C1', 'r7', 'seven', 7, 0.00001, NULL)".to_string();
    db.exec(&format!("INSERT INTO item VALUES {}", rows.join(", ")));
    let w = Workspace::new();
    w.config(&config(&db, &server, "db", ""));
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 3, "rows failed: {}{}", run.stdout, run.stderr);
    assert_eq!(server.texts("SELECT count(*) FROM t_Item"), [Some("8".to_string())], "{}", server.log());
    let errors = w.run(&["--format", "json", "errors"]);
    let list = errors.json();
    let text = list.to_string();
    assert!(text.contains("r2") && text.contains("UTF-16") && text.contains("MaxLength of 100"), "{text}");
    assert!(
        text.contains("r7") && text.contains("Decimal(20,4)") && text.contains(r#""column":"price""#),
        "the service's message and field: {text}"
    );
    // Exactly two rows failed; the other 8 are written once: a second sync tries only the two again.
    let again = w.run(&["--format", "json", "sync"]);
    let totals = super::totals(&again);
    assert_eq!(totals["updated"], serde_json::json!([0, 0]), "{}", again.stdout);
    assert_eq!(totals["failed"], serde_json::json!([0, 2]), "{}", again.stdout);
}

#[test]
fn an_etag_conflict_is_never_overwritten_and_428_is_answered_with_if_match() {
    let (Some(db), Some(server)) = (TestDb::new(Kind::Sqlite), ODataServer::start(MODEL, Options::default())) else { return };
    db.exec("CREATE TABLE e (k TEXT PRIMARY KEY, name TEXT)");
    db.exec("INSERT INTO e VALUES ('x', 'db'), ('y', 'db y')");
    server.exec("INSERT INTO t_Etagged (k, name, modifiedAt) VALUES ('x', 'svc', '2024-01-01T00:00:00.000Z')");
    let w = Workspace::new();
    let cfg = format!(
        "[apps.db]\nurl = \"{}\"\n[apps.svc]\nkind = \"odata\"\nurl = \"{}\"\n[[maps]]\nname = \"e\"\nmaster = \"db\"\n[maps.db]\ntable = \"e\"\nkey = \"k\"\n[maps.svc]\ntable = \"Etagged\"\nkey = \"k\"\n[[maps.columns]]\ndb = \"k\"\nsvc = \"k\"\n[[maps.columns]]\ndb = \"name\"\nsvc = \"name\"\n",
        db.url,
        server.url()
    );
    w.config(&cfg);
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // The service demands If-Match (428 without): the update carried the ETag read.
    assert_eq!(server.texts("SELECT name FROM t_Etagged WHERE k = 'x'"), [Some("db".to_string())], "{}", server.log());
    assert_eq!(server.texts("SELECT name FROM t_Etagged WHERE k = 'y'"), [Some("db y".to_string())]);
    // Another writer changes the row between dualsync's read and its write: a 412, not overwritten.
    db.exec("UPDATE e SET name = 'db again' WHERE k = 'x'");
    server.fault(r#"{"delay_ms": 1500, "count": 1, "match": "$batch"}"#);
    // Change the row at the service while the batch waits: the delay holds the batch, and the
    // direct SQL write changes modifiedAt (the ETag) under it.
    let writer = {
        let path = server.db_path();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let c = rusqlite::Connection::open(path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            c.execute("UPDATE t_Etagged SET name = 'other writer', modifiedAt = '2030-01-01T00:00:00.000Z' WHERE k = 'x'", []).unwrap();
        })
    };
    let run = w.run(&["--format", "json", "sync"]);
    writer.join().unwrap();
    assert_eq!(
        server.texts("SELECT name FROM t_Etagged WHERE k = 'x'"),
        [Some("other writer".to_string())],
        "not overwritten: {}",
        run.stdout
    );
    let errors = w.run(&["--format", "json", "errors"]).json().to_string();
    assert!(errors.contains("412"), "the row is in the error log: {errors}");
}

#[test]
fn basic_auth_right_and_wrong_and_the_secret_is_never_shown() {
    let secret = "s3cr3t-Pässword";
    let opts = Options { basic: Some(("alice".into(), secret.into())), ..Default::default() };
    let (Some(db), Some(server)) = (TestDb::new(Kind::Sqlite), ODataServer::start(MODEL, opts)) else { return };
    db.exec(DB);
    db.exec("INSERT INTO item VALUES ('C1', 'a', 'x', 1, NULL, NULL)");
    let w = Workspace::new();
    w.config(&config(&db, &server, "db", "auth = \"basic\"\nuser = \"alice\"\npassword_env = \"DUALSYNC_TEST_NEVER_SET\""));
    let missing = w.run(&["sync"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("DUALSYNC_TEST_NEVER_SET") && missing.stderr.contains("password_env"), "{}", missing.stderr);
    w.config(&config(&db, &server, "db", "auth = \"basic\"\nuser = \"alice\"\npassword_file = \"pw.txt\""));
    std::fs::write(w.path("pw.txt"), "wrong one\n").unwrap();
    let wrong = w.run(&["sync"]);
    assert_ne!(wrong.code, 0);
    assert!(wrong.stderr.contains("401") && wrong.stderr.contains("sign-in"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("wrong one") && !wrong.stdout.contains("wrong one"));
    std::fs::write(w.path("pw.txt"), format!("{secret}\n")).unwrap();
    let right = w.run(&["--format", "json", "sync"]);
    assert_eq!(right.code, 0, "{}{}", right.stdout, right.stderr);
    assert!(!right.stdout.contains(secret) && !right.stderr.contains(secret));
    assert_eq!(server.texts("SELECT name FROM t_Item WHERE k = 'a'"), [Some("x".to_string())]);
}

#[test]
fn throttling_and_a_reset_mid_batch_write_each_row_once() {
    let (Some(db), Some(server)) = (TestDb::new(Kind::Sqlite), ODataServer::start(MODEL, Options::default())) else { return };
    db.exec(DB);
    let rows: Vec<String> = (0..40).map(|i| format!("('C1', 'k{i:02}', 'n{i}', {i}, NULL, NULL)")).collect();
    db.exec(&format!("INSERT INTO item VALUES {}", rows.join(", ")));
    let w = Workspace::new();
    w.config(&config(&db, &server, "db", ""));
    // Two 429s with Retry-After, a 503, then the first $batch is applied and its answer lost.
    server.fault(r#"{"status": 429, "retry_after": 1, "count": 2}"#);
    server.fault(r#"{"status": 503, "retry_after": 1, "count": 1}"#);
    server.fault(r#"{"reset_after_handling": 1, "match": "$batch"}"#);
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}\n{}", run.stdout, run.stderr, server.faults());
    let faults = server.faults();
    assert!(faults.contains(r#""429":2"#) && faults.contains(r#""503":1"#) && faults.contains(r#""reset_after_handling":1"#), "{faults}");
    assert_eq!(server.texts("SELECT count(*) FROM t_Item"), [Some("40".to_string())]);
    let errors = w.run(&["--format", "json", "errors"]).json();
    assert_eq!(
        errors["total"].as_u64().unwrap_or(errors.as_array().map_or(0, |a| a.len() as u64)),
        0,
        "no duplicate-key failure: {errors}"
    );
}

#[test]
fn live_sync_both_ways_by_polling_without_echo_and_deletes_found_by_the_key_scan() {
    let (Some(db), Some(server)) = (TestDb::new(Kind::Sqlite), ODataServer::start(MODEL, Options::default())) else { return };
    db.exec(DB);
    db.exec("INSERT INTO item VALUES ('C1', 'a', 'one', 1, NULL, NULL)");
    let w = Workspace::new();
    w.config(&config(&db, &server, "db", "delete_scan_seconds = 1"));
    let start = w.run(&["start", "items"]);
    assert_eq!(start.code, 0, "{}{}", start.stdout, start.stderr);
    assert!(start.stdout.contains("svc: changes are polled by their change timestamp"), "{}", start.stdout);
    assert!(start.stdout.contains("db: changes are captured by triggers"), "{}", start.stdout);
    let status = w.run(&["--format", "json", "status"]);
    assert!(status.stdout.contains(r#""capture": "poll""#) || status.stdout.contains(r#""capture":"poll""#), "{}", status.stdout);
    assert_eq!(server.texts("SELECT name FROM t_Item WHERE k = 'a'"), [Some("one".to_string())]);
    // A change at the service (stamped by CAP itself through its API) and one in the database.
    let reply = server
        .request("PATCH", "/odata/v4/s/Item(co='C1',k='a')", &[("Content-Type", "application/json")], Some(r#"{"name":"from svc"}"#))
        .unwrap();
    assert!(reply.status < 300, "{}", reply.body);
    db.exec("INSERT INTO item VALUES ('C1', 'b', 'new in db', 2, NULL, NULL)");
    let run = LiveRun::start(&w);
    let wait = |what: &str, done: &dyn Fn() -> bool| run.wait(what, done, &String::new);
    wait("both changes", &|| {
        db.texts("SELECT name FROM item WHERE k = 'a'") == [Some("from svc".to_string())]
            && server.texts("SELECT name FROM t_Item WHERE k = 'b'") == [Some("new in db".to_string())]
    });
    // dualsync's own write to the service comes back through polling: recognised, no write
    // (a write would stamp the row anew).
    let stamp = server.texts("SELECT modifiedAt FROM t_Item WHERE k = 'b'");
    std::thread::sleep(std::time::Duration::from_millis(4000));
    assert_eq!(server.texts("SELECT modifiedAt FROM t_Item WHERE k = 'b'"), stamp, "no echo write:\n{}", run.log());
    // A delete in the database reaches the service.
    db.exec("DELETE FROM item WHERE k = 'b'");
    let errors = || Workspace::run(&w, &["--format", "json", "errors"]).stdout;
    wait("the delete", &|| {
        let gone = server.texts("SELECT count(*) FROM t_Item WHERE k = 'b'") == [Some("0".to_string())];
        assert!(!errors().contains("\"key\""), "{}", errors());
        gone
    });
    // A delete at the service: polling cannot see it; the key scan finds it and deletes the row in the database.
    let reply = server.request("DELETE", "/odata/v4/s/Item(co='C1',k='a')", &[], None).unwrap();
    assert!(reply.status < 300, "{}", reply.body);
    wait("the delete at the service", &|| db.texts("SELECT CAST(count(*) AS TEXT) FROM item WHERE k = 'a'") == [Some("0".to_string())]);
}

/// `dualsync run` as a child process of a test, killed when it ends.
struct LiveRun<'w> {
    w: &'w Workspace,
    child: std::process::Child,
}

impl<'w> LiveRun<'w> {
    fn start(w: &'w Workspace) -> LiveRun<'w> {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_dualsync"))
            .current_dir(w.path(""))
            .env_remove("DUALSYNC_CONFIG")
            .args(["run", "--poll-ms", "100"])
            .stdout(std::process::Stdio::from(std::fs::File::create(w.path("run.out")).unwrap()))
            .stderr(std::process::Stdio::from(std::fs::File::create(w.path("run.err")).unwrap()))
            .spawn()
            .unwrap();
        LiveRun { w, child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.w.path("run.err")).unwrap_or_default()
            + &std::fs::read_to_string(self.w.path("run.out")).unwrap_or_default()
    }

    /// Waits up to 60 s for `done`, failing with the run's output (and `more`'s).
    fn wait(&self, what: &str, done: &dyn Fn() -> bool, more: &dyn Fn() -> String) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done() {
            assert!(std::time::Instant::now() < end, "{what} within 60 s:\n{}\n{}", self.log(), more());
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for LiveRun<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn config_mistakes_of_odata_apps_say_where_and_what_to_do() {
    let w = Workspace::new();
    w.config("[apps.a]\nurl = \"sqlite://a.db\"\n[apps.svc]\nurl = \"https://h/odata\"\n");
    let r = w.run(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("apps.svc.url") && r.stderr.contains("kind = \"odata\""), "{}", r.stderr);
    w.config("[apps.a]\nurl = \"sqlite://a.db\"\n[apps.svc]\nkind = \"odata\"\nurl = \"https://h/odata\"\nauth = \"oauth2\"\nclient_id = \"c\"\n");
    let r = w.run(&["check"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("token_url is missing") && r.stderr.contains("client_secret_env is missing"), "{}", r.stderr);
    w.config("[apps.a]\nurl = \"sqlite://a.db\"\n[apps.svc]\nkind = \"odata\"\nurl = \"https://h/odata\"\nauth = \"basic\"\nuser = \"u\"\npassword_env = \"P\"\ntoken_env = \"T\"\ndialect = \"sap\"\n");
    let r = w.run(&["check"]);
    assert!(r.stderr.contains("apps.svc.token_env") && r.stderr.contains("does nothing with this auth"), "{}", r.stderr);
    assert!(r.stderr.contains("apps.svc.dialect"), "{}", r.stderr);
}

#[test]
fn a_dataverse_dialect_upserts_by_patch_and_sorts_keys_here_through_runs_on_disk() {
    // CAP made to upsert on PATCH, as Dataverse does.
    let options = Options { patch_as_upsert: true, ..Options::default() };
    let (Some(db), Some(server)) = (TestDb::new(Kind::Sqlite), ODataServer::start(MODEL, options)) else { return };
    db.exec(DB);
    // Keys whose byte order differs from a case-insensitive order.
    db.exec("INSERT INTO item VALUES ('C1', 'b', 'db b', 1, NULL, NULL), ('C1', 'B', 'db B', 2, NULL, NULL), ('C1', 'a', 'db a', 3, NULL, NULL)");
    server.exec(
        "INSERT INTO t_Item (co, k, name) VALUES ('C1', 'A', 'svc A'), ('C1', 'a', 'svc a'), ('C1', 'c', 'svc c'), ('C1', 'C', 'svc C')",
    );
    let w = Workspace::new();
    w.config(&config(&db, &server, "db", "dialect = \"dataverse\"\nsort_run_rows = 2"));
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let keys = |rows: Vec<Option<String>>| rows.into_iter().flatten().collect::<Vec<_>>();
    assert_eq!(
        keys(server.texts("SELECT k || '=' || name FROM t_Item ORDER BY k")),
        ["A=svc A", "B=db B", "C=svc C", "a=db a", "b=db b", "c=svc c"]
    );
    assert_eq!(
        keys(db.texts("SELECT k || '=' || name FROM item ORDER BY k")),
        ["A=svc A", "B=db B", "C=svc C", "a=db a", "b=db b", "c=svc c"]
    );
    let again = w.run(&["--format", "json", "sync"]);
    assert_eq!(super::written(&again), 0, "{}", again.stdout);
    let check = w.run(&["check"]);
    assert!(check.stdout.contains("changes read through the service's change tracking"), "{}{}", check.stdout, check.stderr);
    // Inserts went as PATCH to each row's address (CAP logs a $batch's items with `>`).
    let log = server.log();
    assert!(log.contains("> PATCH Item(co=%27C1%27,k=%27B%27)"), "{log}");
    assert!(!log.contains("> POST"), "{log}");

    // A $batch applied but never answered: sent again, its upserts are still one row each.
    db.exec("INSERT INTO item VALUES ('C1', 'd', 'db d', 4, NULL, NULL), ('C1', 'D', 'db D', 5, NULL, NULL)");
    server.fault(r#"{"reset_after_handling": 1, "match": "$batch"}"#);
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(server.faults().contains(r#""reset_after_handling":1"#), "{}", server.faults());
    assert_eq!(server.texts("SELECT count(*) FROM t_Item WHERE k IN ('d', 'D')"), [Some("2".to_string())]);
    assert_eq!(super::written(&w.run(&["--format", "json", "sync"])), 0);
}

const LOOKUP_MODEL: &str = "namespace t;
entity Grp { key id: String(36); co: String(10); code: String(10); label: String(50); }
entity Acct { key id: String(36); co: String(10); num: String(20); name: String(100); grp_id: String(36); }";

const LOOKUP_CONFIG: &str = r#"
[apps.db]
url = "DB_URL"

[apps.svc]
kind = "odata"
url = "SVC_URL"

[[maps]]
name = "groups"
[maps.db]
table = "grp"
key = "code"
company = "co"
[maps.svc]
table = "Grp"
key = "code"
company = "co"
id = "id"
id_default = "uuid"
[[maps.columns]]
db = "code"
svc = "code"
[[maps.columns]]
db = "label"
svc = "label"

[[maps]]
name = "customers"
master = "db"
[maps.db]
table = "cust"
key = "acct"
company = "co"
[maps.svc]
table = "Acct"
key = "num"
company = "co"
id = "id"
id_default = "uuid"
[[maps.columns]]
db = "acct"
svc = "num"
[[maps.columns]]
db = "name"
svc = "name"
[[maps.columns]]
db = "grp"
svc = "grp_id"
lookup = "groups"
"#;

#[test]
fn lookups_resolve_to_the_service_s_own_ids_in_the_right_company_both_ways() {
    let (Some(db), Some(server)) = (TestDb::new(Kind::Postgres), ODataServer::start(LOOKUP_MODEL, Options::default())) else { return };
    db.exec(
        "CREATE TABLE grp (co {key} NOT NULL, code {key} NOT NULL, label {text}, PRIMARY KEY (co, code));
         CREATE TABLE cust (co {key} NOT NULL, acct {key} NOT NULL, name {text}, grp {key}, PRIMARY KEY (co, acct));
         INSERT INTO grp VALUES ('C1', '10', 'Ten'), ('C2', '10', 'Ten in C2');
         INSERT INTO cust VALUES ('C1', 'A1', 'One', '10'), ('C2', 'A2', 'Two', '10')",
    );
    server.exec(
        "INSERT INTO t_Grp (id, co, code, label) VALUES ('g3', 'C2', '20', 'Twenty');
         INSERT INTO t_Acct (id, co, num, name, grp_id) VALUES ('x1', 'C2', 'K1', 'From svc', 'g3')",
    );
    let w = Workspace::new();
    w.config(&LOOKUP_CONFIG.replace("DB_URL", &db.url).replace("SVC_URL", &server.url()));
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}\n{}", run.stdout, run.stderr, server.log());
    let one = |sql: &str| server.texts(sql).into_iter().next().flatten();
    // Each account refers to its own company's group, by the service's own id.
    let c1 = one("SELECT id FROM t_Grp WHERE co = 'C1' AND code = '10'").expect("group 10 of C1 written");
    let c2 = one("SELECT id FROM t_Grp WHERE co = 'C2' AND code = '10'").expect("group 10 of C2 written");
    assert_ne!(c1, c2);
    assert_eq!(one("SELECT grp_id FROM t_Acct WHERE num = 'A1'"), Some(c1));
    assert_eq!(one("SELECT grp_id FROM t_Acct WHERE num = 'A2'"), Some(c2));
    // The service's row and its group reach the database as codes.
    assert_eq!(db.texts("SELECT grp FROM cust WHERE acct = 'K1'"), [Some("20".to_string())]);
    assert_eq!(db.texts("SELECT label FROM grp WHERE co = 'C2' AND code = '20'"), [Some("Twenty".to_string())]);
    // An edit in the database reaches the service through the row's id (its key is not the map's).
    db.exec("UPDATE cust SET name = 'One, renamed' WHERE acct = 'A1'");
    let again = w.run(&["--format", "json", "sync"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(one("SELECT name FROM t_Acct WHERE num = 'A1'").as_deref(), Some("One, renamed"));
    let third = w.run(&["--format", "json", "sync"]);
    assert_eq!(super::written(&third), 0, "{}", third.stdout);
}

/// Dataverse's change tracking, served by the test server as OData and Dataverse's
/// documentation describe it (the testkit's `delta.js`; CAP has none of its own).
const TRACKED_MODEL: &str =
    "namespace t; entity Acct { key id: String(36); name: String(100); modifiedAt: Timestamp @cds.on.insert: $now @cds.on.update: $now; }";

fn tracked_config(db: &TestDb, server: &ODataServer) -> String {
    format!(
        r#"
[apps.db]
url = "{}"

[apps.svc]
kind = "odata"
url = "{}"
dialect = "dataverse"
page_size = 2
delete_scan_seconds = 3600

[[maps]]
name = "accts"
master = "db"
[maps.db]
table = "acct"
key = "id"
[maps.svc]
table = "Acct"
key = "id"
[[maps.columns]]
db = "id"
svc = "id"
[[maps.columns]]
db = "name"
svc = "name"
"#,
        db.url,
        server.url()
    )
}

#[test]
fn live_sync_by_change_tracking_reads_changes_and_deletes_from_delta_links() {
    let options = Options { patch_as_upsert: true, track_changes: true, ..Options::default() };
    let (Some(db), Some(server)) = (TestDb::new(Kind::Sqlite), ODataServer::start(TRACKED_MODEL, options)) else { return };
    db.exec("CREATE TABLE acct (id {key} PRIMARY KEY, name {text})");
    db.exec("INSERT INTO acct VALUES ('a', 'one'), ('b', 'two'), ('c', 'three')");
    server.exec("INSERT INTO t_Acct (id, name) VALUES ('s', 'svc row')");
    let w = Workspace::new();
    w.config(&tracked_config(&db, &server));
    let start = w.run(&["start", "accts"]);
    assert_eq!(start.code, 0, "{}{}", start.stdout, start.stderr);
    assert!(start.stdout.contains("svc: changes are read through the service's change tracking"), "{}", start.stdout);
    let status = w.run(&["--format", "json", "status"]);
    assert!(status.stdout.contains(r#""capture": "track""#) || status.stdout.contains(r#""capture":"track""#), "{}", status.stdout);
    assert_eq!(db.texts("SELECT name FROM acct WHERE id = 's'"), [Some("svc row".to_string())]);

    // Changes through the service's API (tracked), more than a page of them, and one in the database.
    let send = |method: &str, path: &str, body: Option<&str>| {
        let reply = server.request(method, &format!("/odata/v4/s/{path}"), &[("Content-Type", "application/json")], body).unwrap();
        assert!(reply.status < 300, "{method} {path}: {} {}", reply.status, reply.body);
    };
    send("PATCH", "Acct('s')", Some(r#"{"name":"changed at svc"}"#));
    send("POST", "Acct", Some(r#"{"id":"n1","name":"new at svc"}"#));
    send("POST", "Acct", Some(r#"{"id":"n2","name":"also new"}"#));
    db.exec("UPDATE acct SET name = 'db change' WHERE id = 'a'");
    let run = LiveRun::start(&w);
    let wait = |what: &str, done: &dyn Fn() -> bool| run.wait(what, done, &|| server.log());
    let names = || db.texts("SELECT id || '=' || name FROM acct ORDER BY id").into_iter().flatten().collect::<Vec<_>>();
    wait("the changes both ways", &|| {
        names() == ["a=db change", "b=two", "c=three", "n1=new at svc", "n2=also new", "s=changed at svc"]
            && server.texts("SELECT name FROM t_Acct WHERE id = 'a'") == [Some("db change".to_string())]
    });
    // Deletes at the service come through the delta ($deletedEntity), not the key scan (hourly here).
    send("DELETE", "Acct('n1')", None);
    wait("the delete at the service", &|| !names().iter().any(|n| n.starts_with("n1=")));
    // A delete in the database reaches the service, and dualsync's own writes, which come back
    // through the delta, write nothing (a write would stamp the row anew).
    db.exec("DELETE FROM acct WHERE id = 'b'");
    wait("the delete in the database", &|| server.texts("SELECT count(*) FROM t_Acct WHERE id = 'b'") == [Some("0".to_string())]);
    let stamp = server.texts("SELECT modifiedAt FROM t_Acct WHERE id = 'a'");
    std::thread::sleep(std::time::Duration::from_millis(2000));
    assert_eq!(server.texts("SELECT modifiedAt FROM t_Acct WHERE id = 'a'"), stamp, "no echo write:\n{}", run.log());
    let errors = w.run(&["--format", "json", "errors"]);
    assert!(!errors.stdout.contains("\"key\""), "{}", errors.stdout);
}

#[test]
fn a_dataverse_table_without_change_tracking_is_refused_at_start_with_the_fix() {
    let options = Options { patch_as_upsert: true, ..Options::default() };
    let (Some(db), Some(server)) = (TestDb::new(Kind::Sqlite), ODataServer::start(TRACKED_MODEL, options)) else { return };
    db.exec("CREATE TABLE acct (id {key} PRIMARY KEY, name {text})");
    let w = Workspace::new();
    w.config(&tracked_config(&db, &server));
    let start = w.run(&["start", "accts"]);
    assert_ne!(start.code, 0, "{}", start.stdout);
    assert!(start.stderr.contains("Acct does not track changes") && start.stderr.contains("Track changes"), "{}", start.stderr);
}
