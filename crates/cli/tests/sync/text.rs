use super::apps;

/// Every kind of text the seed's product breaks on, and then some.
pub(super) fn hard_texts() -> Vec<String> {
    vec![
        "He said \"hello\", then left".into(),
        "a,b,\"c\",,\"\"".into(),
        "CR\rLF\nCRLF\r\nend".into(),
        "tab\there\tand\tthere".into(),
        "emoji 🚀🎉👩‍👩‍👧 and café".into(),
        "עברית and العربية in one line".into(),
        "'; DROP TABLE account; --".into(),
        "  spaces around  ".into(),
        "nul\u{0}inside".into(),
        format!("long {} end", "xyz\"\n,".repeat(2000)),
    ]
}

#[test]
fn hard_text_and_blobs_round_trip_byte_for_byte_in_both_directions() {
    let w = apps();
    let texts = hard_texts();
    let blob: Vec<u8> = (0..=255).collect();
    {
        let (erp, crm) = (w.db("erp.db"), w.db("crm.db"));
        for (i, t) in texts.iter().enumerate() {
            erp.execute(
                "INSERT INTO cust (co, acct, name, note, data) VALUES ('C1', ?1, 'n', ?2, ?3)",
                rusqlite::params![format!("E{i}"), t, blob],
            )
            .unwrap();
            crm.execute(
                "INSERT INTO account (id, co, num, name, note, data) VALUES (?1, 'C1', ?2, 'n', ?3, ?4)",
                rusqlite::params![format!("x{i}"), format!("K{i}"), t, blob],
            )
            .unwrap();
        }
    }
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for (db, table, key) in [("erp.db", "cust", "acct"), ("crm.db", "account", "num")] {
        for prefix in ["E", "K"] {
            for (i, t) in texts.iter().enumerate() {
                let sql = format!("SELECT hex(note), typeof(note), hex(data) FROM {table} WHERE {key} = '{prefix}{i}'");
                let row = &w.rows(db, &sql)[0];
                let expected_hex: String = t.bytes().map(|b| format!("{b:02X}")).collect();
                assert_eq!(row[0], rusqlite::types::Value::Text(expected_hex), "{db} {prefix}{i}: {t:?}");
                assert_eq!(row[1], rusqlite::types::Value::Text("text".into()));
                let blob_hex: String = blob.iter().map(|b| format!("{b:02X}")).collect();
                assert_eq!(row[2], rusqlite::types::Value::Text(blob_hex));
            }
        }
    }
    // And nothing differs afterwards: hard text compares equal to itself.
    assert_eq!(super::written(&w.run(&["--format", "json", "sync"])), 0);
}

#[test]
fn errors_export_as_csv_with_quotes_and_newlines_intact() {
    let w = apps();
    let long_name = "He said \"no\",\nthen a name far too long for the CRM";
    w.db("erp.db").execute("INSERT INTO cust (co, acct, name) VALUES ('C1', 'A,\"1\"', ?1)", [long_name]).unwrap();
    assert_eq!(w.run(&["sync"]).code, 3);
    let csv_out = w.run(&["--format", "csv", "errors"]);
    assert_eq!(csv_out.code, 0);
    let mut reader = csv::Reader::from_reader(csv_out.stdout.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1);
    let headers = reader.headers().unwrap().clone();
    let field = |name: &str| records[0][headers.iter().position(|h| h == name).unwrap()].to_string();
    assert_eq!(field("key"), r#"["A,\"1\""]"#);
    assert_eq!(field("value"), long_name);
    assert!(field("message").contains("CHECK constraint failed"), "{}", field("message"));
}
