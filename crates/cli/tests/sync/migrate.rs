//! CSV export and import: byte for byte, NULL apart from empty, bad lines
//! reported by number while the rest of the file loads.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};

/// The ERP of the fixture holding every hard text, NULL and '' and a blob of every byte.
fn erp_with_hard_rows() -> Workspace {
    let w = super::apps();
    let erp = w.db("erp.db");
    let blob: Vec<u8> = (0..=255).collect();
    for (i, t) in super::text::hard_texts().iter().filter(|t| !t.contains('\0')).enumerate() {
        erp.execute(
            "INSERT INTO cust (co, acct, name, credit, note, data) VALUES ('C1', ?1, ?2, 0.5, ?3, ?4)",
            rusqlite::params![format!("A{i:02}"), t, if i % 3 == 0 { None } else { Some(t.as_str()) }, blob],
        )
        .unwrap();
    }
    erp.execute_batch("INSERT INTO cust (co, acct, name, note) VALUES ('C2', 'E1', '', ''), ('C2', 'N1', 'n', NULL)").unwrap();
    w
}

#[test]
fn export_import_export_is_byte_for_byte() {
    let source = erp_with_hard_rows();
    let first = source.path("first.csv");
    assert_eq!(source.run(&["export", "--map", "customers", "--app", "erp", "--out", first.to_str().unwrap()]).code, 0);
    // Into an empty app of the same kind, and out again.
    let copy = super::apps();
    let run = copy.run(&["--format", "json", "import", "--map", "customers", "--app", "erp", "--in", first.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["inserted"], 11);
    let second = copy.path("second.csv");
    assert_eq!(copy.run(&["export", "--map", "customers", "--app", "erp", "--out", second.to_str().unwrap()]).code, 0);
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    // NULL and '' stayed apart.
    assert_eq!(copy.one("erp.db", "SELECT typeof(note) FROM cust WHERE acct = 'N1'"), rusqlite::types::Value::Text("null".into()));
    assert_eq!(
        copy.one("erp.db", "SELECT typeof(note) || length(note) FROM cust WHERE acct = 'E1'"),
        rusqlite::types::Value::Text("text0".into())
    );
    // Importing again updates, it does not duplicate.
    let again = copy.run(&["--format", "json", "import", "--map", "customers", "--app", "erp", "--in", first.to_str().unwrap()]);
    assert_eq!((again.json()["inserted"].as_u64(), again.json()["updated"].as_u64()), (Some(0), Some(11)));
}

#[test]
fn a_file_moves_between_kinds_of_app_byte_for_byte() {
    let Some(pg) = TestDb::new(Kind::Postgres) else { return };
    pg.exec("CREATE TABLE cust (co {key} NOT NULL, acct {key} NOT NULL, name {text}, credit {real}, email {text}, terms {key}, grp {key}, note {longtext}, data {blob}, PRIMARY KEY (co, acct))");
    let source = erp_with_hard_rows();
    let first = source.path("first.csv");
    assert_eq!(source.run(&["export", "--map", "customers", "--app", "erp", "--out", first.to_str().unwrap()]).code, 0);
    let target = super::apps();
    target.config(&super::CONFIG.replace("sqlite://erp.db", &pg.url));
    let run = target.run(&["import", "--map", "customers", "--app", "erp", "--in", first.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let second = target.path("second.csv");
    assert_eq!(target.run(&["export", "--map", "customers", "--app", "erp", "--out", second.to_str().unwrap()]).code, 0);
    assert_eq!(String::from_utf8(std::fs::read(&first).unwrap()).unwrap(), String::from_utf8(std::fs::read(&second).unwrap()).unwrap());
}

#[test]
fn a_broken_quote_on_line_1234_is_reported_and_the_rest_imports() {
    let w = super::apps();
    let mut csv = String::from("\"co\",\"acct\",\"name\"\r\n");
    for i in 2..=2001 {
        if i == 1234 {
            csv.push_str("\"C1\",\"A1234\",\"broken \"quote\r\n");
        } else {
            csv.push_str(&format!("\"C1\",\"A{i}\",\"name {i}, with \"\"quotes\"\"\"\r\n"));
        }
    }
    let file = w.path("broken.csv");
    std::fs::write(&file, csv).unwrap();
    let strict = w.run(&["import", "--map", "customers", "--app", "erp", "--in", file.to_str().unwrap(), "--strict"]);
    assert_eq!(strict.code, 2, "{}{}", strict.stdout, strict.stderr);
    assert!(strict.stderr.contains("line 1234"), "{}", strict.stderr);
    assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust"), 0, "--strict refuses the whole file");

    let run = w.run(&["import", "--map", "customers", "--app", "erp", "--in", file.to_str().unwrap()]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust"), 1999);
    assert_eq!(
        w.one("erp.db", "SELECT name FROM cust WHERE acct = 'A2001'"),
        rusqlite::types::Value::Text("name 2001, with \"quotes\"".into())
    );
    let errors = w.run(&["--format", "json", "errors"]).json();
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert!(errors[0]["message"].as_str().unwrap().starts_with("line 1234: "), "{errors}");
    // retry cannot fix a line of a file: it says how, and the error stays open.
    let retry = w.run(&["retry"]);
    assert_eq!(retry.code, 3);
    assert!(retry.stdout.contains("fix the file and import it again"), "{}", retry.stdout);
    assert_eq!(w.run(&["--format", "json", "errors"]).json().as_array().unwrap().len(), 1);
}
