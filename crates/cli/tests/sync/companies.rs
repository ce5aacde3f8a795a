//! Companies: a company column that is itself a lookup (the CRM stores the
//! company row's id, the ERP its code), and bootstrap-company.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};

const CONFIG: &str = r#"
[apps.erp]
url = "ERP"
[apps.crm]
url = "CRM"

[[maps]]
name = "companies"
[maps.erp]
table = "co"
key = "code"
[maps.crm]
table = "co"
key = "code"
id = "id"
id_default = "uuid"
[[maps.columns]]
erp = "code"
crm = "code"
[[maps.columns]]
erp = "name"
crm = "name"

[[maps]]
name = "customers"
[maps.erp]
table = "cust"
key = "acct"
company = "co"
[maps.crm]
table = "account"
key = "num"
company = "company_id"
company_lookup = "companies"
id = "id"
id_default = "uuid"
[[maps.columns]]
erp = "acct"
crm = "num"
[[maps.columns]]
erp = "name"
crm = "name"
"#;

fn company_lookup(kind: Kind) {
    let (Some(erp), Some(crm)) = (TestDb::new(kind), TestDb::new(kind)) else { return };
    erp.exec("CREATE TABLE co (code {key} PRIMARY KEY, name {text}); CREATE TABLE cust (co {key} NOT NULL, acct {key} NOT NULL, name {text}, PRIMARY KEY (co, acct))");
    crm.exec("CREATE TABLE co (id {key} PRIMARY KEY, code {key} NOT NULL UNIQUE, name {text}); CREATE TABLE account (id {key} PRIMARY KEY, company_id {key}, num {key} NOT NULL, name {text}, UNIQUE (company_id, num))");
    erp.exec("INSERT INTO co VALUES ('C1', 'One'), ('C2', 'Two'); INSERT INTO cust VALUES ('C1', 'A1', 'a1'), ('C2', 'A2', 'a2')");
    crm.exec("INSERT INTO co VALUES ('id-c1', 'C1', 'One'), ('id-c3', 'C3', 'Three')");
    crm.exec("INSERT INTO account VALUES ('x1', 'id-c1', 'K1', 'k1'), ('x3', 'id-c3', 'K3', 'k3'), ('x9', 'no-such-company', 'K9', 'k9')");
    let w = Workspace::new();
    w.config(
        &CONFIG.replace("url = \"ERP\"", &format!("url = \"{}\"", erp.url)).replace("url = \"CRM\"", &format!("url = \"{}\"", crm.url)),
    );
    let label = kind.name();

    // Before the companies map ran, the CRM has no row for C2: A2 cannot go there yet.
    let early = w.run(&["--format", "json", "sync", "--map", "customers"]);
    assert_eq!(early.code, 3, "{label}: {}", early.stderr);
    let errors = w.run(&["--format", "json", "errors"]).json();
    assert!(
        errors[0]["message"].as_str().unwrap().contains("company C2 does not exist in crm.co; sync map companies first"),
        "{label}: {errors}"
    );

    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{label}: {}{}", run.stdout, run.stderr);
    let warnings = run.json()["warnings"].to_string();
    assert!(warnings.contains("1 company value of crm.account.company_id refer to no row of crm.co"), "{label}: {warnings}");
    let crm_rows = crm.texts("SELECT c.code || '|' || a.num FROM account a JOIN co c ON c.id = a.company_id ORDER BY 1");
    let erp_rows = erp.texts("SELECT co || '|' || acct FROM cust ORDER BY 1");
    let expected: Vec<Option<String>> = ["C1|A1", "C1|K1", "C2|A2", "C3|K3"].iter().map(|s| Some(s.to_string())).collect();
    assert_eq!(crm_rows, expected, "{label}: the CRM holds each row under its company's id");
    assert_eq!(erp_rows, expected, "{label}: the ERP holds each row under its company's code");
    assert_eq!(w.run(&["--format", "json", "errors"]).json().as_array().unwrap().len(), 0, "{label}: A2 synced, its error resolved");
    assert_eq!(super::written(&w.run(&["--format", "json", "sync"])), 0, "{label}");
}

#[test]
fn a_company_column_that_is_a_lookup_on_sqlite() {
    company_lookup(Kind::Sqlite);
}

#[test]
fn a_company_column_that_is_a_lookup_on_postgres() {
    company_lookup(Kind::Postgres);
}

#[test]
fn bootstrap_company_gives_rows_a_company_after_a_dry_run() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let Some(crm) = TestDb::new(kind) else { continue };
        crm.exec(
            "CREATE TABLE grp (id {key} PRIMARY KEY, co {key} NOT NULL, code {key} NOT NULL, label {text}, UNIQUE (co, code));
CREATE TABLE account (id {key} PRIMARY KEY, co {key}, num {key} NOT NULL, name {key} NOT NULL, credit {real}, email {text},
                      terms {int}, grp_id {key}, note {longtext}, data {blob}, active {int} NOT NULL DEFAULT 1, UNIQUE (co, num))",
        );
        crm.exec("INSERT INTO account (id, co, num, name) VALUES ('x1', NULL, 'N1', 'a'), ('x2', NULL, 'N2', 'other'), ('x3', 'C1', 'A1', 'has'), ('x4', NULL, 'A1', 'dup')");
        let w = super::apps();
        w.config(&super::CONFIG.replace("sqlite://crm.db", &crm.url));
        let label = kind.name();
        let none = || crm.texts("SELECT num FROM account WHERE co IS NULL ORDER BY num");

        let dry = w.run(&["bootstrap-company", "--map", "customers", "--app", "crm", "--company", "C1", "--dry-run"]);
        assert_eq!(dry.code, 0, "{label}: {}", dry.stderr);
        assert!(dry.stdout.contains("3 rows of crm.account have no company"), "{label}: {}", dry.stdout);
        assert_eq!(none().len(), 3, "{label}: a dry run changes nothing");

        let some = w.run(&["bootstrap-company", "--map", "customers", "--app", "crm", "--company", "C1", "--where", "name = 'other'"]);
        assert_eq!(some.code, 0, "{label}: {}", some.stderr);
        assert_eq!(none(), [Some("A1".to_string()), Some("N1".to_string())], "{label}");

        // A1 already exists in C1: that row is refused and logged; N1 gets the company.
        let rest = w.run(&["bootstrap-company", "--map", "customers", "--app", "crm", "--company", "C1"]);
        assert_eq!(rest.code, 3, "{label}: {}{}", rest.stdout, rest.stderr);
        assert_eq!(none(), [Some("A1".to_string())], "{label}");
        let errors = w.run(&["--format", "json", "errors"]).json();
        assert_eq!(errors[0]["key"][0], "A1", "{label}: {errors}");
        let retry = w.run(&["retry"]);
        assert!(retry.stdout.contains("run it again"), "{label}: retry says how to fix a bootstrap error: {}", retry.stdout);

        assert_eq!(w.run(&["sync"]).code, 0, "{label}");
        assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust WHERE co = 'C1'"), 3, "{label}: N1, N2 and A1 reached the ERP");
        let bad = w.run(&["bootstrap-company", "--map", "customers", "--app", "crm", "--company", "C1", "--where", "name = "]);
        assert_eq!(bad.code, 2, "{label}: a bad --where is a usage error");
    }
}
