//! What dualsync does to an app's SQLite journal mode: `check` and `plan`
//! (whose probe writes and rolls back) leave a rollback-journal file as it is;
//! `sync` puts it in WAL mode before it reads, so that its writers can commit
//! while its readers of the same file are still open.

use crate::util::Workspace;
use std::time::{Duration, Instant};

/// Two SQLite apps in rollback-journal mode (`journal_mode=DELETE`), one map
/// with small batches, and `rows` rows on each side whose names differ (a
/// wins), plus `rows / 4` only in a: a sync updates and inserts into b while
/// it is still reading b.
fn rollback_pair(rows: usize) -> Workspace {
    let w = Workspace::new();
    for db in ["a.db", "b.db"] {
        w.exec(db, "PRAGMA journal_mode = DELETE; CREATE TABLE item (k TEXT PRIMARY KEY, name TEXT)");
    }
    let values = |side: &str, n: usize| (0..n).map(|i| format!("('K{i:06}', '{side} {i}')")).collect::<Vec<_>>().join(", ");
    w.exec("a.db", &format!("INSERT INTO item VALUES {}", values("a", rows + rows / 4)));
    w.exec("b.db", &format!("INSERT INTO item VALUES {}", values("b", rows)));
    w.config(
        r#"
[apps.a]
url = "sqlite://a.db"

[apps.b]
url = "sqlite://b.db"

[[maps]]
name = "items"
master = "a"
batch_size = 50
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
"#,
    );
    w
}

fn journal_modes(w: &Workspace) -> [String; 2] {
    ["a.db", "b.db"].map(|db| crate::util::text(&w.one(db, "PRAGMA journal_mode")).to_string())
}

#[test]
fn check_and_plan_leave_a_rollback_journal_file_in_its_mode() {
    let w = rollback_pair(200);
    assert_eq!(journal_modes(&w), ["delete", "delete"]);

    let check = w.run(&["check"]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    assert_eq!(journal_modes(&w), ["delete", "delete"], "check switched the journal mode");

    let plan = w.run(&["--format", "json", "plan"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    let items = &plan.json()["partitions"][0];
    assert_eq!((&items["inserts"], &items["updates"]), (&serde_json::json!([0, 50]), &serde_json::json!([0, 200])), "{items}");
    assert_eq!(journal_modes(&w), ["delete", "delete"], "plan (or its probe) switched the journal mode");
    for file in ["a.db-wal", "b.db-wal", "a.db-shm", "b.db-shm"] {
        assert!(!w.path(file).exists(), "{file} was created");
    }
    assert_eq!(w.count("b.db", "SELECT count(*) FROM item WHERE name LIKE 'a %'"), 0, "plan wrote nothing");
}

#[test]
fn sync_puts_a_rollback_journal_file_in_wal_mode_before_it_reads() {
    // Enough rows that b's reader is still open when b's writer commits (50-row batches).
    let w = rollback_pair(2000);
    let began = Instant::now();
    let sync = w.run(&["--format", "json", "sync"]);
    assert_eq!(sync.code, 0, "{}{}", sync.stdout, sync.stderr);
    let totals = &sync.json()["totals"];
    assert_eq!((totals["inserted"][1].as_u64(), totals["updated"][1].as_u64()), (Some(500), Some(2000)), "{totals}");
    // In a rollback journal the writer would wait for its own reader until the 30 s busy timeout.
    assert!(began.elapsed() < Duration::from_secs(25), "the sync took {:?}", began.elapsed());
    assert_eq!(journal_modes(&w), ["wal", "wal"], "sync documents that it switches to WAL");
    assert_eq!(w.count("b.db", "SELECT count(*) FROM item WHERE name LIKE 'a %'"), 2500);
}

/// `bootstrap-company` reads the rows without a company while it writes
/// them: it too puts the file in WAL mode first, or it would wait on its own reader.
#[test]
fn bootstrap_company_on_a_rollback_journal_file_does_not_wait_on_itself() {
    let w = super::apps();
    w.exec("crm.db", "PRAGMA journal_mode = DELETE");
    w.exec(
        "crm.db",
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4999)
         INSERT INTO account (id, co, num, name) SELECT 'x' || i, NULL, printf('N%05d', i), 'n' FROM n",
    );
    let began = Instant::now();
    let run = w.run(&["bootstrap-company", "--map", "customers", "--app", "crm", "--company", "C1"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(began.elapsed() < Duration::from_secs(25), "bootstrap took {:?}", began.elapsed());
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account WHERE co = 'C1'"), 5000);
}
