//! The error log's retention: `errors purge --older-than` deletes exactly the
//! errors it names (all, or with --resolved the settled ones), and
//! `[state] retention_days` makes `run` delete settled ones on its own while
//! open ones stay, whatever their age.

use crate::util::Workspace;
use std::time::{Duration, Instant};

const LONG: &str = "a name far longer than the twenty characters of the CRM";

/// Sets the errors of these accounts as last seen long ago, with this status.
fn age(w: &Workspace, accounts: &[&str], status: &str) {
    for acct in accounts {
        w.exec(
            ".dualsync/state.db",
            &format!("UPDATE errors SET last_seen = '2020-01-01T00:00:00.000Z', status = '{status}' WHERE key LIKE '%\"{acct}\"%'"),
        );
    }
}

/// The accounts in the error log, with their status.
fn logged(w: &Workspace) -> Vec<String> {
    let errors = w.run(&["--format", "json", "errors", "--all"]).json();
    let mut out: Vec<String> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!("{} {}", e["key"].to_string().replace(['"', '\\', '[', ']'], "").replace("C1,", ""), e["status"].as_str().unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_purge_deletes_exactly_what_it_says() {
    let w = super::apps();
    for acct in ["A1", "A2", "A3", "A4"] {
        w.exec("erp.db", &format!("INSERT INTO cust (co, acct, name) VALUES ('C1', '{acct}', '{LONG}')"));
    }
    assert_eq!(w.run(&["sync"]).code, 3, "four rows refused by the CRM");
    age(&w, &["A1"], "resolved");
    age(&w, &["A2"], "skipped");
    age(&w, &["A3"], "open");
    assert_eq!(logged(&w), ["A1 resolved", "A2 skipped", "A3 open", "A4 open"]);

    let purge = w.run(&["errors", "purge", "--older-than", "30d", "--resolved"]);
    assert_eq!(purge.code, 0, "{}", purge.stderr);
    assert!(purge.stdout.starts_with("deleted 2 errors last seen before "), "{}", purge.stdout);
    assert!(purge.stdout.contains(": 0 open, 1 resolved, 1 skipped"), "{}", purge.stdout);
    assert_eq!(logged(&w), ["A3 open", "A4 open"], "open errors stay under --resolved");

    let purge = w.run(&["--format", "json", "errors", "purge", "--older-than", "4w"]).json();
    assert_eq!((purge["deleted"].as_u64(), purge["open"].as_u64()), (Some(1), Some(1)), "{purge}");
    assert_eq!(logged(&w), ["A4 open"], "the error seen today stays");

    for (args, said) in [
        (&["errors", "purge", "--older-than", "30x"][..], "--older-than \"30x\": give a number and a unit"),
        (&["errors", "purge"][..], "--older-than"),
        (&["errors", "purge", "--older-than", "30d", "--map", "nope"][..], "--map nope: no such map"),
    ] {
        let run = w.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(said), "{args:?} should say {said:?}: {}", run.stderr);
    }
    assert_eq!(logged(&w), ["A4 open"], "bad commands delete nothing");
}

#[test]
fn retention_days_deletes_settled_errors_as_run_goes_and_keeps_open_ones() {
    let w = super::apps();
    for acct in ["A1", "A2", "A3"] {
        w.exec("erp.db", &format!("INSERT INTO cust (co, acct, name) VALUES ('C1', '{acct}', '{LONG}')"));
    }
    assert_eq!(w.run(&["sync"]).code, 3);
    age(&w, &["A1"], "resolved");
    age(&w, &["A2"], "open");
    let config = std::fs::read_to_string(w.path("dualsync.toml")).unwrap();
    w.config(&format!("[state]\nretention_days = 0\n{config}"));
    let bad = w.run(&["check"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("state.retention_days: must be a whole number of days from 1 to 36500"), "{}", bad.stderr);
    w.config(&format!("[state]\nretention_days = 30\n{config}"));

    let mut run = super::spawn(&w, &["run"], "run");
    let end = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = std::fs::read_to_string(w.path("run.out")).unwrap_or_default();
        if out.contains("retention:") || Instant::now() > end {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = run.kill();
    let _ = run.wait();
    assert!(out.contains("retention: deleted 1 settled error(s) and 0 settled conflict(s) from before "), "{out}");
    assert_eq!(logged(&w), ["A2 open", "A3 open"], "open errors stay, whatever their age");
}
