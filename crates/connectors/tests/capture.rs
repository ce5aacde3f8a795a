//! Change capture on each database that has it: what the triggers record,
//! that dualsync's own writes are skipped, that a cursor never passes a
//! change that commits late, deletes through the write path, and trimming.

use dualsync_connectors::{CaptureSpec, ChangeKind, Connection, Cursor, WriteBatch, WriteOp};
use dualsync_model::Value;
use dualsync_testkit::{Kind, TestDb};

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

fn each_capturing_kind(case: impl Fn(Kind, &TestDb, &mut dyn Connection)) {
    for kind in [Kind::Sqlite, Kind::Postgres, Kind::Mariadb] {
        let Some(db) = TestDb::new(kind) else { continue };
        db.exec("CREATE TABLE item (co {key} NOT NULL, k {key} NOT NULL, n {int}, PRIMARY KEY (co, k))");
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = connector.connect().unwrap();
        conn.install_capture(&CaptureSpec { table: "item".into(), columns: vec!["k".into(), "co".into()] }).unwrap();
        case(kind, &db, conn.as_mut());
    }
}

fn read_all(conn: &mut dyn Connection, from: &Cursor) -> (Vec<(Vec<Value>, ChangeKind)>, Cursor) {
    let (changes, next) = conn.read_changes("item", from, 1000).unwrap();
    (changes.into_iter().map(|c| (c.values, c.kind)).collect(), next)
}

/// A PostgreSQL reader waits for every older write transaction in its
/// database before it reads: retry a little.
fn read_until(conn: &mut dyn Connection, from: &Cursor, n: usize) -> (Vec<(Vec<Value>, ChangeKind)>, Cursor) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let read = read_all(conn, from);
        if read.0.len() >= n || std::time::Instant::now() > end {
            return read;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn triggers_record_the_key_of_every_change_by_the_app_and_none_by_dualsync() {
    each_capturing_kind(|kind, db, conn| {
        assert_eq!(conn.capture_of("item").unwrap(), Some(vec!["k".to_string(), "co".to_string()]), "{kind:?}");
        let start = conn.change_cursor().unwrap();
        db.exec("INSERT INTO item VALUES ('C1', 'A', 1), ('C1', 'B', 2)");
        db.exec("UPDATE item SET n = 5 WHERE k = 'A'");
        db.exec("UPDATE item SET k = 'B2' WHERE k = 'B'");
        db.exec("DELETE FROM item WHERE k = 'A'");
        let (changes, next) = read_until(conn, &start, 6);
        let key = |k: &str| vec![t(k), t("C1")];
        assert_eq!(
            changes,
            vec![
                (key("A"), ChangeKind::Insert),
                (key("B"), ChangeKind::Insert),
                (key("A"), ChangeKind::Update),
                (key("B2"), ChangeKind::Update),
                (key("B"), ChangeKind::Delete),
                (key("A"), ChangeKind::Delete),
            ],
            "{kind:?}"
        );
        assert_eq!(read_all(conn, &next).0, vec![], "{kind:?}: a cursor moves past what it read");
        // dualsync's own writes, deletes included, are not captured.
        let batch = WriteBatch {
            table: "item".into(),
            columns: vec!["co".into(), "k".into(), "n".into()],
            key_columns: vec!["k".into()],
            scope: vec![("co".into(), t("C1"))],
            ops: vec![WriteOp::Insert(vec![t("C1"), t("Z"), Value::Int(1)]), WriteOp::Delete { key: vec![t("B2")] }],
        };
        assert!(conn.write(&batch).unwrap().failures.is_empty());
        assert_eq!(db.texts("SELECT k FROM item ORDER BY k"), vec![Some("Z".to_string())], "{kind:?}: the delete applied");
        assert_eq!(read_all(conn, &next).0, vec![], "{kind:?}: no echo");
        assert_eq!(conn.pending_changes("item", &start).unwrap(), 6);
        assert_eq!(conn.trim_changes("item", &[next.clone(), start.clone()]).unwrap(), 0, "{kind:?}: the slowest reader holds them");
        assert_eq!(conn.trim_changes("item", &[next.clone()]).unwrap(), 6, "{kind:?}");
        conn.remove_capture("item").unwrap();
        assert_eq!(conn.capture_of("item").unwrap(), None);
        db.exec("INSERT INTO item VALUES ('C1', 'after', 1)");
        assert_eq!(conn.pending_changes("item", &start).unwrap(), 0, "{kind:?}: no capture after remove");
    });
}

/// PostgreSQL and InnoDB number changes before commit: a change of a
/// transaction that commits after a younger one must still be read, not
/// passed by the cursor.
#[test]
fn a_cursor_never_passes_a_change_that_commits_late() {
    for kind in [Kind::Postgres, Kind::Mariadb] {
        let Some(db) = TestDb::new(kind) else { continue };
        db.exec("CREATE TABLE item (co {key} NOT NULL, k {key} NOT NULL, n {int}, PRIMARY KEY (co, k))");
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = connector.connect().unwrap();
        conn.install_capture(&CaptureSpec { table: "item".into(), columns: vec!["k".into(), "co".into()] }).unwrap();
        let start = conn.change_cursor().unwrap();
        let commit = match kind {
            Kind::Postgres => {
                let mut slow = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
                slow.batch_execute("BEGIN; INSERT INTO item VALUES ('C1', 'slow', 1)").unwrap();
                Box::new(move || slow.batch_execute("COMMIT").unwrap()) as Box<dyn FnOnce()>
            }
            _ => {
                use mysql::prelude::Queryable;
                let mut slow = mysql::Conn::new(mysql::Opts::from_url(&db.url).unwrap()).unwrap();
                slow.query_drop("START TRANSACTION").unwrap();
                slow.query_drop("INSERT INTO item VALUES ('C1', 'slow', 1)").unwrap();
                Box::new(move || slow.query_drop("COMMIT").unwrap()) as Box<dyn FnOnce()>
            }
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        db.exec("INSERT INTO item VALUES ('C1', 'fast', 1)");
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let (seen, cursor) = read_all(conn.as_mut(), &start);
        assert_eq!(seen, vec![], "{kind:?}: nothing is read while an older transaction is open");
        commit();
        let (seen, _) = read_until(conn.as_mut(), &cursor, 2);
        let keys: Vec<Value> = seen.into_iter().map(|(v, _)| v[0].clone()).collect();
        assert_eq!(keys, vec![t("slow"), t("fast")], "{kind:?}");
    }
}

/// A write transaction left open in another database of the same PostgreSQL
/// server (a bulk load of another app, say) does not hold capture back: only
/// this database's transactions can write into its change table.
#[test]
fn an_open_transaction_in_another_database_does_not_delay_capture() {
    let Some(db) = TestDb::new(Kind::Postgres) else { return };
    let Some(other) = TestDb::new(Kind::Postgres) else { return };
    db.exec("CREATE TABLE item (co {key} NOT NULL, k {key} NOT NULL, n {int}, PRIMARY KEY (co, k))");
    other.exec("CREATE TABLE busy (n {int})");
    let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
    let mut conn = connector.connect().unwrap();
    conn.install_capture(&CaptureSpec { table: "item".into(), columns: vec!["k".into(), "co".into()] }).unwrap();
    let start = conn.change_cursor().unwrap();
    let mut long = postgres::Client::connect(&other.url, postgres::NoTls).unwrap();
    long.batch_execute("BEGIN; INSERT INTO busy VALUES (1)").unwrap();
    db.exec("INSERT INTO item VALUES ('C1', 'k1', 1)");
    // Retried only for transactions that end between the snapshot and the statistics read.
    let (seen, _) = read_until(conn.as_mut(), &start, 1);
    long.batch_execute("COMMIT").unwrap();
    assert_eq!(seen.len(), 1, "the change is read while another database's transaction is open: {seen:?}");
}
