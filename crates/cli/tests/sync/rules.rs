//! The rule book (docs/reconciliation.md) in batch mode: a scheduled `sync`
//! of a map that was never started merges every key against its merge base,
//! exactly as live sync does.

use super::{apps, totals};
use crate::util::{text, Workspace};

/// Three customers synced once (master = erp).
fn synced() -> Workspace {
    let w = apps();
    w.exec(
        "erp.db",
        "INSERT INTO cust (co, acct, name, note) VALUES ('C1', 'A1', 'Ann', 'n1'), ('C1', 'A2', 'Bob', 'n2'), ('C1', 'A3', 'Cy', 'n3')",
    );
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    w
}

fn names(w: &Workspace, db: &str, table: &str) -> Vec<String> {
    let key = if table == "cust" { "acct" } else { "num" };
    w.rows(db, &format!("SELECT {key} || ':' || name || ':' || coalesce(note, 'NULL') FROM {table} ORDER BY {key}"))
        .iter()
        .map(|r| text(&r[0]).to_string())
        .collect()
}

#[test]
fn a_second_sync_keeps_the_edit_of_the_non_master_app() {
    let w = synced();
    w.exec("crm.db", "UPDATE account SET name = 'Ann (crm)' WHERE num = 'A1'");
    w.exec("erp.db", "UPDATE cust SET note = 'erp note' WHERE acct = 'A1'");
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let expected = ["A1:Ann (crm):erp note", "A2:Bob:n2", "A3:Cy:n3"];
    assert_eq!(names(&w, "erp.db", "cust"), expected);
    assert_eq!(names(&w, "crm.db", "account"), expected);
    assert_eq!(totals(&w.run(&["--format", "json", "sync"]))["updated"], serde_json::json!([0, 0]), "a third sync writes nothing");
}

#[test]
fn both_apps_changing_one_column_is_a_conflict_the_master_wins() {
    let w = synced();
    w.exec("crm.db", "UPDATE account SET name = 'crm' WHERE num = 'A1'");
    w.exec("erp.db", "UPDATE cust SET name = 'erp' WHERE acct = 'A1'");
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(totals(&run)["conflicts"], 1, "{}", run.stdout);
    assert_eq!(text(&w.one("crm.db", "SELECT name FROM account WHERE num = 'A1'")), "erp");
    let conflicts = w.run(&["--format", "json", "conflicts", "--all"]).json();
    assert_eq!(conflicts.as_array().map(Vec::len), Some(1), "{conflicts}");
}

#[test]
fn a_row_deleted_in_one_app_is_deleted_in_the_other_once_confirmed() {
    let w = synced();
    w.exec("crm.db", "DELETE FROM account WHERE num = 'A2'");
    // One of three rows is 33%, past the default guard of 10%: nothing is deleted, and it says how to confirm.
    let stopped = w.run(&["sync"]);
    assert_eq!(stopped.code, 1, "{}{}", stopped.stdout, stopped.stderr);
    assert!(stopped.stdout.contains("max_delete_percent") && stopped.stdout.contains("--allow-deletes"), "{}", stopped.stdout);
    assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust"), 3);
    let run = w.run(&["--format", "json", "sync", "--allow-deletes"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(totals(&run)["deleted"], serde_json::json!([1, 0]), "{}", run.stdout);
    assert_eq!(names(&w, "erp.db", "cust"), ["A1:Ann:n1", "A3:Cy:n3"]);
    // The key is forgotten: created again in the CRM later, it is a new row for both.
    w.exec("crm.db", "INSERT INTO account (id, co, num, name) VALUES ('new', 'C1', 'A2', 'Again')");
    assert_eq!(w.run(&["sync"]).code, 0);
    assert_eq!(text(&w.one("erp.db", "SELECT name FROM cust WHERE acct = 'A2'")), "Again");
}

#[test]
fn a_generous_guard_lets_a_few_deletes_through_and_a_delete_against_an_edit_is_a_conflict() {
    let w = synced();
    w.config(&super::CONFIG.replace("master = \"erp\"", "master = \"erp\"\nmax_delete_percent = 50"));
    w.exec("crm.db", "DELETE FROM account WHERE num IN ('A2', 'A3')");
    // A3 was edited in the ERP since the last sync: the master's edit wins and the row comes back.
    w.exec("erp.db", "UPDATE cust SET note = 'kept' WHERE acct = 'A3'");
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(totals(&run)["conflicts"], 1);
    assert_eq!(names(&w, "erp.db", "cust"), ["A1:Ann:n1", "A3:Cy:kept"]);
    assert_eq!(names(&w, "crm.db", "account"), ["A1:Ann:n1", "A3:Cy:kept"]);
}

#[test]
fn an_emptied_table_stops_the_partition_before_anything_is_written() {
    let w = synced();
    w.exec("crm.db", "DELETE FROM account");
    w.exec("erp.db", "UPDATE cust SET name = 'changed' WHERE acct = 'A1'");
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("every row"), "{}", run.stdout);
    assert_eq!(names(&w, "erp.db", "cust"), ["A1:changed:n1", "A2:Bob:n2", "A3:Cy:n3"], "nothing deleted in the ERP");
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account"), 0, "and nothing written to the CRM");
    // plan shows the deletes the sync would make, and why it would stop.
    let plan = w.run(&["--format", "json", "plan"]).json();
    let customers = plan["partitions"].as_array().unwrap().iter().find(|p| p["map"] == "customers").unwrap().clone();
    // A1, changed in the master since, would come back to the CRM (a delete against an update); A2 and A3 would go.
    assert_eq!(customers["deletes"], serde_json::json!([2, 0]), "{plan}");
    assert_eq!(customers["inserts"], serde_json::json!([0, 1]), "{plan}");
    assert!(customers["approach"].as_str().unwrap().contains("holds none"), "{plan}");
    assert!(plan["warnings"].to_string().contains("would stop"), "{plan}");
}

#[test]
fn a_row_that_left_the_filter_is_not_a_delete() {
    let w = synced();
    w.exec("crm.db", "UPDATE account SET active = 0 WHERE num = 'A2'");
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(totals(&run)["deleted"], serde_json::json!([0, 0]));
    assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust"), 3);
}

/// Issue 10, item 5: a key written into one app but refused by the other
/// keeps its old merge base, so the refused app's stale value never looks
/// like an edit that overwrites the master.
#[test]
fn a_write_refused_by_one_app_keeps_the_old_base() {
    let w = apps();
    let long = "a name far too long for the crm";
    w.exec("erp.db", &format!("INSERT INTO cust (co, acct, name, email) VALUES ('C1', 'A1', '{long}', NULL)"));
    w.exec("crm.db", "INSERT INTO account (id, co, num, name, email) VALUES ('x1', 'C1', 'A1', 'short', 'crm@x')");
    // The ERP takes the CRM's email (crm->erp); the CRM refuses the ERP's long name.
    for _ in 0..2 {
        let run = w.run(&["sync"]);
        assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
        assert_eq!(text(&w.one("erp.db", "SELECT name FROM cust")), long, "the master's name is never overwritten by the stale CRM value");
        assert_eq!(text(&w.one("erp.db", "SELECT email FROM cust")), "crm@x");
    }
}
