//! The connector conformance suite: every case runs against SQLite,
//! PostgreSQL and MariaDB alike, each on a fresh database.

use dualsync_connectors::{Connection, FetchRequest, ScanRequest, Selection, WriteBatch, WriteOp};
use dualsync_model::{Filter, Row, TypeClass, Value};
use dualsync_testkit::{Kind, TestDb, ALL};

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

/// Runs `case` on each kind whose server is reachable (see dualsync-testkit).
fn each_kind(case: impl Fn(Kind, &TestDb, &mut dyn Connection)) {
    for kind in ALL {
        let Some(db) = TestDb::new(kind) else { continue };
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        // Tables are created by the case; connect after the first exec.
        case(kind, &db, connector.connect().unwrap().as_mut());
    }
}

fn scan_all(conn: &mut dyn Connection, table: &str, columns: &[&str], order: &[&str], batch: usize) -> Vec<Row> {
    let request = ScanRequest {
        selection: Selection { table: table.into(), ..Default::default() },
        columns: columns.iter().map(|c| c.to_string()).collect(),
        order_by: order.iter().map(|c| c.to_string()).collect(),
        batch_size: batch,
    };
    let mut out = Vec::new();
    conn.scan(&request, &mut |rows| {
        assert!(rows.len() <= batch, "batches stay within batch_size");
        out.extend(rows);
        true
    })
    .unwrap();
    out
}

fn insert(table: &str, columns: &[&str], rows: Vec<Row>) -> WriteBatch {
    WriteBatch {
        table: table.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        key_columns: vec![columns[0].to_string()],
        scope: vec![],
        ops: rows.into_iter().map(WriteOp::Insert).collect(),
    }
}

#[test]
fn describe_reports_columns_types_nullability_and_keys() {
    each_kind(|kind, db, _| {
        db.exec("CREATE TABLE d (id {int} PRIMARY KEY, code {key} NOT NULL, name {text}, amount {decimal}, ok {bool}, born {date}, seen {timestamp}, data {blob}, UNIQUE (code))");
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let schema = connector.connect().unwrap().describe("d").unwrap();
        let class = |c: &str| schema.column(c).unwrap().class;
        assert_eq!(class("id"), TypeClass::Integer, "{kind:?}");
        assert_eq!(class("code"), TypeClass::Text, "{kind:?}");
        assert_eq!(class("amount"), TypeClass::Decimal, "{kind:?}");
        assert_eq!(class("ok"), TypeClass::Bool, "{kind:?}");
        assert_eq!(class("born"), TypeClass::Date, "{kind:?}");
        assert_eq!(class("seen"), TypeClass::Timestamp, "{kind:?}");
        assert_eq!(class("data"), TypeClass::Blob, "{kind:?}");
        assert!(!schema.column("code").unwrap().nullable && schema.column("name").unwrap().nullable, "{kind:?}");
        assert_eq!(schema.primary_key, ["id"], "{kind:?}");
        assert!(schema.is_unique(&["code".into()]), "{kind:?}");
        let missing = connector.connect().unwrap().describe("nope").unwrap_err();
        assert_eq!(missing.kind, dualsync_connectors::ErrorKind::Schema, "{kind:?}");
    });
}

#[test]
fn scans_stream_in_binary_key_order_in_batches() {
    each_kind(|kind, db, _| {
        db.exec("CREATE TABLE s (k {key} PRIMARY KEY, co {key}, n {int})");
        // Distinct under a case-insensitive collation (MariaDB's default), ordered differently by bytes.
        let keys = ["b", "C", "a", "é", "Z", " a", "10", "9", "a b", "ab", "Ω", "😀", "_x", "~y"];
        let conn = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = conn.connect().unwrap();
        let rows =
            keys.iter().enumerate().map(|(i, k)| vec![t(k), t(if i % 2 == 0 { "C1" } else { "C2" }), Value::Int(i as i64)]).collect();
        assert!(conn.write(&insert("s", &["k", "co", "n"], rows)).unwrap().failures.is_empty());
        let scanned: Vec<Value> = scan_all(conn.as_mut(), "s", &["k"], &["k"], 3).into_iter().map(|mut r| r.remove(0)).collect();
        let mut expected: Vec<Value> = keys.iter().map(|k| t(k)).collect();
        expected.sort_by(|a, b| a.key_cmp(b));
        assert_eq!(scanned, expected, "{kind:?} sorts keys by bytes");
        // A selection: one company, with a filter.
        let request = ScanRequest {
            selection: Selection {
                table: "s".into(),
                filter: Some(Filter::parse("n >= 4").unwrap()),
                equals: vec![("co".into(), t("C1"))],
            },
            columns: vec!["n".into()],
            order_by: vec!["k".into()],
            batch_size: 100,
        };
        let mut got = Vec::new();
        conn.scan(&request, &mut |rows| {
            got.extend(rows.into_iter().map(|mut r| r.remove(0)));
            true
        })
        .unwrap();
        assert_eq!(got.len(), 5, "{kind:?}: even n from 4 to 13");
        // Early stop: the scan ends when the callback says so.
        let mut calls = 0;
        conn.scan(&ScanRequest { batch_size: 2, ..request.clone() }, &mut |_| {
            calls += 1;
            false
        })
        .unwrap();
        assert_eq!(calls, 1, "{kind:?}");
        assert_eq!(conn.count(&request.selection).unwrap(), 5, "{kind:?}");
        let companies = conn.distinct(&Selection { table: "s".into(), ..Default::default() }, "co").unwrap();
        assert_eq!(companies, vec![t("C1"), t("C2")], "{kind:?}");
    });
}

#[test]
fn a_batch_commits_every_row_but_the_refused_ones() {
    each_kind(|kind, db, _| {
        db.exec("CREATE TABLE w (k {key} PRIMARY KEY, name {key} NOT NULL, CHECK (length(name) <= 10))");
        let conn = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = conn.connect().unwrap();
        let rows: Vec<Row> = (0..300)
            .map(|i| {
                let name = match i {
                    17 => Value::Null,
                    150 => t("far too long for ten"),
                    _ => t(&format!("n{i}")),
                };
                vec![t(&format!("k{i:03}")), name]
            })
            .collect();
        let outcome = conn.write(&insert("w", &["k", "name"], rows)).unwrap();
        let failed: Vec<usize> = outcome.failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, [17, 150], "{kind:?}: {:?}", outcome.failures);
        for f in &outcome.failures {
            assert_eq!(f.column.as_deref(), Some("name"), "{kind:?}: {}", f.message);
            assert!(!f.message.is_empty());
        }
        assert_eq!(conn.count(&Selection { table: "w".into(), ..Default::default() }).unwrap(), 298, "{kind:?}");
        // A duplicate key is refused alone, and updates set only their columns within the scope.
        let batch = WriteBatch {
            table: "w".into(),
            columns: vec!["k".into(), "name".into()],
            key_columns: vec!["k".into()],
            scope: vec![],
            ops: vec![
                WriteOp::Insert(vec![t("k001"), t("dup")]),
                WriteOp::Update { key: vec![t("k002")], set: vec![("name".into(), t("renamed"))] },
                WriteOp::Update { key: vec![t("k003")], set: vec![("name".into(), Value::Null)] },
            ],
        };
        let outcome = conn.write(&batch).unwrap();
        assert_eq!(outcome.failures.iter().map(|f| f.index).collect::<Vec<_>>(), [0, 2], "{kind:?}: {:?}", outcome.failures);
        assert_eq!(db.texts("SELECT name FROM w WHERE k = 'k002'"), [Some("renamed".to_string())], "{kind:?}");
    });
}

/// Text that breaks naive tools, and what each kind can store.
fn hard_texts(kind: Kind) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "He said \"hello\", then left".into(),
        "back\\slash \\N \\t and tab\there".into(),
        "CR\rLF\nCRLF\r\n".into(),
        "emoji 🚀👩‍👩‍👧, café, ñ".into(),
        "עברית العربية".into(),
        "'; DROP TABLE h; --".into(),
        "  spaced  ".into(),
        String::new(),
        format!("long {}", "xy\"\n,\t".repeat(3000)),
    ];
    if kind != Kind::Postgres {
        v.push("nul\u{0}inside".into()); // PostgreSQL text cannot hold NUL: refused there (see below)
    }
    v
}

#[test]
fn hard_text_and_null_round_trip_byte_for_byte() {
    each_kind(|kind, db, _| {
        db.exec("CREATE TABLE h (k {key} PRIMARY KEY, v {longtext})");
        let conn = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = conn.connect().unwrap();
        let mut rows: Vec<Row> = hard_texts(kind).into_iter().enumerate().map(|(i, s)| vec![t(&format!("k{i:02}")), t(&s)]).collect();
        rows.push(vec![t("null"), Value::Null]);
        let expected = rows.clone();
        assert!(conn.write(&insert("h", &["k", "v"], rows)).unwrap().failures.is_empty(), "{kind:?}");
        let mut back = scan_all(conn.as_mut(), "h", &["k", "v"], &["k"], 4);
        back.sort_by(|a, b| a[0].key_cmp(&b[0]));
        let mut expected = expected;
        expected.sort_by(|a, b| a[0].key_cmp(&b[0]));
        assert_eq!(back, expected, "{kind:?}");
        if kind == Kind::Postgres {
            let outcome = conn.write(&insert("h", &["k", "v"], vec![vec![t("nul"), t("a\u{0}b")]])).unwrap();
            assert!(outcome.failures[0].message.contains("NUL"), "{:?}", outcome.failures);
        }
    });
}

#[test]
fn every_type_of_the_mapping_round_trips() {
    each_kind(|kind, db, _| {
        db.exec("CREATE TABLE ty (k {key} PRIMARY KEY, i {int}, r {real}, d {decimal}, b {bool}, x {blob}, dt {date}, ts {timestamp})");
        let conn = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = conn.connect().unwrap();
        let full = vec![
            t("full"),
            Value::Int(-9_007_199_254_740_993),
            Value::Float(0.1),
            Value::Decimal("123456789012.25".into()),
            Value::Bool(true),
            Value::Bytes((0..=255).collect()),
            Value::Date("2026-02-28".into()),
            Value::Timestamp("2026-02-28T13:14:15.5".into()),
        ];
        let nulls = std::iter::once(t("nulls")).chain(std::iter::repeat_n(Value::Null, 7)).collect::<Vec<_>>();
        let columns = ["k", "i", "r", "d", "b", "x", "dt", "ts"];
        assert!(conn.write(&insert("ty", &columns, vec![full.clone(), nulls.clone()])).unwrap().failures.is_empty(), "{kind:?}");
        let back = scan_all(conn.as_mut(), "ty", &columns, &["k"], 10);
        for (got, want) in back.iter().zip([&full, &nulls]) {
            for (c, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(g.same_as(w), "{kind:?} column {}: wrote {w:?}, read {g:?}", columns[c]);
            }
        }
        // Values the column would round are refused, never rounded.
        if kind != Kind::Sqlite {
            let lossy = vec![
                vec![t("l1"), Value::Float(1.5), Value::Null, Value::Null, Value::Null, Value::Null, Value::Null, Value::Null],
                vec![t("l2"), Value::Null, Value::Null, Value::Decimal("1.005".into()), Value::Null, Value::Null, Value::Null, Value::Null],
            ];
            let outcome = conn.write(&insert("ty", &columns, lossy)).unwrap();
            assert_eq!(outcome.failures.len(), 2, "{kind:?}: {:?}", outcome.failures);
            assert!(outcome.failures.iter().all(|f| f.message.contains("rounded")), "{kind:?}: {:?}", outcome.failures);
        }
    });
}

#[test]
fn fetch_finds_rows_by_keys_of_one_or_several_columns() {
    each_kind(|kind, db, _| {
        db.exec("CREATE TABLE f (co {key} NOT NULL, k {key} NOT NULL, n {int}, PRIMARY KEY (co, k))");
        let conn = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = conn.connect().unwrap();
        let rows = (0..50).map(|i| vec![t(if i < 25 { "A" } else { "B" }), t(&format!("k{i}")), Value::Int(i)]).collect();
        let mut batch = insert("f", &["co", "k", "n"], rows);
        batch.key_columns = vec!["co".into(), "k".into()];
        conn.write(&batch).unwrap();
        let request = FetchRequest {
            selection: Selection { table: "f".into(), filter: None, equals: vec![("co".into(), t("B"))] },
            columns: vec!["n".into()],
            match_columns: vec!["k".into()],
            keys: vec![vec![t("k3")], vec![t("k30")], vec![t("k31")], vec![t("missing")]],
        };
        let mut got: Vec<Value> = conn.fetch(&request).unwrap().into_iter().map(|mut r| r.remove(0)).collect();
        got.sort_by(|a, b| a.key_cmp(b));
        assert_eq!(got, [Value::Int(30), Value::Int(31)], "{kind:?}: k3 is in company A");
        let two = FetchRequest {
            selection: Selection { table: "f".into(), ..Default::default() },
            columns: vec!["n".into()],
            match_columns: vec!["co".into(), "k".into()],
            keys: vec![vec![t("A"), t("k3")], vec![t("B"), t("k3")]],
        };
        assert_eq!(conn.fetch(&two).unwrap(), vec![vec![Value::Int(3)]], "{kind:?}");
    });
}

#[test]
fn a_probe_writes_like_write_then_leaves_nothing() {
    each_kind(|kind, db, _| {
        db.exec("CREATE TABLE p (k {key} PRIMARY KEY, name {key} NOT NULL)");
        let conn = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = conn.connect().unwrap();
        let rows = (0..100).map(|i| vec![t(&format!("k{i}")), if i == 50 { Value::Null } else { t("x") }]).collect();
        let outcome = conn.probe(&insert("p", &["k", "name"], rows)).unwrap();
        assert_eq!(outcome.failures.iter().map(|f| f.index).collect::<Vec<_>>(), [50], "{kind:?}");
        assert_eq!(conn.count(&Selection { table: "p".into(), ..Default::default() }).unwrap(), 0, "{kind:?}: nothing stays");
    });
}
