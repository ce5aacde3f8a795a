//! CSV export and import: byte for byte, NULL apart from empty, bad lines
//! reported by number while the rest of the file loads.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};
use rusqlite::types::Value as Sql;

/// The ERP of the fixture holding every hard text (NUL included), NULL and '' and a blob of every byte.
fn erp_with_hard_rows() -> Workspace {
    let w = super::apps();
    let erp = w.db("erp.db");
    let blob: Vec<u8> = (0..=255).collect();
    for (i, t) in super::text::hard_texts().iter().enumerate() {
        erp.execute(
            "INSERT INTO cust (co, acct, name, credit, note, data) VALUES ('C1', ?1, ?2, 0.5, ?3, ?4)",
            rusqlite::params![format!("A{i:02}"), t, if i % 3 == 0 { None } else { Some(t.as_str()) }, blob],
        )
        .unwrap();
    }
    erp.execute_batch("INSERT INTO cust (co, acct, name, note) VALUES ('C2', 'E1', '', ''), ('C2', 'N1', 'n', NULL)").unwrap();
    w
}

/// The key of the source row whose texts hold NUL.
fn nul_key() -> String {
    let i = super::text::hard_texts().iter().position(|t| t.contains('\0')).expect("a hard text with NUL");
    format!("A{i:02}")
}

/// The columns of the map `customers` in the ERP's `cust`, the company and key first.
const COLUMNS: [&str; 9] = ["co", "acct", "name", "credit", "email", "terms", "grp", "note", "data"];

/// Every row of an ERP-shaped SQLite `cust`, as stored (types included), in key order.
fn sqlite_rows(w: &Workspace) -> Vec<Vec<Sql>> {
    w.rows("erp.db", &format!("SELECT {} FROM cust ORDER BY co, acct", COLUMNS.join(", ")))
}

/// Compares rows column by column, naming the row and column that differ.
fn assert_same_rows(got: &[Vec<Sql>], want: &[Vec<Sql>]) {
    let keys = |rows: &[Vec<Sql>]| rows.iter().map(|r| format!("{:?}/{:?}", r[0], r[1])).collect::<Vec<_>>();
    assert_eq!(keys(got), keys(want), "the rows (company/key)");
    for (g, w) in got.iter().zip(want) {
        for (c, name) in COLUMNS.iter().enumerate() {
            assert_eq!(g[c], w[c], "row {:?}/{:?}, column {name}", w[0], w[1]);
        }
    }
}

#[test]
fn export_then_import_gives_back_the_source_rows() {
    let source = erp_with_hard_rows();
    let want = sqlite_rows(&source);
    assert_eq!(want.len(), 12);
    let nul = want.iter().find(|r| r[1] == Sql::Text(nul_key())).expect("the NUL row");
    assert!(matches!(&nul[2], Sql::Text(t) if t.contains('\0')), "the source holds NUL: {:?}", nul[2]);
    let first = source.path("first.csv");
    assert_eq!(source.run(&["export", "--map", "customers", "--app", "erp", "--out", first.to_str().unwrap()]).code, 0);
    // Into an empty app of the same kind: the same rows as the source, column by column.
    let copy = super::apps();
    let run = copy.run(&["--format", "json", "import", "--map", "customers", "--app", "erp", "--in", first.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["inserted"], 12);
    assert_same_rows(&sqlite_rows(&copy), &want);
    // Every hard text, NULL apart from '', and the blob of every byte, spelled out.
    let blob: Vec<u8> = (0..=255).collect();
    for (i, t) in super::text::hard_texts().iter().enumerate() {
        let row = &copy.rows("erp.db", &format!("SELECT name, note, data FROM cust WHERE acct = 'A{i:02}'"))[0];
        assert_eq!(row[0], Sql::Text(t.clone()), "A{i:02} name");
        assert_eq!(row[1], if i % 3 == 0 { Sql::Null } else { Sql::Text(t.clone()) }, "A{i:02} note");
        assert_eq!(row[2], Sql::Blob(blob.clone()), "A{i:02} data");
    }
    assert_eq!(
        copy.rows("erp.db", "SELECT name, note, data FROM cust WHERE acct = 'E1'")[0],
        [Sql::Text("".into()), Sql::Text("".into()), Sql::Null]
    );
    assert_eq!(copy.rows("erp.db", "SELECT name, note FROM cust WHERE acct = 'N1'")[0], [Sql::Text("n".into()), Sql::Null]);
    // Out again, byte for byte.
    let second = copy.path("second.csv");
    assert_eq!(copy.run(&["export", "--map", "customers", "--app", "erp", "--out", second.to_str().unwrap()]).code, 0);
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    // Importing again updates, it does not duplicate.
    let again = copy.run(&["--format", "json", "import", "--map", "customers", "--app", "erp", "--in", first.to_str().unwrap()]);
    assert_eq!((again.json()["inserted"].as_u64(), again.json()["updated"].as_u64()), (Some(0), Some(12)));
    assert_same_rows(&sqlite_rows(&copy), &want);
}

/// Every row of the PostgreSQL `cust` (as `TestDb` creates it below) as SQLite values, in key order.
fn postgres_rows(db: &TestDb) -> Vec<Vec<Sql>> {
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let rows = c.query(&format!("SELECT {} FROM cust ORDER BY co COLLATE \"C\", acct COLLATE \"C\"", COLUMNS.join(", ")), &[]).unwrap();
    let text = |r: &postgres::Row, i: usize| r.get::<_, Option<String>>(i).map_or(Sql::Null, Sql::Text);
    rows.iter()
        .map(|r| {
            let mut out: Vec<Sql> = (0..3).map(|i| text(r, i)).collect();
            out.push(r.get::<_, Option<f64>>(3).map_or(Sql::Null, Sql::Real));
            out.extend((4..8).map(|i| text(r, i)));
            out.push(r.get::<_, Option<Vec<u8>>>(8).map_or(Sql::Null, Sql::Blob));
            out
        })
        .collect()
}

#[test]
fn a_file_moves_between_kinds_of_app_row_for_row() {
    let Some(pg) = TestDb::new(Kind::Postgres) else { return };
    pg.exec("CREATE TABLE cust (co {key} NOT NULL, acct {key} NOT NULL, name {text}, credit {real}, email {text}, terms {key}, grp {key}, note {longtext}, data {blob}, PRIMARY KEY (co, acct))");
    let source = erp_with_hard_rows();
    let first = source.path("first.csv");
    assert_eq!(source.run(&["export", "--map", "customers", "--app", "erp", "--out", first.to_str().unwrap()]).code, 0);
    let target = super::apps();
    target.config(&super::CONFIG.replace("sqlite://erp.db", &pg.url));
    let run = target.run(&["--format", "json", "import", "--map", "customers", "--app", "erp", "--in", first.to_str().unwrap()]);
    // PostgreSQL text cannot hold NUL: that row is refused on its own, the others load.
    assert_eq!(run.code, 3, "rows failed: {}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["inserted"], 11, "{report}");
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["key"], format!("[\"C1\",\"{}\"]", nul_key()), "{report}");
    assert_eq!(failed[0]["column"], "name", "{report}");
    let says = |m: &serde_json::Value| {
        let m = m.as_str().unwrap();
        m.starts_with("line ") && m.contains("PostgreSQL text cannot hold the NUL character (0x00)")
    };
    assert!(says(&failed[0]["message"]), "the line and why: {report}");
    // The error log holds that row, for `dualsync errors`.
    let errors = target.run(&["--format", "json", "errors"]).json();
    assert_eq!(errors.as_array().unwrap().len(), 1, "{errors}");
    assert!(errors[0]["key"].to_string().contains(&nul_key()), "{errors}");
    assert_eq!(errors[0]["column"], "name", "{errors}");
    assert!(says(&errors[0]["message"]), "{errors}");
    let nul = nul_key();
    let want: Vec<Vec<Sql>> = sqlite_rows(&source).into_iter().filter(|r| r[1] != Sql::Text(nul.clone())).collect();
    assert_same_rows(&postgres_rows(&pg), &want);
    // Out of PostgreSQL again: the file without the refused row, field for field.
    let second = target.path("second.csv");
    assert_eq!(target.run(&["export", "--map", "customers", "--app", "erp", "--out", second.to_str().unwrap()]).code, 0);
    let records = |path: &std::path::Path| {
        let mut r = csv::ReaderBuilder::new().has_headers(false).from_path(path).unwrap();
        r.byte_records().map(Result::unwrap).collect::<Vec<_>>()
    };
    let expected: Vec<_> = records(&first).into_iter().filter(|r| !r.iter().any(|f| f == nul.as_bytes())).collect();
    assert_eq!(expected.len(), 12, "the header and 11 rows");
    assert_eq!(records(&second), expected);
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
