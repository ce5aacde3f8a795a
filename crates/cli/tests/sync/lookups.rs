use super::apps;
use crate::util::text;

#[test]
fn lookups_resolve_to_the_right_row_in_the_right_company() {
    let w = apps();
    // Group "10" exists in both companies with different CRM ids; "20" only in the CRM of C2.
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', '10', 'Ten C1'), ('C2', '10', 'Ten C2')");
    w.exec(
        "crm.db",
        "INSERT INTO grp VALUES ('g-c1-10', 'C1', '10', 'Ten C1'), ('g-c2-10', 'C2', '10', 'Ten C2'), ('g-c2-20', 'C2', '20', 'Twenty')",
    );
    w.exec(
        "erp.db",
        "INSERT INTO cust (co, acct, name, grp) VALUES ('C1', 'A1', 'a1', '10'), ('C2', 'A2', 'a2', '10'), ('C2', 'A3', 'a3', NULL)",
    );
    w.exec(
        "crm.db",
        "INSERT INTO account (id, co, num, name, grp_id) VALUES ('x4', 'C2', 'A4', 'a4', 'g-c2-20'), ('x5', 'C1', 'A5', 'a5', 'g-c1-10')",
    );
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // In the CRM every account points at the group of its own company with the ERP's code.
    let crm = w.db("crm.db");
    crm.execute("ATTACH DATABASE ?1 AS erp", [w.path("erp.db").to_string_lossy()]).unwrap();
    let mismatched: i64 = crm
        .query_row(
            "SELECT count(*) FROM account a
               JOIN erp.cust c ON c.co = a.co AND c.acct = a.num
               LEFT JOIN grp g ON g.id = a.grp_id
             WHERE g.co IS NOT a.co AND a.grp_id IS NOT NULL OR g.code IS NOT c.grp",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(mismatched, 0);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account"), 5);
    assert_eq!(text(&w.one("crm.db", "SELECT grp_id FROM account WHERE num = 'A2'")), "g-c2-10");
    assert_eq!(text(&w.one("erp.db", "SELECT grp FROM cust WHERE acct = 'A4'")), "20");
    assert_eq!(w.count("erp.db", "SELECT count(*) FROM grp WHERE co = 'C2' AND code = '20'"), 1, "the group map ran first");
}

#[test]
fn a_row_whose_referenced_row_exists_nowhere_is_logged_with_the_missing_key() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', '10', 'Ten')");
    w.exec("erp.db", "INSERT INTO cust (co, acct, name, grp) VALUES ('C1', 'A1', 'good', '10'), ('C1', 'A2', 'orphan', '99')");
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM account"), 1, "the good row commits");
    let errors = w.run(&["--format", "json", "errors"]).json();
    let e = &errors[0];
    assert_eq!(e["key"][0], "A2");
    assert_eq!(e["column"], "grp_id");
    assert_eq!(e["value"], "99");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("no row with key 99") && message.contains("company C1"), "{message}");
}

#[test]
fn a_dangling_id_in_the_crm_is_logged_not_copied() {
    let w = apps();
    w.exec("crm.db", "INSERT INTO account (id, co, num, name, grp_id) VALUES ('x1', 'C1', 'K1', 'k', 'no-such-group')");
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 3);
    assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust"), 0);
    let errors = w.run(&["--format", "json", "errors"]).json();
    assert!(errors[0]["message"].as_str().unwrap().contains("no-such-group"), "{errors}");
}

/// Lookup columns into one map share its cache. Past the cache's limit it starts
/// over, before a batch's loads: never between two columns' loads, which would
/// drop the rows the first column just loaded.
#[test]
fn three_lookups_into_one_map_past_the_cache_limit_all_resolve() {
    use crate::util::Workspace;
    let w = Workspace::new();
    w.exec("a.db", "CREATE TABLE refs (code TEXT PRIMARY KEY); CREATE TABLE items (k TEXT PRIMARY KEY, l0 TEXT, l1 TEXT, l2 TEXT)");
    w.exec(
        "b.db",
        "CREATE TABLE refs (id TEXT PRIMARY KEY, code TEXT UNIQUE NOT NULL); CREATE TABLE items (k TEXT PRIMARY KEY, l0 TEXT, l1 TEXT, l2 TEXT)",
    );
    // 120,000 referenced rows; 40,000 items each referring to three other ones: 6,000 new
    // references per 2,000-row batch, so the 100,000-entry cache fills in the middle of a batch.
    w.exec(
        "a.db",
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < 120000)
         INSERT INTO refs SELECT printf('R%06d', i) FROM n;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < 40000)
         INSERT INTO items SELECT printf('K%06d', i), printf('R%06d', i), printf('R%06d', i + 40000), printf('R%06d', i + 80000) FROM n;",
    );
    let mut config = String::from(
        "[state]\nurl = \"sqlite://state.db\"\n[apps.a]\nurl = \"sqlite://a.db\"\n[apps.b]\nurl = \"sqlite://b.db\"\n
[[maps]]\nname = \"refs\"\nmaster = \"a\"\n[maps.a]\ntable = \"refs\"\nkey = \"code\"\n[maps.b]\ntable = \"refs\"\nkey = \"code\"\nid = \"id\"\nid_default = \"uuid\"\n[[maps.columns]]\na = \"code\"\nb = \"code\"\n
[[maps]]\nname = \"items\"\nmaster = \"a\"\n[maps.a]\ntable = \"items\"\nkey = \"k\"\n[maps.b]\ntable = \"items\"\nkey = \"k\"\n[[maps.columns]]\na = \"k\"\nb = \"k\"\n",
    );
    for j in 0..3 {
        config.push_str(&format!("[[maps.columns]]\na = \"l{j}\"\nb = \"l{j}\"\nlookup = \"refs\"\n"));
    }
    w.config(&config);
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let crm = w.db("b.db");
    let wrong: i64 = crm
        .query_row(
            "SELECT count(*) FROM items i LEFT JOIN refs r0 ON r0.id = i.l0 LEFT JOIN refs r1 ON r1.id = i.l1 LEFT JOIN refs r2 ON r2.id = i.l2
             WHERE r0.code IS NOT printf('R%06d', CAST(substr(i.k, 2) AS INTEGER))
                OR r1.code IS NOT printf('R%06d', CAST(substr(i.k, 2) AS INTEGER) + 40000)
                OR r2.code IS NOT printf('R%06d', CAST(substr(i.k, 2) AS INTEGER) + 80000)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((w.count("b.db", "SELECT count(*) FROM items"), wrong), (40000, 0));
}
