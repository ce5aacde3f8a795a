//! The fixture's sync between every pair of kinds of app, on the real servers.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};

const ERP: &str = "CREATE TABLE grp (co {key} NOT NULL, code {key} NOT NULL, label {text}, PRIMARY KEY (co, code));
CREATE TABLE cust (co {key} NOT NULL, acct {key} NOT NULL, name {text}, credit {real}, email {text},
                   terms {key}, grp {key}, note {longtext}, data {blob}, PRIMARY KEY (co, acct))";

pub(super) const CRM: &str =
    "CREATE TABLE grp (id {key} PRIMARY KEY, co {key} NOT NULL, code {key} NOT NULL, label {text}, UNIQUE (co, code));
CREATE TABLE account (id {key} PRIMARY KEY, co {key}, num {key} NOT NULL, name {key} NOT NULL, credit {real}, email {text},
                      terms {int}, grp_id {key}, note {longtext}, data {blob}, active {int} NOT NULL DEFAULT 1,
                      UNIQUE (co, num), CHECK (length(name) <= 20))";

/// Hard text that every kind stores (literal newlines and tabs inside the SQL string).
const HARD: &str = "He said \"hi\", then 'left';\nline two\r\n\ttabbed, émoji 🚀, עברית العربية";

fn pair(erp_kind: Kind, crm_kind: Kind) {
    let (Some(erp), Some(crm)) = (TestDb::new(erp_kind), TestDb::new(crm_kind)) else { return };
    erp.exec(ERP);
    crm.exec(CRM);
    let hard = HARD.replace('\'', "''");
    erp.exec(&format!(
        "INSERT INTO grp VALUES ('C1', '10', 'Ten'), ('C2', '10', 'Ten in C2');
INSERT INTO cust (co, acct, name, credit, terms, grp, note) VALUES ('C1', 'A1', 'Erp name', 10.5, 'Net30', '10', NULL), ('C1', 'A2', 'Two', 0.1, 'Net60', NULL, '{hard}'), ('C2', 'A3', 'Three', NULL, NULL, '10', '')"
    ));
    crm.exec(&format!(
        "INSERT INTO grp VALUES ('g1', 'C1', '10', 'Ten'), ('g2', 'C2', '10', 'Ten in C2'), ('g3', 'C2', '20', 'Twenty');
INSERT INTO account (id, co, num, name, email, terms) VALUES ('x1', 'C1', 'A1', 'Crm name', 'a1@crm', 2);
INSERT INTO account (id, co, num, name, grp_id, note) VALUES ('x2', 'C2', 'K1', 'From CRM', 'g3', '{hard}')"
    ));
    let w = Workspace::new();
    w.config(&super::CONFIG.replace("sqlite://erp.db", &erp.url).replace("sqlite://crm.db", &crm.url));
    let label = format!("{} -> {}", erp_kind.name(), crm_kind.name());
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{label}: {}{}", run.stdout, run.stderr);

    let one = |db: &TestDb, sql: &str| db.texts(sql).into_iter().next().flatten();
    // The master's name wins; the one-way e-mail comes from the CRM; the one-way credit from the ERP.
    assert_eq!(one(&erp, "SELECT name FROM cust WHERE acct = 'A1'").as_deref(), Some("Erp name"), "{label}");
    assert_eq!(one(&crm, "SELECT name FROM account WHERE num = 'A1'").as_deref(), Some("Erp name"), "{label}");
    assert_eq!(one(&erp, "SELECT email FROM cust WHERE acct = 'A1'").as_deref(), Some("a1@crm"), "{label}");
    assert_eq!(one(&crm, "SELECT CAST(terms AS {cast_text}) FROM account WHERE num = 'A1'").as_deref(), Some("1"), "{label}: Net30");
    // Hard text arrives byte for byte in both directions; '' stays '' and NULL stays NULL.
    assert_eq!(one(&crm, "SELECT note FROM account WHERE num = 'A2'").as_deref(), Some(HARD), "{label}");
    assert_eq!(one(&erp, "SELECT note FROM cust WHERE acct = 'K1'").as_deref(), Some(HARD), "{label}");
    assert_eq!(one(&crm, "SELECT note FROM account WHERE num = 'A3'").as_deref(), Some(""), "{label}");
    assert_eq!(crm.texts("SELECT note FROM account WHERE num = 'A1'"), [None], "{label}");
    // Lookups resolve to the row of the same company on each side.
    assert_eq!(one(&crm, "SELECT grp_id FROM account WHERE num = 'A3'").as_deref(), Some("g2"), "{label}");
    assert_eq!(one(&crm, "SELECT grp_id FROM account WHERE num = 'A1'").as_deref(), Some("g1"), "{label}");
    assert_eq!(one(&erp, "SELECT grp FROM cust WHERE acct = 'K1'").as_deref(), Some("20"), "{label}");
    assert_eq!(erp.texts("SELECT label FROM grp WHERE co = 'C2' AND code = '20'"), [Some("Twenty".to_string())], "{label}");

    // Values of different types on the two sides compare equal: nothing to write the second time.
    let again = w.run(&["--format", "json", "sync"]);
    assert_eq!(again.code, 0, "{label}: {}", again.stderr);
    assert_eq!(super::written(&again), 0, "{label}: {}", again.stdout);
}

#[test]
fn sqlite_and_postgres() {
    pair(Kind::Sqlite, Kind::Postgres);
}

#[test]
fn postgres_and_postgres() {
    pair(Kind::Postgres, Kind::Postgres);
}

#[test]
fn postgres_and_mariadb() {
    pair(Kind::Postgres, Kind::Mariadb);
}

#[test]
fn sqlite_and_mariadb() {
    pair(Kind::Sqlite, Kind::Mariadb);
}

#[test]
fn mariadb_and_sqlite() {
    pair(Kind::Mariadb, Kind::Sqlite);
}

#[test]
fn a_refused_row_on_a_server_is_logged_and_retried_after_a_fix() {
    for kind in [Kind::Postgres, Kind::Mariadb] {
        let Some(crm) = TestDb::new(kind) else { continue };
        crm.exec(CRM);
        let w = super::apps();
        w.config(&super::CONFIG.replace("sqlite://crm.db", &crm.url));
        w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'fine'), ('C1', 'A2', 'a name far longer than twenty'), ('C1', 'A3', NULL)");
        let run = w.run(&["sync"]);
        assert_eq!(run.code, 3, "{kind:?}: {}{}", run.stdout, run.stderr);
        assert_eq!(crm.texts("SELECT num FROM account"), [Some("A1".to_string())], "{kind:?}");
        let errors = w.run(&["--format", "json", "errors"]).json();
        assert_eq!(errors.as_array().unwrap().len(), 2, "{kind:?}");
        assert!(errors.as_array().unwrap().iter().all(|e| e["column"] == "name"), "{kind:?}: {errors}");
        w.exec("erp.db", "UPDATE cust SET name = 'fixed' WHERE acct IN ('A2', 'A3')");
        assert_eq!(w.run(&["retry"]).code, 0, "{kind:?}");
        assert_eq!(
            crm.texts("SELECT CAST(count(*) AS {cast_text}) FROM account").into_iter().next().flatten().as_deref(),
            Some("3"),
            "{kind:?}"
        );
    }
}

#[test]
fn a_postgres_state_store_serves_sync_errors_retry_and_status() {
    let (Some(state), Some(crm)) = (TestDb::new(Kind::Postgres), TestDb::new(Kind::Postgres)) else { return };
    crm.exec(CRM);
    let w = super::apps();
    w.config(&format!("[state]\nurl = \"{}\"\n{}", state.url, super::CONFIG.replace("sqlite://crm.db", &crm.url)));
    w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'fine'), ('C2', 'A2', NULL)");
    assert_eq!(w.run(&["sync"]).code, 3);
    assert!(!w.path(".dualsync").exists(), "nothing is kept locally");
    let errors = w.run(&["--format", "json", "errors"]).json();
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert_eq!(errors[0]["key"][0], "A2");
    w.exec("erp.db", "UPDATE cust SET name = 'fixed'");
    assert_eq!(w.run(&["retry"]).code, 0);
    let status = w.run(&["--format", "json", "status"]).json();
    assert_eq!(status["maps"][1]["keys_synced"], 2, "{status}");
    assert_eq!(status["maps"][1]["open_errors"], 0);
    assert_eq!(state.texts("SELECT CAST(count(*) AS TEXT) FROM runs").into_iter().next().flatten().as_deref(), Some("2"));
}
