//! SQLite write paths wait for the application's writers instead of failing:
//! while another program commits to the file every 2 ms (in WAL mode, as an
//! application would), installing, removing and trimming change capture and
//! writing batches all succeed. A deferred transaction that reads and then
//! writes cannot wait for the lock in WAL mode (`database is locked` at once,
//! whatever the busy timeout); `BEGIN IMMEDIATE` can.

use dualsync_connectors::{CaptureSpec, Cursor, WriteBatch, WriteOp};
use dualsync_model::config::DatabaseUrl;
use dualsync_model::Value;
use dualsync_testkit::{Kind, TestDb};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn path_of(db: &TestDb) -> PathBuf {
    match db.database_url() {
        DatabaseUrl::Sqlite(path) => path,
        other => panic!("not a SQLite URL: {other:?}"),
    }
}

/// Another program that commits a row to `busy` every 2 ms until stopped, holding the write lock 1 ms each time.
fn busy_app(path: PathBuf, stop: Arc<AtomicBool>, commits: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let app = rusqlite::Connection::open(&path).unwrap();
        app.busy_timeout(Duration::from_secs(30)).unwrap();
        let mut n = 0i64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            // An app that reads, then writes, begins immediate (a deferred one would fail as dualsync did).
            app.execute_batch(&format!("BEGIN IMMEDIATE; SELECT count(*) FROM item; INSERT INTO busy VALUES ({n})"))
                .unwrap_or_else(|e| panic!("the app's transaction {n} failed: {e}"));
            std::thread::sleep(Duration::from_millis(1));
            app.execute_batch("COMMIT").unwrap_or_else(|e| panic!("the app's commit {n} failed: {e}"));
            commits.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

#[test]
fn capture_install_remove_and_trim_wait_for_a_busy_app() {
    let db = TestDb::new(Kind::Sqlite).unwrap();
    db.exec("CREATE TABLE item (co TEXT NOT NULL, k TEXT NOT NULL, n INTEGER, PRIMARY KEY (co, k)); CREATE TABLE busy (n INTEGER)");
    db.exec("PRAGMA journal_mode = WAL");
    let path = path_of(&db);
    let (stop, commits) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let app = busy_app(path, stop.clone(), commits.clone());
    while commits.load(Ordering::Relaxed) < 5 {
        std::thread::sleep(Duration::from_millis(1));
    }

    let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
    let mut conn = connector.connect().unwrap();
    let spec = CaptureSpec { table: "item".into(), columns: vec!["k".into(), "co".into()] };
    let mut failures = Vec::new();
    let before = commits.load(Ordering::Relaxed);
    for round in 0..10 {
        for step in ["install", "remove", "install again", "trim", "write"] {
            // dualsync does some work between steps (a `start` reads and runs the initial sync): the app gets in.
            std::thread::sleep(Duration::from_millis(1));
            let result = match step {
                "install" | "install again" => conn.install_capture(&spec),
                "remove" => conn.remove_capture("item"),
                "trim" => conn.trim_changes("item", &[Cursor("0".into())]).map(|_| ()),
                // dualsync's own write (marked, so that capture skips it).
                _ => conn
                    .write(&WriteBatch {
                        table: "item".into(),
                        columns: vec!["co".into(), "k".into(), "n".into()],
                        key_columns: vec!["co".into(), "k".into()],
                        scope: Vec::new(),
                        ops: vec![WriteOp::Insert(vec![Value::Text("C1".into()), Value::Text(format!("K{round}")), Value::Int(round)])],
                    })
                    .map(|outcome| assert!(outcome.failures.is_empty(), "{:?}", outcome.failures)),
            };
            if let Err(e) = result {
                failures.push(format!("round {round}, {step}: {e}"));
            }
        }
    }
    let during = commits.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    app.join().expect("the app's thread");
    assert!(failures.is_empty(), "{} of 50 steps failed while the app committed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(conn.capture_of("item").unwrap(), Some(vec!["k".to_string(), "co".to_string()]));
    assert!(during >= 5, "the app committed only {during} times meanwhile");
}
