//! Log capture on each database that has it: what the log gives (inserts,
//! updates, key changes, deletes, in commit order), that dualsync's own
//! writes are skipped, that a new reader resumes from a stored cursor, that
//! a table whose deletes would not name the captured columns is refused
//! with the fix, and that removing it leaves nothing behind.

use dualsync_connectors::log::{LogCursor, LogPos};
use dualsync_connectors::{CaptureSpec, ChangeKind, Connection, Cursor, WriteBatch, WriteOp};
use dualsync_model::Value;
use dualsync_testkit::{Kind, TestDb};

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

const READER: &str = "items";

fn spec() -> CaptureSpec {
    CaptureSpec { table: "item".into(), columns: vec!["k".into(), "co".into()] }
}

/// Reads until `n` changes arrived (the stream delivers as the server sends), or 10 s passed.
fn read_until(conn: &mut dyn Connection, from: &Cursor, n: usize) -> (Vec<(Vec<Value>, ChangeKind)>, Cursor) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut at = from.clone();
    loop {
        let (changes, next) = conn.read_changes("item", &at, 1000).unwrap();
        seen.extend(changes.into_iter().map(|c| (c.values, c.kind)));
        at = next;
        if seen.len() >= n || std::time::Instant::now() > end {
            return (seen, at);
        }
    }
}

/// Reads with `limit` until `n` changes arrived, or 10 s passed.
fn read_until_limit(conn: &mut dyn Connection, from: &Cursor, n: usize, limit: usize) -> (Vec<(Vec<Value>, ChangeKind)>, Cursor) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut at = from.clone();
    loop {
        let (changes, next) = conn.read_changes("item", &at, limit).unwrap();
        seen.extend(changes.into_iter().map(|c| (c.values, c.kind)));
        at = next;
        if seen.len() >= n || std::time::Instant::now() > end {
            return (seen, at);
        }
    }
}

fn log_kinds() -> Vec<TestDb> {
    [Kind::Postgres, Kind::Mariadb].into_iter().filter_map(TestDb::new).collect()
}

/// A session of the app's own, to commit a transaction late.
enum Session {
    Postgres(Box<postgres::Client>),
    Mariadb(mysql::Conn),
}

impl Session {
    fn open(db: &TestDb) -> Session {
        match db.kind {
            Kind::Postgres => Session::Postgres(Box::new(postgres::Client::connect(&db.url, postgres::NoTls).unwrap())),
            _ => Session::Mariadb(mysql::Conn::new(mysql::Opts::from_url(&db.url).unwrap()).unwrap()),
        }
    }

    fn run(&mut self, sql: &str) {
        match self {
            Session::Postgres(c) => c.batch_execute(sql).unwrap(),
            Session::Mariadb(c) => {
                use mysql::prelude::Queryable;
                for statement in sql.split(';') {
                    c.query_drop(statement).unwrap();
                }
            }
        }
    }
}

#[test]
fn the_log_gives_every_change_by_the_app_in_commit_order_and_none_by_dualsync() {
    for db in log_kinds() {
        let kind = db.kind;
        db.exec("CREATE TABLE item (co {key} NOT NULL, k {key} NOT NULL, n {int}, PRIMARY KEY (co, k))");
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = connector.connect().unwrap();
        assert_eq!(conn.log_capture_missing().unwrap(), Vec::<String>::new(), "{kind:?}: CI's servers are set up for log capture");
        let start = conn.install_log_capture(&spec(), READER).unwrap();
        assert!(start.reads_log());
        assert_eq!(conn.log_capture_of("item", READER).unwrap(), Some(vec!["k".to_string(), "co".to_string()]), "{kind:?}");
        db.exec("INSERT INTO item VALUES ('C1', 'A', 1), ('C1', 'B', 2)");
        db.exec("UPDATE item SET n = 5 WHERE k = 'A'");
        db.exec("UPDATE item SET k = 'B2' WHERE k = 'B'");
        db.exec("DELETE FROM item WHERE k = 'A'");
        let (changes, next) = read_until(conn.as_mut(), &start, 6);
        let key = |k: &str| vec![t(k), t("C1")];
        assert_eq!(
            changes,
            vec![
                (key("A"), ChangeKind::Insert),
                (key("B"), ChangeKind::Insert),
                (key("A"), ChangeKind::Update),
                (key("B"), ChangeKind::Delete),
                (key("B2"), ChangeKind::Update),
                (key("A"), ChangeKind::Delete),
            ],
            "{kind:?}"
        );
        // dualsync's own writes, deletes included, do not come back.
        let batch = WriteBatch {
            table: "item".into(),
            columns: vec!["co".into(), "k".into(), "n".into()],
            key_columns: vec!["k".into()],
            scope: vec![("co".into(), t("C1"))],
            ops: vec![WriteOp::Insert(vec![t("C1"), t("Z"), Value::Int(1)]), WriteOp::Delete { key: vec![t("B2")] }],
        };
        assert!(conn.write(&batch).unwrap().failures.is_empty());
        db.exec("INSERT INTO item VALUES ('C1', 'mark', 1)");
        let (changes, next) = read_until(conn.as_mut(), &next, 1);
        assert_eq!(changes, vec![(key("mark"), ChangeKind::Insert)], "{kind:?}: no echo of dualsync's writes");

        // A transaction that commits late comes in its commit order, after a younger one.
        let mut slow = Session::open(&db);
        slow.run("START TRANSACTION; INSERT INTO item VALUES ('C1', 'slow', 1)");
        db.exec("INSERT INTO item VALUES ('C1', 'fast', 1)");
        let (changes, next) = read_until(conn.as_mut(), &next, 1);
        assert_eq!(changes, vec![(key("fast"), ChangeKind::Insert)], "{kind:?}");
        slow.run("COMMIT");
        let (changes, next) = read_until(conn.as_mut(), &next, 1);
        assert_eq!(changes, vec![(key("slow"), ChangeKind::Insert)], "{kind:?}");

        // Another process (a restart) resumes from the stored cursor: nothing again, nothing missed.
        drop(conn);
        drop(connector);
        db.exec("INSERT INTO item VALUES ('C1', 'while down', 1)");
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = connector.connect().unwrap();
        let (changes, next) = read_until(conn.as_mut(), &next, 1);
        assert_eq!(changes, vec![(key("while down"), ChangeKind::Insert)], "{kind:?}: resumed from the cursor");
        let (changes, _) = conn.read_changes("item", &next, 1000).unwrap();
        assert_eq!(changes.len(), 0, "{kind:?}: caught up");

        // A reader that stopped within a transaction takes the rest of it after a restart, and nothing twice.
        db.exec("INSERT INTO item VALUES ('C1', 't1', 1), ('C1', 't2', 1), ('C1', 't3', 1)");
        let (changes, mid) = read_until_limit(conn.as_mut(), &next, 1, 1);
        assert_eq!(changes, vec![(key("t1"), ChangeKind::Insert)], "{kind:?}");
        drop(conn);
        drop(connector);
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = connector.connect().unwrap();
        let (changes, next) = read_until(conn.as_mut(), &mid, 2);
        assert_eq!(changes, vec![(key("t2"), ChangeKind::Insert), (key("t3"), ChangeKind::Insert)], "{kind:?}: the rest, once");
        let (changes, next) = conn.read_changes("item", &next, 1000).unwrap();
        assert_eq!(changes.len(), 0, "{kind:?}: caught up");

        if kind == Kind::Mariadb {
            // Where skip_replication cannot be set (MySQL), dualsync's transactions write an echo row first: skipped too.
            let mut session = Session::open(&db);
            let mark = dualsync_connectors::mysql::MARK_TRANSACTION;
            session.run(&format!("START TRANSACTION; {mark}; INSERT INTO item VALUES ('C1', 'echo', 1); COMMIT"));
            // An XA transaction is taken at its PREPARE, and its COMMIT ends nothing twice.
            session.run("XA START 'dualsync'; INSERT INTO item VALUES ('C1', 'xa', 1); XA END 'dualsync'; XA PREPARE 'dualsync'; XA COMMIT 'dualsync'");
            // The log moves on to a new file.
            db.exec("FLUSH BINARY LOGS");
            db.exec("INSERT INTO item VALUES ('C1', 'next file', 1)");
            let (changes, later) = read_until(conn.as_mut(), &next, 2);
            let expected = vec![(key("xa"), ChangeKind::Insert), (key("next file"), ChangeKind::Insert)];
            assert_eq!(changes, expected, "no echo, and on across files");
            let log = |c: &Cursor| LogCursor::parse(c).unwrap().unwrap();
            assert!(log(&later).pos.major >> 32 > log(&next).pos.major >> 32, "{later:?} is in a later file than {next:?}");
            // A place in a file the server no longer has (file 0): the map must be restarted.
            let gone = LogCursor { stream: log(&next).stream, pos: LogPos::new(4, 0) }.to_cursor();
            let fresh = dualsync_connectors::open(&db.database_url(), None).unwrap();
            let err = fresh.connect().unwrap().read_changes("item", &gone, 10).unwrap_err();
            assert_eq!(err.kind, dualsync_connectors::ErrorKind::Schema, "{err}");
            assert!(err.message.contains("must be restarted"), "{err}");
        }

        conn.remove_log_capture("item", READER).unwrap();
        assert_eq!(conn.log_capture_of("item", READER).unwrap(), None, "{kind:?}");
        let err = conn.read_changes("item", &next, 10).unwrap_err();
        assert!(err.message.contains("not in this database"), "{kind:?}: {err}");
        let left = match kind {
            Kind::Postgres => "SELECT count(*)::text FROM pg_replication_slots WHERE database = current_database()",
            _ => "SELECT CAST(count(*) AS CHAR) FROM dualsync_log_capture",
        };
        assert_eq!(db.texts(left), vec![Some("0".into())], "{kind:?}");
    }
}

/// PostgreSQL names a deleted row by its replica identity; MariaDB's log has
/// full row images (binlog_row_image = FULL, checked), so any table will do there.
#[test]
fn a_table_whose_deletes_would_not_name_the_captured_columns_is_refused_with_the_fix() {
    for db in log_kinds() {
        let kind = db.kind;
        db.exec("CREATE TABLE item (id {int} PRIMARY KEY, co {key} NOT NULL, k {key} NOT NULL)");
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = connector.connect().unwrap();
        if kind == Kind::Postgres {
            let err = conn.install_log_capture(&spec(), READER).unwrap_err();
            assert!(err.message.contains("REPLICA IDENTITY FULL"), "{err}");
            assert!(err.message.contains("\"k\""), "names what is left out: {err}");
            assert_eq!(conn.log_capture_of("item", READER).unwrap(), None);
            db.exec("ALTER TABLE item REPLICA IDENTITY FULL");
        }
        let start = conn.install_log_capture(&spec(), READER).unwrap();
        db.exec("INSERT INTO item VALUES (1, 'C1', 'A'); UPDATE item SET co = 'C2' WHERE id = 1; DELETE FROM item");
        let (changes, _) = read_until(conn.as_mut(), &start, 4);
        let kinds: Vec<(Vec<Value>, ChangeKind)> = changes;
        assert_eq!(
            kinds,
            vec![
                (vec![t("A"), t("C1")], ChangeKind::Insert),
                (vec![t("A"), t("C1")], ChangeKind::Delete),
                (vec![t("A"), t("C2")], ChangeKind::Update),
                (vec![t("A"), t("C2")], ChangeKind::Delete),
            ],
            "{kind:?}: a company change leaves the old company"
        );
        conn.remove_log_capture("item", READER).unwrap();
    }
}

#[test]
fn values_come_typed_as_trigger_capture_records_them() {
    for db in log_kinds() {
        let kind = db.kind;
        db.exec("CREATE TABLE num (id {int} PRIMARY KEY, amount {decimal} NOT NULL, name {key} NOT NULL, r {real})");
        if kind == Kind::Postgres {
            db.exec("ALTER TABLE num REPLICA IDENTITY FULL");
        }
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = connector.connect().unwrap();
        let columns = ["id", "amount", "name", "r"].map(String::from).to_vec();
        let start = conn.install_log_capture(&CaptureSpec { table: "num".into(), columns }, "nums").unwrap();
        db.exec("INSERT INTO num VALUES (7, 1.50, 'x', 0.25)");
        let (changes, _) = read_until(conn.as_mut(), &start, 1);
        let values = vec![Value::Int(7), Value::Decimal("1.50".into()), t("x"), Value::Float(0.25)];
        assert_eq!(changes, vec![(values, ChangeKind::Insert)], "{kind:?}");
        conn.remove_log_capture("num", "nums").unwrap();
    }
}

/// Drops the test's user whatever happens.
struct User<'a>(&'a TestDb, String);

impl Drop for User<'_> {
    fn drop(&mut self) {
        self.0.exec(&format!("DROP USER IF EXISTS {}", self.1));
    }
}

#[test]
fn mariadb_names_the_grants_log_capture_lacks() {
    let Some(db) = TestDb::new(Kind::Mariadb) else { return };
    let name = format!("dualsync_lc{}", std::process::id());
    let user = User(&db, format!("'{name}'@'127.0.0.1'"));
    let database = db.url.rsplit('/').next().unwrap().to_string();
    db.exec(&format!("CREATE USER {}", user.1));
    db.exec(&format!("GRANT ALL ON `{database}`.* TO {}", user.1));
    db.exec("CREATE TABLE item (co {key} NOT NULL, k {key} NOT NULL, n {int}, PRIMARY KEY (co, k))");
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let url = format!("{scheme}://{name}@{}", rest.split_once('@').map_or(rest, |(_, host)| host));
    let url = dualsync_model::config::DatabaseUrl::parse(&url, std::path::Path::new("/")).unwrap();
    let connector = dualsync_connectors::open(&url, None).unwrap();
    let mut conn = connector.connect().unwrap();
    let missing = conn.log_capture_missing().unwrap();
    for grant in ["REPLICATION SLAVE", "BINLOG MONITOR"] {
        let statement = format!("`GRANT {grant} ON *.* TO {}`", user.1);
        assert!(missing.iter().any(|m| m.contains(&statement)), "{statement} in {missing:?}");
    }
    let err = conn.install_log_capture(&spec(), READER).unwrap_err();
    assert_eq!(err.kind, dualsync_connectors::ErrorKind::Unsupported, "{err}");

    db.exec(&format!("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {}", user.1));
    let mut conn = connector.connect().unwrap();
    assert_eq!(conn.log_capture_missing().unwrap(), Vec::<String>::new());
    let start = conn.install_log_capture(&spec(), READER).unwrap();
    // The user's own writes (skip_replication needs no privilege) do not come back; the app's do.
    let batch = WriteBatch {
        table: "item".into(),
        columns: vec!["co".into(), "k".into(), "n".into()],
        key_columns: vec!["k".into()],
        scope: vec![("co".into(), t("C1"))],
        ops: vec![WriteOp::Insert(vec![t("C1"), t("Z"), Value::Int(1)])],
    };
    assert!(conn.write(&batch).unwrap().failures.is_empty());
    db.exec("INSERT INTO item VALUES ('C1', 'A', 1)");
    let (changes, _) = read_until(conn.as_mut(), &start, 1);
    assert_eq!(changes, vec![(vec![t("A"), t("C1")], ChangeKind::Insert)]);
    assert_eq!(db.texts("SELECT CAST(count(*) AS CHAR) FROM dualsync_log_echo"), vec![Some("0".into())], "skip_replication, no echo row");
    conn.remove_log_capture("item", READER).unwrap();
}

/// Another database of the server writes big records all the while (WAL
/// flushed in the middle of records): no change of the table is passed over
/// while the stream reads as it goes. (A keepalive's position can fall within
/// a commit record not yet decoded; a cursor moved there once lost the change.)
#[test]
fn a_busy_server_never_hides_a_change() {
    let Some(db) = TestDb::new(Kind::Postgres) else { return };
    let Some(other) = TestDb::new(Kind::Postgres) else { return };
    db.exec("CREATE TABLE item (co {key} NOT NULL, k {key} NOT NULL, n {int}, PRIMARY KEY (co, k))");
    other.exec("CREATE TABLE noise (t text)");
    let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
    let mut conn = connector.connect().unwrap();
    let mut at = conn.install_log_capture(&spec(), READER).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut seen = 0;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut noise = postgres::Client::connect(&other.url, postgres::NoTls).unwrap();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                noise.batch_execute("INSERT INTO noise SELECT repeat(md5(random()::text), 300) FROM generate_series(1, 20)").unwrap();
            }
        });
        let mut app = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
        for i in 0..400 {
            app.batch_execute(&format!("INSERT INTO item VALUES ('C1', 'k{i}', {i})")).unwrap();
            let (changes, next) = conn.read_changes("item", &at, 1000).unwrap();
            seen += changes.len();
            at = next;
        }
        let (changes, _) = read_until(conn.as_mut(), &at, 400 - seen);
        seen += changes.len();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    assert_eq!(seen, 400, "every insert read once");
    conn.remove_log_capture("item", READER).unwrap();
}

/// A short-lived process (a `sync`) moves its slot on to what it stored
/// before it ends: else every run would read from the slot's first place and
/// the server would keep the WAL from there.
#[test]
fn a_process_that_ends_confirms_what_it_stored() {
    let Some(db) = TestDb::new(Kind::Postgres) else { return };
    db.exec("CREATE TABLE item (co {key} NOT NULL, k {key} NOT NULL, n {int}, PRIMARY KEY (co, k))");
    let confirmed = || db.texts("SELECT (confirmed_flush_lsn - '0/0')::text FROM pg_replication_slots WHERE database = current_database()");
    let start = {
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        connector.connect().unwrap().install_log_capture(&spec(), READER).unwrap()
    };
    let before = confirmed();
    db.exec("INSERT INTO item VALUES ('C1', 'a', 1), ('C1', 'b', 2)");
    let stored = {
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = connector.connect().unwrap();
        let (changes, next) = read_until(conn.as_mut(), &start, 2);
        assert_eq!(changes.len(), 2);
        // The engine saved `next`; the next read says so (and finds nothing more).
        let (more, _) = conn.read_changes("item", &next, 1000).unwrap();
        assert!(more.is_empty());
        next
    };
    let lsn: u64 = dualsync_connectors::log::LogCursor::parse(&stored).unwrap().unwrap().pos.major;
    let after: u64 = confirmed()[0].as_deref().unwrap().parse::<f64>().unwrap() as u64;
    assert!(after >= lsn && confirmed() != before, "the slot was confirmed up to the stored cursor ({lsn}): {after}");
    let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
    connector.connect().unwrap().remove_log_capture("item", READER).unwrap();
}

/// What `sync` on a started map does: a new process reads in batches until
/// one comes back short. Every change committed before its first read must
/// be in those batches, even while the server is still sending them: later
/// reads wait for the log's end the first one found, not only the first.
#[test]
fn reading_until_a_short_batch_gets_every_change_committed_before_the_first_read() {
    for db in log_kinds() {
        let kind = db.kind;
        db.exec("CREATE TABLE item (co {key} NOT NULL, k {key} NOT NULL, n {int}, PRIMARY KEY (co, k))");
        let start = {
            let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
            connector.connect().unwrap().install_log_capture(&spec(), READER).unwrap()
        };
        // Many small transactions: the server sends them one by one as it decodes.
        let mut app = Session::open(&db);
        const N: usize = 3000;
        for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
            let sql: String = chunk.iter().map(|i| format!("BEGIN; INSERT INTO item VALUES ('C1', 'k{i}', {i}); COMMIT;")).collect();
            app.run(sql.trim_end_matches(';'));
        }
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = connector.connect().unwrap();
        let (mut seen, mut at) = (0, start);
        loop {
            let (changes, next) = conn.read_changes("item", &at, 100).unwrap();
            seen += changes.len();
            at = next;
            if changes.len() < 100 {
                break;
            }
        }
        assert_eq!(seen, N, "{kind:?}: the reads until a short one gave every change committed before them");
        conn.remove_log_capture("item", READER).unwrap();
    }
}
