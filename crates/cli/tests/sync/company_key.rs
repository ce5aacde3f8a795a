//! Issue 10, item 4: a company column that is also part of the key and mapped
//! (key `(data_area_id, customer_account)`, company `data_area_id`) is written
//! once, on every kind of database.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb, ALL};

const TABLE: &str = "CREATE TABLE {table} (data_area_id {key} NOT NULL, customer_account {key} NOT NULL, name {text},
                     PRIMARY KEY (data_area_id, customer_account))";

const CONFIG: &str = r#"
[apps.erp]
url = "ERP"
[apps.crm]
url = "CRM"

[[maps]]
name = "customers"
max_delete_percent = 100
[maps.erp]
table = "cust"
key = ["data_area_id", "customer_account"]
company = "data_area_id"
[maps.crm]
table = "account"
key = ["data_area_id", "customer_account"]
company = "data_area_id"
[[maps.columns]]
erp = "data_area_id"
crm = "data_area_id"
[[maps.columns]]
erp = "customer_account"
crm = "customer_account"
[[maps.columns]]
erp = "name"
crm = "name"
"#;

fn pair(erp_kind: Kind, crm_kind: Kind) {
    let (Some(erp), Some(crm)) = (TestDb::new(erp_kind), TestDb::new(crm_kind)) else { return };
    erp.exec(&TABLE.replace("{table}", "cust"));
    crm.exec(&TABLE.replace("{table}", "account"));
    erp.exec("INSERT INTO cust VALUES ('usmf', 'C1', 'One'), ('usmf', 'C2', 'Two'), ('demf', 'C1', 'Eins')");
    crm.exec("INSERT INTO account VALUES ('demf', 'C9', 'Neun')");
    let w = Workspace::new();
    w.config(&CONFIG.replace("\"ERP\"", &format!("{:?}", erp.url)).replace("\"CRM\"", &format!("{:?}", crm.url)));
    let label = format!("{} -> {}", erp_kind.name(), crm_kind.name());
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{label}: {}{}", run.stdout, run.stderr);
    let all = |db: &TestDb, table: &str| {
        let row = match db.kind {
            Kind::Mariadb => "CONCAT_WS('/', data_area_id, customer_account, name)",
            _ => "data_area_id || '/' || customer_account || '/' || name",
        };
        db.texts(&format!("SELECT {row} FROM {table} ORDER BY 1")).into_iter().flatten().collect::<Vec<_>>()
    };
    let expected = ["demf/C1/Eins", "demf/C9/Neun", "usmf/C1/One", "usmf/C2/Two"];
    assert_eq!(all(&erp, "cust"), expected, "{label}");
    assert_eq!(all(&crm, "account"), expected, "{label}");
    // Updates and deletes address the row by its whole key.
    crm.exec("UPDATE account SET name = 'Uno' WHERE data_area_id = 'usmf' AND customer_account = 'C1'");
    erp.exec("DELETE FROM cust WHERE data_area_id = 'demf' AND customer_account = 'C9'");
    let run = w.run(&["--format", "json", "sync", "--allow-deletes"]);
    assert_eq!(run.code, 0, "{label}: {}{}", run.stdout, run.stderr);
    let expected = ["demf/C1/Eins", "usmf/C1/Uno", "usmf/C2/Two"];
    assert_eq!(all(&erp, "cust"), expected, "{label}");
    assert_eq!(all(&crm, "account"), expected, "{label}");
    assert_eq!(super::written(&w.run(&["--format", "json", "sync"])), 0, "{label}");
}

#[test]
fn a_keyed_and_mapped_company_column_syncs_on_every_kind() {
    for kind in ALL {
        pair(kind, Kind::Sqlite);
        pair(Kind::Sqlite, kind);
    }
    pair(Kind::Mariadb, Kind::Postgres);
}
