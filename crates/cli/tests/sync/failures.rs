use super::apps;
use crate::util::{text, Workspace};

#[test]
fn refused_rows_are_isolated_logged_and_retried_after_a_fix() {
    let w = apps();
    {
        let erp = w.db("erp.db");
        for i in 0..50 {
            let name = match i {
                7 => Some("a name far longer than twenty characters".to_string()),
                30 => None,
                _ => Some(format!("ok {i}")),
            };
            erp.execute("INSERT INTO cust (co, acct, name) VALUES ('C1', ?1, ?2)", rusqlite::params![format!("A{i:02}"), name]).unwrap();
        }
    }
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 3, "rows failed, all logged: {}{}", run.stdout, run.stderr);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account"), 48, "every other row commits");
    let errors = w.run(&["--format", "json", "errors"]).json();
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), 2);
    let by_key = |k: &str| errors.iter().find(|e| e["key"][0] == k).unwrap_or_else(|| panic!("no error for {k}"));
    assert!(by_key("A07")["message"].as_str().unwrap().contains("CHECK constraint failed"));
    assert_eq!(by_key("A07")["column"], "name");
    assert_eq!(by_key("A07")["value"], "a name far longer than twenty characters");
    assert!(by_key("A30")["message"].as_str().unwrap().contains("NOT NULL constraint failed: account.name"));
    assert_eq!(by_key("A30")["target_app"], "crm");
    assert_eq!(by_key("A30")["company"], "C1");

    // Still broken: a retry fails again and counts the attempt.
    assert_eq!(w.run(&["retry"]).code, 3);
    let again = w.run(&["--format", "json", "errors"]).json();
    assert_eq!(again[0]["attempts"], 2);

    // Fixed at the source: retry brings them over, one error at a time or all.
    w.exec("erp.db", "UPDATE cust SET name = 'fixed' WHERE acct IN ('A07', 'A30')");
    let first_id = by_key("A07")["id"].as_i64().unwrap().to_string();
    let one = w.run(&["retry", "--error", &first_id]);
    assert_eq!(one.code, 0, "{}{}", one.stdout, one.stderr);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account"), 49);
    assert_eq!(w.run(&["retry"]).code, 0);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account WHERE name = 'fixed'"), 2);
    assert_eq!(w.run(&["--format", "json", "errors"]).json().as_array().unwrap().len(), 0);
    let all = w.run(&["--format", "json", "errors", "--all"]).json();
    assert!(all.as_array().unwrap().iter().all(|e| e["status"] == "resolved"));
    assert_eq!(super::written(&w.run(&["--format", "json", "sync"])), 0);
}

#[test]
fn an_error_fixed_outside_dualsync_is_resolved_by_the_next_full_sync() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', NULL)");
    assert_eq!(w.run(&["sync"]).code, 3);
    w.exec("erp.db", "UPDATE cust SET name = 'now fine'");
    assert_eq!(w.run(&["sync"]).code, 0);
    assert_eq!(w.run(&["--format", "json", "errors"]).json().as_array().unwrap().len(), 0);
}

#[test]
fn a_config_mistake_writes_nothing_and_says_where() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'x')");
    // A column that does not exist in the table: found by the preflight, before any write.
    w.config(&super::CONFIG.replace("erp = \"note\"", "erp = \"note_typo\""));
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert!(run.stderr.contains("column \"note_typo\" does not exist in table cust"), "{}", run.stderr);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account"), 0);
    assert!(!w.path(".dualsync").exists(), "not even the state store is created");

    // A key the file cannot have: refused with the line to fix.
    w.config(&super::CONFIG.replace("master = \"erp\"", "master = \"erp\"\nthreads = 4"));
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 2);
    let line =
        super::CONFIG.replace("master = \"erp\"", "master = \"erp\"\nthreads = 4").lines().position(|l| l == "threads = 4").unwrap() + 1;
    assert!(run.stderr.contains(&format!("dualsync.toml:{line}: maps[1].threads: unknown key")), "{}", run.stderr);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account"), 0);
}

#[test]
fn check_reports_missing_tables_and_columns_without_writing() {
    let w = apps();
    w.config(&super::CONFIG.replace("table = \"account\"", "table = \"accounts\""));
    let run = w.run(&["--format", "json", "check"]);
    assert_eq!(run.code, 1, "a missing table is the database's state, not a config mistake: {}{}", run.stdout, run.stderr);
    let findings = run.json()["findings"].clone();
    assert!(findings.to_string().contains("table accounts: table \\\"accounts\\\" does not exist"), "{findings}");
    assert!(!w.path(".dualsync").exists() || w.count("crm.db", "SELECT count(*) FROM account") == 0);
}

#[test]
fn a_missing_app_database_fails_with_exit_1_and_names_the_app() {
    let w = apps();
    std::fs::remove_file(w.path("crm.db")).unwrap();
    let run = w.run(&["check"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("app crm") && run.stdout.contains("UNREACHABLE"), "{}", run.stdout);
    let sync = w.run(&["sync"]);
    assert_ne!(sync.code, 0);
    assert!(
        sync.stderr.contains("app crm: cannot connect") && sync.stderr.contains("crm.db: the database file does not exist"),
        "{}",
        sync.stderr
    );
    assert_eq!(sync.code, 1, "an unreachable app is not a config mistake");
    assert!(!w.path("crm.db").exists(), "an app database is never created by dualsync");
}

#[test]
fn duplicate_keys_are_logged_and_the_rest_syncs() {
    let w = Workspace::new();
    w.exec("erp.db", "CREATE TABLE t (k TEXT, v TEXT)");
    w.exec("crm.db", "CREATE TABLE t (k TEXT, v TEXT)");
    w.exec("erp.db", "INSERT INTO t VALUES ('a', '1'), ('b', '2'), ('b', '2 again'), ('c', '3')");
    w.config(
        "[apps.erp]\nurl = \"sqlite://erp.db\"\n[apps.crm]\nurl = \"sqlite://crm.db\"\n[[maps]]\nname = \"t\"\n[maps.erp]\ntable = \"t\"\nkey = \"k\"\n[maps.crm]\ntable = \"t\"\nkey = \"k\"\n[[maps.columns]]\nerp = \"k\"\ncrm = \"k\"\n[[maps.columns]]\nerp = \"v\"\ncrm = \"v\"\n",
    );
    let check = w.run(&["check"]);
    assert!(check.stdout.contains("is not declared unique"), "{}", check.stdout);
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM t"), 3);
    let errors = w.run(&["--format", "json", "errors"]).json();
    assert!(errors[0]["message"].as_str().unwrap().starts_with("duplicate key"), "{errors}");
    assert_eq!(errors[0]["key"][0], "b");
}

#[test]
fn rows_without_a_company_take_no_part_and_are_reported() {
    let w = apps();
    w.exec("crm.db", "INSERT INTO account (id, co, num, name) VALUES ('x1', NULL, 'N1', 'no company'), ('x2', 'C1', 'A1', 'has one')");
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("1 row of crm.account has no company (co is NULL)"), "{}", run.stdout);
    assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust"), 1);
    assert_eq!(text(&w.one("erp.db", "SELECT acct FROM cust")), "A1");
}

#[test]
fn usage_errors_exit_2() {
    let w = apps();
    assert_eq!(w.run(&["sync", "--no-such-flag"]).code, 2);
    let missing = w.run(&["--config", "nope.toml", "status"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("nope.toml") && missing.stderr.contains("dualsync init"), "{}", missing.stderr);
}
