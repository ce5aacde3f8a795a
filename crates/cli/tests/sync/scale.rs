//! Lookups without limits, cycles, self-references and companies at scale:
//! a generated data set synced in one run, checked by joins in each database.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};
use std::fmt::Write;

const COMPANIES: usize = 1000;
const LOOKUPS: usize = 25;
const REFS: usize = 5;

fn erp_schema() -> String {
    let lookups: String = (0..LOOKUPS).map(|j| format!(", l{j} {{key}}")).collect();
    format!(
        "CREATE TABLE co (code {{key}} PRIMARY KEY, name {{text}});
CREATE TABLE ref (co {{key}} NOT NULL, code {{key}} NOT NULL, label {{text}}, PRIMARY KEY (co, code));
CREATE TABLE wide (co {{key}} NOT NULL, k {{key}} NOT NULL{lookups}, PRIMARY KEY (co, k));
CREATE TABLE accounts (co {{key}} NOT NULL, k {{key}} NOT NULL, parent {{key}}, contact {{key}}, PRIMARY KEY (co, k));
CREATE TABLE contacts (co {{key}} NOT NULL, k {{key}} NOT NULL, account {{key}}, PRIMARY KEY (co, k))"
    )
}

fn crm_schema() -> String {
    let lookups: String = (0..LOOKUPS).map(|j| format!(", l{j} {{key}}")).collect();
    format!(
        "CREATE TABLE co (id {{key}} PRIMARY KEY, code {{key}} NOT NULL UNIQUE, name {{text}});
CREATE TABLE ref (id {{key}} PRIMARY KEY, co {{key}} NOT NULL, code {{key}} NOT NULL, label {{text}}, UNIQUE (co, code));
CREATE TABLE wide (id {{key}} PRIMARY KEY, co {{key}}, k {{key}} NOT NULL{lookups}, UNIQUE (co, k));
CREATE TABLE accounts (id {{key}} PRIMARY KEY, co {{key}} NOT NULL, k {{key}} NOT NULL, parent_id {{key}}, contact_id {{key}}, UNIQUE (co, k));
CREATE TABLE contacts (id {{key}} PRIMARY KEY, co {{key}} NOT NULL, k {{key}} NOT NULL, account_id {{key}}, UNIQUE (co, k))"
    )
}

fn config(erp: &str, crm: &str) -> String {
    let mut c = format!(
        r#"[apps.erp]
url = "{erp}"
[apps.crm]
url = "{crm}"

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
name = "refs"
[maps.erp]
table = "ref"
key = "code"
company = "co"
[maps.crm]
table = "ref"
key = "code"
company = "co"
id = "id"
id_default = "uuid"
[[maps.columns]]
erp = "code"
crm = "code"
[[maps.columns]]
erp = "label"
crm = "label"

[[maps]]
name = "wide"
workers = 8
[maps.erp]
table = "wide"
key = "k"
company = "co"
[maps.crm]
table = "wide"
key = "k"
company = "co"
id = "id"
id_default = "uuid"
[[maps.columns]]
erp = "k"
crm = "k"
"#
    );
    for j in 0..LOOKUPS {
        let _ = write!(c, "[[maps.columns]]\nerp = \"l{j}\"\ncrm = \"l{j}\"\nlookup = \"refs\"\n");
    }
    c.push_str(
        r#"
[[maps]]
name = "accounts"
threading = "single"
[maps.erp]
table = "accounts"
key = "k"
company = "co"
[maps.crm]
table = "accounts"
key = "k"
company = "co"
id = "id"
id_default = "uuid"
[[maps.columns]]
erp = "k"
crm = "k"
[[maps.columns]]
erp = "parent"
crm = "parent_id"
lookup = "accounts"
[[maps.columns]]
erp = "contact"
crm = "contact_id"
lookup = "contacts"

[[maps]]
name = "contacts"
[maps.erp]
table = "contacts"
key = "k"
company = "co"
[maps.crm]
table = "contacts"
key = "k"
company = "co"
id = "id"
id_default = "uuid"
[[maps.columns]]
erp = "k"
crm = "k"
[[maps.columns]]
erp = "account"
crm = "account_id"
lookup = "accounts"
"#,
    );
    c
}

/// Runs `sql` statements of many rows in chunks.
fn insert_many(db: &TestDb, head: &str, rows: &[String]) {
    for chunk in rows.chunks(500) {
        db.exec(&format!("{head} VALUES {}", chunk.join(", ")));
    }
}

fn is_orphan(company: usize, row: usize) -> bool {
    (company % 100 == 7 || company % 100 == 8) && row == 0
}

/// The "company|key|" prefixes of the orphan rows, which exist on one side only.
fn orphan_rows() -> Vec<String> {
    (0..COMPANIES).filter(|&i| is_orphan(i, 0)).map(|i| format!("{}|W{i}-0|", company(i))).collect()
}

fn company(i: usize) -> String {
    format!("C{i:04}")
}

/// Even companies' wide rows are in the ERP, odd ones in the CRM (with its own ids).
fn fill(erp: &TestDb, crm: &TestDb) {
    let codes: Vec<String> = (0..COMPANIES).map(|i| format!("('{}', 'Company {i}')", company(i))).collect();
    insert_many(erp, "INSERT INTO co (code, name)", &codes);
    let mut erp_refs = Vec::new();
    let mut crm_refs = Vec::new();
    let mut erp_wide = Vec::new();
    let mut crm_wide = Vec::new();
    for i in 0..COMPANIES {
        let co = company(i);
        for r in 0..REFS {
            erp_refs.push(format!("('{co}', 'R{r}', 'ref {r}')"));
            crm_refs.push(format!("('ref-{i}-{r}', '{co}', 'R{r}', 'ref {r}')"));
        }
        for w in 0..2 {
            let k = format!("W{i}-{w}");
            // Lookup j of row w points at ref (i + j + w) % REFS; in 2 of every 100 companies
            // (one even: ERP, one odd: CRM) column l3 of row 0 is an orphan.
            let target = |j: usize| if is_orphan(i, w) && j == 3 { "R99".to_string() } else { format!("R{}", (i + j + w) % REFS) };
            if i % 2 == 0 {
                let values: String = (0..LOOKUPS).map(|j| format!(", '{}'", target(j))).collect();
                erp_wide.push(format!("('{co}', '{k}'{values})"));
            } else {
                let values: String = (0..LOOKUPS)
                    .map(|j| {
                        let t = target(j);
                        if t == "R99" {
                            ", 'no-such-id'".to_string()
                        } else {
                            format!(", 'ref-{i}-{}'", &t[1..])
                        }
                    })
                    .collect();
                crm_wide.push(format!("('wide-{i}-{w}', '{co}', '{k}'{values})"));
            }
        }
    }
    let columns: String = (0..LOOKUPS).map(|j| format!(", l{j}")).collect();
    insert_many(erp, "INSERT INTO ref (co, code, label)", &erp_refs);
    insert_many(crm, "INSERT INTO ref (id, co, code, label)", &crm_refs);
    insert_many(erp, &format!("INSERT INTO wide (co, k{columns})"), &erp_wide);
    insert_many(crm, &format!("INSERT INTO wide (id, co, k{columns})"), &crm_wide);
    // Rows without a company in the CRM take no part.
    crm.exec("INSERT INTO wide (id, co, k) VALUES ('nowhere-1', NULL, 'N1'), ('nowhere-2', NULL, 'N2')");
    // The cycle (accounts <-> contacts) and the self-reference (account parent), in the first 10 companies.
    for i in 0..10 {
        let co = company(i);
        erp.exec(&format!(
            "INSERT INTO accounts (co, k, parent, contact) VALUES ('{co}', 'A1', NULL, 'P1'), ('{co}', 'A2', 'A1', 'P2'), ('{co}', 'A3', 'A2', NULL);
INSERT INTO contacts (co, k, account) VALUES ('{co}', 'P1', 'A1'), ('{co}', 'P2', 'A2')"
        ));
    }
}

/// "company|key|referenced key" for every lookup of every row, on one side.
fn erp_links(db: &TestDb) -> Vec<String> {
    let mut out = Vec::new();
    for j in 0..LOOKUPS {
        out.extend(db.texts(&format!("SELECT co || '|' || k || '|{j}|' || l{j} FROM wide WHERE l{j} IS NOT NULL")).into_iter().flatten());
    }
    out.sort();
    out
}

fn crm_links(db: &TestDb) -> Vec<String> {
    let mut out = Vec::new();
    for j in 0..LOOKUPS {
        // Joined within the same company: a lookup to another company's row would not count.
        out.extend(
            db.texts(&format!("SELECT w.co || '|' || w.k || '|{j}|' || r.code FROM wide w JOIN ref r ON r.id = w.l{j} AND r.co = w.co"))
                .into_iter()
                .flatten(),
        );
    }
    out.sort();
    out
}

fn run_scale(erp_kind: Kind, crm_kind: Kind) {
    let (Some(erp), Some(crm)) = (TestDb::new(erp_kind), TestDb::new(crm_kind)) else { return };
    erp.exec(&erp_schema());
    crm.exec(&crm_schema());
    fill(&erp, &crm);
    let w = Workspace::new();
    w.config(&config(&erp.url, &crm.url));
    let label = format!("{} -> {}", erp_kind.name(), crm_kind.name());

    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 3, "{label}: the orphan lookups fail: {}", run.stderr);
    let report = run.json();
    let companies: std::collections::HashSet<&str> =
        report["partitions"].as_array().unwrap().iter().filter(|p| p["map"] == "wide").map(|p| p["company"].as_str().unwrap()).collect();
    assert_eq!(companies.len(), COMPANIES, "{label}: every company in one run");
    assert!(
        report["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("2 rows of crm.wide have no company")),
        "{label}"
    );

    // Every row but the orphans is on both sides, and every lookup points at the same key in the same company.
    let orphans = orphan_rows();
    let count = |db: &TestDb| {
        db.texts("SELECT CAST(count(*) AS TEXT) FROM wide WHERE co IS NOT NULL")[0].clone().unwrap().parse::<usize>().unwrap()
    };
    assert_eq!(count(&erp), 2 * COMPANIES - orphans.len() / 2, "{label}: the CRM's orphans do not reach the ERP");
    assert_eq!(count(&crm), 2 * COMPANIES - orphans.len() / 2, "{label}: the ERP's orphans do not reach the CRM");
    let on_both_sides = |links: Vec<String>| links.into_iter().filter(|l| !orphans.iter().any(|o| l.starts_with(o))).collect::<Vec<_>>();
    let (erp_side, crm_side) = (on_both_sides(erp_links(&erp)), on_both_sides(crm_links(&crm)));
    assert_eq!(erp_side.len(), (2 * COMPANIES - orphans.len()) * LOOKUPS, "{label}");
    assert_eq!(erp_side, crm_side, "{label}: lookups differ");

    // The orphans are in the error log with the missing key; the rest of the map synced.
    let errors = w.run(&["--format", "json", "errors", "--map", "wide"]).json();
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), orphans.len(), "{label}: {errors:?}");
    assert!(errors.iter().all(|e| {
        let m = e["message"].as_str().unwrap();
        m.contains("no row with key R99") || m.contains("no-such-id")
    }));

    // The cycle and the self-reference: every reference resolved to the right row.
    let crm_parents = crm
        .texts("SELECT a.co || '|' || a.k || '|' || p.k FROM accounts a JOIN accounts p ON p.id = a.parent_id AND p.co = a.co ORDER BY 1");
    let erp_parents = erp.texts("SELECT co || '|' || k || '|' || parent FROM accounts WHERE parent IS NOT NULL ORDER BY 1");
    assert_eq!(crm_parents, erp_parents, "{label}");
    assert_eq!(crm_parents.len(), 20);
    let crm_cycle = crm.texts("SELECT a.k || '>' || c.k || '>' || b.k FROM accounts a JOIN contacts c ON c.id = a.contact_id JOIN accounts b ON b.id = c.account_id ORDER BY a.co, a.k");
    assert_eq!(
        crm_cycle.iter().flatten().filter(|s| s.as_str() == "A1>P1>A1" || s.as_str() == "A2>P2>A2").count(),
        20,
        "{label}: {crm_cycle:?}"
    );

    let again = w.run(&["--format", "json", "sync"]);
    assert_eq!(again.code, 3, "{label}");
    assert_eq!(super::written(&again), 0, "{label}: {}", again.stdout);
}

#[test]
fn lookups_cycles_and_a_thousand_companies_on_sqlite() {
    run_scale(Kind::Sqlite, Kind::Sqlite);
}

#[test]
fn lookups_cycles_and_a_thousand_companies_on_postgres() {
    run_scale(Kind::Postgres, Kind::Postgres);
}
