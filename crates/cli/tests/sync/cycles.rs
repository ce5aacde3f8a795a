//! Issue 10, item 2: the references of rows born in either app survive a
//! self-referencing lookup (two passes), on the first sync and on later ones.

use crate::util::{text, Workspace};

const CONFIG: &str = r#"
[apps.erp]
url = "sqlite://erp.db"
[apps.crm]
url = "sqlite://crm.db"

[[maps]]
name = "employees"
master = "erp"
[maps.erp]
table = "emp"
key = "no"
[maps.crm]
table = "employee"
key = "no"
id = "id"
id_default = "uuid"
[[maps.columns]]
erp = "no"
crm = "no"
[[maps.columns]]
erp = "name"
crm = "name"
[[maps.columns]]
erp = "manager"
crm = "manager_id"
lookup = "employees"
"#;

fn apps() -> Workspace {
    let w = Workspace::new();
    w.exec("erp.db", "CREATE TABLE emp (no TEXT PRIMARY KEY, name TEXT, manager TEXT)");
    w.exec("crm.db", "CREATE TABLE employee (id TEXT PRIMARY KEY, no TEXT UNIQUE NOT NULL, name TEXT, manager_id TEXT)");
    w.config(CONFIG);
    w
}

/// Each employee with its manager's number, as each app sees it.
fn managers(w: &Workspace) -> [Vec<String>; 2] {
    let erp = w.rows("erp.db", "SELECT no || '>' || coalesce(manager, '-') FROM emp ORDER BY no");
    let crm = w.rows(
        "crm.db",
        "SELECT e.no || '>' || coalesce(m.no, '-') FROM employee e LEFT JOIN employee m ON m.id = e.manager_id ORDER BY e.no",
    );
    [erp, crm].map(|rows| rows.iter().map(|r| text(&r[0]).to_string()).collect())
}

fn sync(w: &Workspace) -> serde_json::Value {
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run.json()
}

#[test]
fn references_of_rows_born_in_the_non_master_app_survive_both_passes() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO emp VALUES ('E1', 'Boss', NULL), ('E2', 'Erp hire', 'E1')");
    // Born in the CRM (not the master) before the first sync, referring to each other and to an ERP row.
    w.exec("crm.db", "INSERT INTO employee VALUES ('c3', 'E3', 'Crm lead', NULL), ('c4', 'E4', 'Crm hire', 'c3')");
    sync(&w);
    // The CRM's lead now reports to the ERP's boss; a new CRM hire reports to the ERP's hire.
    let boss = text(&w.one("crm.db", "SELECT id FROM employee WHERE no = 'E1'")).to_string();
    let erp_hire = text(&w.one("crm.db", "SELECT id FROM employee WHERE no = 'E2'")).to_string();
    w.exec("crm.db", &format!("UPDATE employee SET manager_id = '{boss}' WHERE no = 'E3'"));
    w.exec("crm.db", &format!("INSERT INTO employee VALUES ('c5', 'E5', 'New hire', '{erp_hire}')"));
    sync(&w);
    let expected = ["E1>-", "E2>E1", "E3>E1", "E4>E3", "E5>E2"];
    assert_eq!(managers(&w), [expected, expected].map(|e| e.map(String::from).to_vec()));
    // And nothing is left to write.
    let third = sync(&w);
    assert_eq!(third["totals"]["updated"], serde_json::json!([0, 0]), "{third}");
    assert_eq!(third["totals"]["inserted"], serde_json::json!([0, 0]), "{third}");
}
