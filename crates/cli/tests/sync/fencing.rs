//! Environment fencing: a state store stamps each app's database at its first
//! sync. A copy of that database (a SQLite file copied, a PostgreSQL database
//! made with `CREATE DATABASE … TEMPLATE`), or the store pointed at another
//! database, is refused before anything is written, and `relink` confirms a
//! deliberate move.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};

const CONFIG: &str = r#"
[apps.erp]
url = "ERP"
[apps.crm]
url = "sqlite://crm.db"

[[maps]]
name = "customers"
[maps.erp]
table = "cust"
key = "acct"
[maps.crm]
table = "cust"
key = "acct"
[[maps.columns]]
erp = "acct"
crm = "acct"
[[maps.columns]]
erp = "name"
crm = "name"
"#;

const TABLE: &str = "CREATE TABLE cust (acct VARCHAR(20) PRIMARY KEY, name VARCHAR(50))";

/// A workspace syncing `erp_url` with a CRM of its own.
fn linked(erp_url: &str) -> Workspace {
    let w = Workspace::new();
    w.exec("crm.db", TABLE);
    w.config(&CONFIG.replace("\"ERP\"", &format!("{erp_url:?}")));
    w
}

fn refused(w: &Workspace, says: &[&str]) {
    for args in [&["sync"][..], &["check"][..]] {
        let run = w.run(args);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert_eq!(run.code, 1, "{args:?}: {all}");
        for s in says.iter().chain(&["relink --app erp"]) {
            assert!(all.contains(s), "{args:?} should say {s:?}: {all}");
        }
    }
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM cust"), 0, "nothing written");
}

#[test]
fn a_copied_sqlite_file_and_a_store_pointed_elsewhere_are_refused_until_relinked() {
    let prod = linked("sqlite://erp.db");
    prod.exec("erp.db", &format!("{TABLE}; INSERT INTO cust VALUES ('A1', 'One')"));
    assert_eq!(prod.run(&["sync"]).code, 0);
    let copy = prod.path("erp-copy.db");
    std::fs::copy(prod.path("erp.db"), &copy).unwrap();

    // A second environment pointed at the copy.
    let test = linked(&format!("sqlite://{}", copy.display()));
    refused(&test, &["app erp: this database is a copy or a restore of sqlite file", "erp.db", "linked as app erp"]);
    let relink = test.run(&["relink", "--app", "erp"]);
    assert_eq!(relink.code, 0, "{}", relink.stderr);
    assert!(relink.stdout.contains("removed 1 stamp(s)"), "{}", relink.stdout);
    assert_eq!(test.run(&["sync"]).code, 0);
    assert_eq!(test.count("crm.db", "SELECT count(*) FROM cust"), 1);

    // The first environment's store, pointed at another database: refused too.
    let config = std::fs::read_to_string(prod.path("dualsync.toml")).unwrap();
    prod.config(&config.replace("sqlite://erp.db", "sqlite://erp-copy.db"));
    prod.exec("crm.db", "DELETE FROM cust");
    refused(&prod, &["app erp: this state store synced sqlite file", "the url now reaches sqlite file", "erp-copy.db"]);
}

#[test]
fn a_postgres_database_made_from_another_as_template_is_refused_until_relinked() {
    let (Some(erp), Some(admin)) = (TestDb::new(Kind::Postgres), TestDb::new(Kind::Postgres)) else { return };
    erp.exec(TABLE);
    erp.exec("INSERT INTO cust VALUES ('A1', 'One')");
    let prod = linked(&erp.url);
    assert_eq!(prod.run(&["sync"]).code, 0);

    let copy = format!("{}_copy", erp.name());
    admin.exec(&format!("CREATE DATABASE {copy} TEMPLATE {}", erp.name()));
    struct Drop_<'a>(&'a TestDb, String);
    impl Drop for Drop_<'_> {
        fn drop(&mut self) {
            self.0.exec(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.1));
        }
    }
    let _dropped = Drop_(&admin, copy.clone());
    let test = linked(&erp.url.replace(erp.name(), &copy));
    refused(&test, &["this database is a copy or a restore of postgres system", &format!("database {} (oid", erp.name())]);
    assert_eq!(test.run(&["relink", "--app", "erp"]).code, 0);
    assert_eq!(test.run(&["sync"]).code, 0);
    assert_eq!(test.count("crm.db", "SELECT count(*) FROM cust"), 1);
    // The original is still linked to the first store alone, and syncs.
    assert_eq!(prod.run(&["sync"]).code, 0);
}
