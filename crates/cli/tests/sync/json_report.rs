//! `sync --format json` prints exactly one JSON document, also when it
//! reconciles started maps (their captured changes) and diffs stopped maps
//! whole in the same run.

use crate::util::Workspace;
use serde_json::{json, Value};

/// Two SQLite apps with two tables each; map `live` will be started, map `batch` not.
fn two_maps() -> Workspace {
    let w = Workspace::new();
    for db in ["a.db", "b.db"] {
        w.exec(db, "CREATE TABLE item (k TEXT PRIMARY KEY, name TEXT); CREATE TABLE part (k TEXT PRIMARY KEY, name TEXT)");
    }
    let map = |name: &str, table: &str| {
        format!(
            r#"
[[maps]]
name = "{name}"
master = "a"
[maps.a]
table = "{table}"
key = "k"
[maps.b]
table = "{table}"
key = "k"
[[maps.columns]]
a = "k"
b = "k"
[[maps.columns]]
a = "name"
b = "name"
"#
        )
    };
    w.config(&format!(
        "[apps.a]\nurl = \"sqlite://a.db\"\n\n[apps.b]\nurl = \"sqlite://b.db\"\n{}{}",
        map("live", "item"),
        map("batch", "part")
    ));
    w
}

/// stdout must parse as one JSON value (serde_json refuses a second document as trailing characters).
fn one_document(w: &Workspace, args: &[&str]) -> Value {
    let run = w.run(args);
    assert_eq!(run.code, 0, "{args:?}\n{}\n{}", run.stdout, run.stderr);
    run.json()
}

#[test]
fn sync_over_started_and_stopped_maps_prints_one_json_document() {
    let w = two_maps();
    w.exec("a.db", "INSERT INTO item VALUES ('I1', 'one'); INSERT INTO part VALUES ('P1', 'first')");
    let start = w.run(&["start", "live"]);
    assert_eq!(start.code, 0, "{}{}", start.stdout, start.stderr);
    assert_eq!(w.count("b.db", "SELECT count(*) FROM item"), 1, "the initial sync of the started map");

    // A change for the started map's capture, and rows for the stopped map's full diff.
    w.exec("a.db", "UPDATE item SET name = 'one, renamed' WHERE k = 'I1'; INSERT INTO part VALUES ('P2', 'second')");
    let report = one_document(&w, &["--format", "json", "sync"]);
    assert_eq!(report["status"], "ok", "{report:#}");

    let incremental = &report["incremental"];
    assert!(incremental["run"].is_number(), "{report:#}");
    assert_eq!(incremental["status"], "ok");
    let live: Vec<&Value> = incremental["maps"].as_array().unwrap().iter().collect();
    assert_eq!(live.len(), 1, "{report:#}");
    assert_eq!((&live[0]["map"], &live[0]["changes"], &live[0]["updated"]), (&json!("live"), &json!(1), &json!([0, 1])), "{report:#}");

    let full = &report["full"];
    assert!(full["run"].is_number(), "{report:#}");
    assert_ne!(full["run"], incremental["run"], "two runs");
    assert_eq!(full["status"], "ok");
    let partitions = full["partitions"].as_array().unwrap();
    assert!(!partitions.is_empty() && partitions.iter().all(|p| p["map"] == "batch"), "only the stopped map is diffed whole: {report:#}");
    assert_eq!(full["totals"]["inserted"], json!([0, 2]), "{report:#}");
    assert!(full["errors"].as_array().unwrap().is_empty());

    assert_eq!(w.one("b.db", "SELECT name FROM item WHERE k = 'I1'"), rusqlite::types::Value::Text("one, renamed".into()));
    assert_eq!(w.count("b.db", "SELECT count(*) FROM part"), 2);
}

#[test]
fn sync_over_one_kind_of_map_keeps_its_report_as_it_was() {
    let w = two_maps();
    w.exec("a.db", "INSERT INTO item VALUES ('I1', 'one'); INSERT INTO part VALUES ('P1', 'first')");
    assert_eq!(w.run(&["start", "live"]).code, 0);
    w.exec("a.db", "UPDATE item SET name = 'renamed' WHERE k = 'I1'");

    // Started maps only: the incremental run's report, fields at the top.
    let live = one_document(&w, &["--format", "json", "sync", "--map", "live"]);
    assert_eq!(live["status"], "ok");
    assert_eq!(live["maps"][0]["map"], "live", "{live:#}");
    assert!(live.get("incremental").is_none() && live.get("full").is_none(), "{live:#}");

    // Stopped maps only: the full diff's report, fields at the top.
    let full = one_document(&w, &["--format", "json", "sync", "--map", "batch"]);
    assert_eq!(full["status"], "ok");
    assert_eq!(full["totals"]["inserted"], json!([0, 1]), "{full:#}");
    assert!(full["partitions"].is_array() && full.get("incremental").is_none(), "{full:#}");
}
