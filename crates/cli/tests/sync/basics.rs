use super::{apps, totals, written};
use crate::util::text;

#[test]
fn overlap_and_conflicts_resolve_to_the_master() {
    for master in ["erp", "crm"] {
        let w = apps();
        w.config(&super::CONFIG.replace("master = \"erp\"", &format!("master = \"{master}\"")));
        w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'Erp name'), ('C1', 'A2', 'Only erp')");
        w.exec("crm.db", "INSERT INTO account (id, co, num, name) VALUES ('x1', 'C1', 'A1', 'Crm name'), ('x3', 'C1', 'A3', 'Only crm')");
        let run = w.run(&["--format", "json", "sync"]);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        let expected = if master == "erp" { "Erp name" } else { "Crm name" };
        for (db, sql) in [("erp.db", "SELECT name FROM cust WHERE acct = 'A1'"), ("crm.db", "SELECT name FROM account WHERE num = 'A1'")] {
            assert_eq!(text(&w.one(db, sql)), expected, "{db} with master {master}");
        }
        assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust"), 3);
        assert_eq!(w.count("crm.db", "SELECT count(*) FROM account"), 3);
        // The CRM's own id of A1 is kept; the new row gets a generated UUID.
        assert_eq!(text(&w.one("crm.db", "SELECT id FROM account WHERE num = 'A1'")), "x1");
        assert_eq!(text(&w.one("crm.db", "SELECT id FROM account WHERE num = 'A2'")).len(), 36);
    }
}

#[test]
fn one_way_columns_never_flow_back() {
    for master in ["erp", "crm"] {
        let w = apps();
        w.config(&super::CONFIG.replace("master = \"erp\"", &format!("master = \"{master}\"")));
        w.exec("erp.db", "INSERT INTO cust (co, acct, name, credit, email) VALUES ('C1', 'A1', 'n', 100, 'a@erp')");
        w.exec("crm.db", "INSERT INTO account (id, co, num, name, credit, email) VALUES ('x1', 'C1', 'A1', 'n', 999, 'a@crm')");
        assert_eq!(w.run(&["sync"]).code, 0);
        // credit flows erp -> crm only; email crm -> erp only; whoever is master.
        assert_eq!(w.one("erp.db", "SELECT credit FROM cust"), rusqlite::types::Value::Real(100.0));
        assert_eq!(w.one("crm.db", "SELECT credit FROM account"), rusqlite::types::Value::Real(100.0));
        assert_eq!(text(&w.one("erp.db", "SELECT email FROM cust")), "a@crm");
        assert_eq!(text(&w.one("crm.db", "SELECT email FROM account")), "a@crm");
    }
}

#[test]
fn a_second_sync_writes_nothing() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', '10', 'Ten'), ('C2', '10', 'Ten in C2')");
    w.exec("erp.db", "INSERT INTO cust (co, acct, name, credit, terms, grp, note) VALUES ('C1', 'A1', 'n1', 1.5, 'Net30', '10', NULL), ('C2', 'A2', 'n2', 2, 'Net60', '10', '')");
    w.exec("crm.db", "INSERT INTO account (id, co, num, name, credit, terms, email) VALUES ('x3', 'C1', 'A3', 'n3', 3, 2, 'e')");
    let first = w.run(&["--format", "json", "sync"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert!(written(&first) > 0);
    let second = w.run(&["--format", "json", "sync"]);
    assert_eq!(second.code, 0);
    assert_eq!(written(&second), 0, "{}", second.stdout);
    assert_eq!(totals(&second)["unchanged"], 5, "2 groups + 3 customers: {}", second.stdout);
    let status = w.run(&["--format", "json", "status"]).json();
    assert_eq!(status["maps"][1]["keys_synced"], 3);
}

#[test]
fn rows_outside_the_filter_take_no_part() {
    let w = apps();
    w.exec(
        "crm.db",
        "INSERT INTO account (id, co, num, name, active) VALUES ('x1', 'C1', 'OLD', 'inactive', 0), ('x2', 'C1', 'NEW', 'active', 1)",
    );
    assert_eq!(w.run(&["sync"]).code, 0);
    assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust WHERE acct = 'OLD'"), 0);
    assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust WHERE acct = 'NEW'"), 1);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account WHERE num = 'OLD' AND active = 0"), 1, "left alone");
}

#[test]
fn values_are_translated_both_ways() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO cust (co, acct, name, terms) VALUES ('C1', 'E1', 'e1', 'Net60'), ('C1', 'E2', 'e2', 'Net90')");
    w.exec("crm.db", "INSERT INTO account (id, co, num, name, terms) VALUES ('x1', 'C1', 'K1', 'k1', 1)");
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 3, "Net90 has no translation: {}", run.stdout);
    assert_eq!(w.one("crm.db", "SELECT terms FROM account WHERE num = 'E1'"), rusqlite::types::Value::Integer(2));
    assert_eq!(text(&w.one("erp.db", "SELECT terms FROM cust WHERE acct = 'K1'")), "Net30");
    let errors = w.run(&["--format", "json", "errors"]).json();
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert_eq!(errors[0]["key"][0], "E2");
    assert_eq!(errors[0]["column"], "terms");
    assert_eq!(errors[0]["value"], "Net90");
}

#[test]
fn null_and_empty_text_stay_distinct_in_both_directions() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO cust (co, acct, name, note) VALUES ('C1', 'E1', 'a', NULL), ('C1', 'E2', 'b', '')");
    w.exec("crm.db", "INSERT INTO account (id, co, num, name, note) VALUES ('x1', 'C1', 'K1', 'c', NULL), ('x2', 'C1', 'K2', 'd', '')");
    assert_eq!(w.run(&["sync"]).code, 0);
    for db in ["erp.db", "crm.db"] {
        let table = if db == "erp.db" { "cust" } else { "account" };
        let key = if db == "erp.db" { "acct" } else { "num" };
        let types = w.rows(db, &format!("SELECT {key}, typeof(note) FROM {table} ORDER BY {key}"));
        let types: Vec<(String, String)> = types.iter().map(|r| (text(&r[0]).to_string(), text(&r[1]).to_string())).collect();
        assert_eq!(
            types,
            [("E1", "null"), ("E2", "text"), ("K1", "null"), ("K2", "text")].map(|(a, b)| (a.to_string(), b.to_string())),
            "{db}"
        );
    }
}

#[test]
fn only_the_selected_map_and_company_run() {
    let w = apps();
    w.exec(
        "erp.db",
        "INSERT INTO grp VALUES ('C1', '10', 'x'); INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'a'), ('C2', 'A2', 'b')",
    );
    assert_eq!(w.run(&["sync", "--map", "customers", "--company", "C2"]).code, 0);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account"), 1);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account WHERE co = 'C2'"), 1);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM grp"), 0, "map groups was not selected");
    let bad = w.run(&["sync", "--map", "nope"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("no map named \"nope\""), "{}", bad.stderr);
}

#[test]
fn resync_reconciles_one_key_now() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'before'), ('C1', 'A2', 'before')");
    assert_eq!(w.run(&["sync"]).code, 0);
    w.exec("erp.db", "UPDATE cust SET name = 'after'");
    let run = w.run(&["resync", "--map", "customers", "--key", "A1", "--company", "C1"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("updated in crm"), "{}", run.stdout);
    assert_eq!(text(&w.one("crm.db", "SELECT name FROM account WHERE num = 'A1'")), "after");
    assert_eq!(text(&w.one("crm.db", "SELECT name FROM account WHERE num = 'A2'")), "before", "only the one key");
    let missing_company = w.run(&["resync", "--map", "customers", "--key", "A1"]);
    assert_eq!(missing_company.code, 2);
    assert!(missing_company.stderr.contains("--company"), "{}", missing_company.stderr);
}
