//! `dualsync plan`: the guidance matrix from the real data, without writing.

use super::apps;
use crate::util::Workspace;

fn plan(w: &Workspace) -> serde_json::Value {
    let run = w.run(&["--format", "json", "plan"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run.json()
}

fn customers(plan: &serde_json::Value) -> Vec<&serde_json::Value> {
    plan["partitions"].as_array().unwrap().iter().filter(|p| p["map"] == "customers").collect()
}

#[test]
fn plan_predicts_what_the_sync_writes_and_writes_nothing() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', '10', 'Ten')");
    w.exec("erp.db", "INSERT INTO cust (co, acct, name, grp) VALUES ('C1', 'A1', 'erp', '10'), ('C1', 'A2', 'only erp', '10'), ('C1', 'A3', NULL, NULL), ('C1', 'A4', 'orphan', '99')");
    w.exec("crm.db", "INSERT INTO account (id, co, num, name) VALUES ('x1', 'C1', 'A1', 'crm'), ('x5', 'C1', 'K5', 'only crm')");
    let before = (w.count("crm.db", "SELECT count(*) FROM account"), w.count("erp.db", "SELECT count(*) FROM cust"));
    let p = plan(&w);
    assert_eq!(
        (w.count("crm.db", "SELECT count(*) FROM account"), w.count("erp.db", "SELECT count(*) FROM cust")),
        before,
        "plan writes nothing"
    );
    assert!(!w.path(".dualsync").exists(), "not even the state store");
    let c = customers(&p);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["rows"], serde_json::json!([4, 2]));
    assert_eq!(c[0]["approach"], "bidirectional merge (erp wins conflicts)");
    let problems = p["problems"].as_array().unwrap();
    let kind =
        |k: &str| problems.iter().find(|x| x["kind"].as_str().unwrap().starts_with(k)).unwrap_or_else(|| panic!("no {k}: {problems:?}"));
    assert_eq!(kind("orphan lookups")["examples"][0], "C1 [\"A4\"]");
    assert_eq!(kind("NULL where the target forbids it")["examples"][0], "C1 [\"A3\"]");

    // The sync then writes exactly what the plan said.
    let sync = w.run(&["--format", "json", "sync"]).json();
    let done = sync["partitions"].as_array().unwrap().iter().find(|x| x["map"] == "customers").unwrap()["counts"].clone();
    assert_eq!(c[0]["inserts"], done["inserted"], "{sync}");
    assert_eq!(c[0]["updates"], done["updated"], "{sync}");
    let failed = done["failed"][0].as_u64().unwrap() + done["failed"][1].as_u64().unwrap();
    assert_eq!(c[0]["failing"].as_u64().unwrap(), failed, "{sync}");
}

#[test]
fn the_approach_follows_the_data_as_the_seed_s_matrix_does() {
    // New and new, nothing on either side.
    let w = apps();
    assert_eq!(customers(&plan(&w)).len(), 0, "no company, no partition");
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', '10', 'Ten')");
    w.exec("crm.db", "INSERT INTO grp VALUES ('g', 'C1', '10', 'Ten')");
    let p = plan(&w);
    let groups: Vec<_> = p["partitions"].as_array().unwrap().iter().filter(|x| x["map"] == "groups").collect();
    assert_eq!(groups[0]["approach"], "already in step: nothing to write");
    // Data on one side only.
    w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'a')");
    assert_eq!(customers(&plan(&w))[0]["approach"], "one-way copy erp → crm (initial sync; crm is new here)");
    // Existing and existing.
    w.exec("crm.db", "INSERT INTO account (id, co, num, name) VALUES ('x', 'C1', 'K1', 'k')");
    assert_eq!(customers(&plan(&w))[0]["approach"], "bidirectional merge (erp wins conflicts)");
}

#[test]
fn volumes_the_seed_cannot_take_are_named_and_taken() {
    let w = apps();
    w.config(
        &super::CONFIG.replace("name = \"customers\"\nmaster = \"erp\"", "name = \"customers\"\nmaster = \"erp\"\nthreading = \"single\""),
    );
    w.exec(
        "erp.db",
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 70000)
         INSERT INTO cust (co, acct, name) SELECT 'C1', printf('A%06d', i), 'n' FROM n",
    );
    let p = plan(&w);
    let c = customers(&p);
    assert_eq!(c[0]["rows"][0], 70001);
    let note = c[0]["seed_note"].as_str().unwrap();
    assert!(note.contains("single-threaded") && note.contains("70000"), "{note}");
    assert!(p["estimate_seconds"].as_f64().unwrap() > 0.0);
    assert!(p["write_rates"][0]["rows_per_second"].as_f64().unwrap() > 0.0, "the write rate was probed");
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account"), 0, "the probe was rolled back");
}

#[test]
fn plan_predicts_the_sync_into_postgres() {
    use dualsync_testkit::{Kind, TestDb};
    let Some(crm) = TestDb::new(Kind::Postgres) else { return };
    crm.exec(super::kinds::CRM);
    let w = apps();
    w.config(&super::CONFIG.replace("sqlite://crm.db", &crm.url));
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', '10', 'Ten')");
    w.exec("erp.db", "INSERT INTO cust (co, acct, name, grp) VALUES ('C1', 'A1', 'erp', '10'), ('C1', 'A2', 'a name far longer than twenty', NULL), ('C1', 'A3', NULL, NULL)");
    crm.exec("INSERT INTO account (id, co, num, name) VALUES ('x1', 'C1', 'A1', 'crm'), ('x5', 'C1', 'K5', 'only crm')");
    let p = plan(&w);
    assert_eq!(crm.texts("SELECT CAST(count(*) AS TEXT) FROM account"), [Some("2".to_string())], "the probe left nothing");
    let c = customers(&p);
    let sync = w.run(&["--format", "json", "sync"]).json();
    let done = sync["partitions"].as_array().unwrap().iter().find(|x| x["map"] == "customers").unwrap()["counts"].clone();
    assert_eq!(c[0]["inserts"], done["inserted"], "{sync}");
    assert_eq!(c[0]["updates"], done["updated"], "{sync}");
    assert_eq!(c[0]["failing"].as_u64().unwrap(), done["failed"][0].as_u64().unwrap() + done["failed"][1].as_u64().unwrap());
}

/// The counts of map `customers` in a plan and in a sync's report.
fn predicted_and_done(plan: &serde_json::Value, sync: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    let c = customers(plan)[0].clone();
    let done = sync["partitions"].as_array().unwrap().iter().find(|x| x["map"] == "customers").unwrap()["counts"].clone();
    let failed = done["failed"][0].as_u64().unwrap() + done["failed"][1].as_u64().unwrap();
    let predicted = serde_json::json!([c["inserts"], c["updates"], c["deletes"], c["failing"]]);
    (predicted, serde_json::json!([done["inserted"], done["updated"], done["deleted"], failed]))
}

/// Issue 10, item 9: on first contact the rows' lookups point at groups the
/// referenced map has not created yet in the CRM; the rows are still checked
/// by the CRM (its CHECK on the name), in every batch, not only the first.
#[test]
fn plan_on_first_contact_with_lookups_finds_what_the_database_refuses() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', '10', 'Ten')");
    w.exec(
        "erp.db",
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4999)
         INSERT INTO cust (co, acct, name, grp) SELECT 'C1', printf('A%05d', i),
           CASE WHEN i % 500 = 499 THEN 'a name longer than the crm takes' ELSE 'n' || i END, '10' FROM n",
    );
    let p = plan(&w);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM grp"), 0, "plan wrote nothing");
    let sync = w.run(&["--format", "json", "sync"]);
    assert_eq!(sync.code, 3, "{}{}", sync.stdout, sync.stderr);
    let (predicted, done) = predicted_and_done(&p, &sync.json());
    assert_eq!(predicted, serde_json::json!([[0, 4990], [0, 0], [0, 0], 10]), "{p}");
    assert_eq!(predicted, done);
}

#[test]
fn plan_predicts_the_updates_and_deletes_of_a_later_sync() {
    let w = apps();
    w.config(&super::CONFIG.replace("master = \"erp\"", "master = \"erp\"\nmax_delete_percent = 50"));
    w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'a'), ('C1', 'A2', 'b'), ('C1', 'A3', 'c'), ('C1', 'A4', 'd')");
    assert_eq!(w.run(&["sync"]).code, 0);
    w.exec("crm.db", "UPDATE account SET name = 'crm edit' WHERE num = 'A1'; DELETE FROM account WHERE num = 'A2'");
    w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A5', 'e')");
    let p = plan(&w);
    let sync = w.run(&["--format", "json", "sync"]);
    assert_eq!(sync.code, 0, "{}{}", sync.stdout, sync.stderr);
    let (predicted, done) = predicted_and_done(&p, &sync.json());
    assert_eq!(predicted, serde_json::json!([[0, 1], [1, 0], [1, 0], 0]), "{p}");
    assert_eq!(predicted, done);
}
