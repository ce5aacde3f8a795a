//! `dualsync bench --profile customers`: the realistic customers table,
//! generated, synced and verified against the databases' own bulk loads.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};

fn bench_customers(extra: &[&str]) -> serde_json::Value {
    let w = Workspace::new();
    let mut args = vec!["--format", "json", "bench", "--profile", "customers", "--rows", "2000"];
    args.extend_from_slice(extra);
    let run = w.run(&args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["profile"], "customers", "{report}");
    assert_eq!(report["rows"], 2000, "{report}");
    assert_eq!(report["companies"], 8, "{report}");
    assert_eq!(report["oneway_verified"], true, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert!(!report["baselines"].as_array().unwrap().is_empty(), "{report}");
    report
}

#[test]
fn bench_customers_sqlite_to_sqlite_is_verified() {
    let report = bench_customers(&["--mode", "both", "--lookups", "2"]);
    assert_eq!(report["baselines"][0]["label"], "SQLite INSERT INTO … SELECT (decoded, WAL)", "{report}");
    assert_eq!(report["both_verified"], true, "{report}");
    assert_eq!(report["lookups_verified"], true, "{report}");
}

#[test]
fn bench_customers_sqlite_to_postgres_is_verified() {
    // The bench creates and drops its own databases on the server this one is on.
    let Some(server) = TestDb::new(Kind::Postgres) else { return };
    let report = bench_customers(&["--target", "postgres", "--postgres", &server.url]);
    assert_eq!(report["target"], "postgres", "{report}");
    assert_eq!(report["baselines"][0]["label"], "psql \\copy from CSV", "{report}");
}

/// `bench --live` on PostgreSQL: both captures and the logical replication
/// baseline run, every change sent is seen, and `stop` leaves no slot behind.
#[test]
fn bench_live_postgres_measures_both_captures_against_logical_replication() {
    let Some(server) = TestDb::new(Kind::Postgres) else { return };
    let w = Workspace::new();
    let args = ["--format", "json", "bench", "--live", "--rows", "2000", "--rate", "200", "--seconds", "1"];
    let run = w.run(&[&args[..], &["--source", "postgres", "--target", "postgres", "--postgres", &server.url]].concat());
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    for capture in ["trigger", "log"] {
        assert_eq!(report[capture]["run"]["changes_sent"], 200, "{report}");
        assert_eq!(report[capture]["run"]["changes_seen"], 200, "{capture}: {report}");
        assert!(report[capture]["capture_cost_ratio"].as_f64().unwrap() > 0.0, "{report}");
    }
    assert_eq!(report["logical_replication"]["changes_seen"], 200, "{report}");
    assert_eq!(
        server.texts("SELECT count(*)::text FROM pg_replication_slots WHERE database LIKE 'dualsync\\_live%'"),
        vec![Some("0".into())]
    );
}
