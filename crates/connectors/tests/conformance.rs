//! The connector conformance suite: every case runs against SQLite,
//! PostgreSQL and MariaDB alike, each on a fresh database.

use dualsync_connectors::{Connection, FetchRequest, KeyRange, ScanRequest, Selection, WriteBatch, WriteOp};
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
                range: None,
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

/// A chunk of a big partition: the keys after one bound and up to the next,
/// compared as the scan sorts them (bytes for text), on one or two columns.
#[test]
fn a_key_range_selects_the_keys_between_its_bounds_in_sort_order() {
    each_kind(|kind, db, _| {
        db.exec("CREATE TABLE r (co {key} NOT NULL, k {key} NOT NULL, n {int} NOT NULL, PRIMARY KEY (co, k, n))");
        let conn = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let mut conn = conn.connect().unwrap();
        let texts = ["b", "C", "a", "é", "Z", " a", "10", "9", "a b", "ab", "Ω", "😀"];
        let rows: Vec<Row> = texts.iter().flat_map(|k| (1..=3).map(|n| vec![t("X"), t(k), Value::Int(n)])).collect();
        let mut batch = insert("r", &["co", "k", "n"], rows.clone());
        batch.key_columns = vec!["co".into(), "k".into(), "n".into()];
        assert!(conn.write(&batch).unwrap().failures.is_empty());
        let mut keys: Vec<Vec<Value>> = rows.iter().map(|r| vec![r[1].clone(), r[2].clone()]).collect();
        keys.sort_by(|a, b| a[0].key_cmp(&b[0]).then(a[1].key_cmp(&b[1])));
        let scan = |conn: &mut dyn Connection, after: Option<Vec<Value>>, upto: Option<Vec<Value>>| {
            let columns = vec!["k".to_string(), "n".to_string()];
            let range = KeyRange { columns: columns.clone(), after, upto };
            let request = ScanRequest {
                selection: Selection { table: "r".into(), filter: None, equals: vec![("co".into(), t("X"))], range: Some(range) },
                columns: columns.clone(),
                order_by: columns,
                batch_size: 5,
            };
            let mut got = Vec::new();
            conn.scan(&request, &mut |rows| {
                got.extend(rows);
                true
            })
            .unwrap();
            got
        };
        // Cut after every 7th key: the chunks hold every key once, in order.
        let bounds: Vec<Vec<Value>> = keys.iter().skip(6).step_by(7).cloned().collect();
        let mut chunks = Vec::new();
        for i in 0..=bounds.len() {
            let after = i.checked_sub(1).map(|j| bounds[j].clone());
            chunks.extend(scan(conn.as_mut(), after, bounds.get(i).cloned()));
        }
        assert_eq!(chunks, keys, "{kind:?}: the chunks put together are the keys in order");
        // A bound between keys of one text (the second column decides).
        let middle = scan(conn.as_mut(), Some(vec![t("a"), Value::Int(2)]), Some(vec![t("ab"), Value::Int(1)]));
        assert_eq!(
            middle,
            vec![
                vec![t("a"), Value::Int(3)],
                vec![t("a b"), Value::Int(1)],
                vec![t("a b"), Value::Int(2)],
                vec![t("a b"), Value::Int(3)],
                vec![t("ab"), Value::Int(1)]
            ],
            "{kind:?}"
        );
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
            selection: Selection { table: "f".into(), filter: None, equals: vec![("co".into(), t("B"))], range: None },
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

/// Batches of inserts into PostgreSQL go as a binary COPY when every value
/// encodes, as text otherwise: both must store exactly the same thing.
#[test]
fn postgres_binary_copy_stores_what_the_text_copy_stores() {
    let Some(db) = TestDb::new(Kind::Postgres) else { return };
    let columns = ["k", "i2", "i4", "i8", "f8", "n", "nf", "tx", "vc", "ch", "by", "bo", "dt", "ts", "tz"];
    for table in ["by_binary", "by_text"] {
        db.exec(&format!(
            "CREATE TABLE {table} (k text PRIMARY KEY, i2 int2, i4 int4, i8 int8, f8 float8, n numeric(30,4), nf numeric,
                                    tx text, vc varchar(12), ch char(5), by bytea, bo boolean, dt date, ts timestamp, tz timestamptz)"
        ));
    }
    let row = |k: &str, values: Vec<Value>| std::iter::once(t(k)).chain(values).collect::<Vec<_>>();
    let d = |s: &str| Value::Decimal(s.into());
    let ts = |s: &str| Value::Timestamp(s.into());
    let rows = vec![
        row(
            "a",
            vec![
                Value::Int(-32768),
                Value::Int(2_147_483_647),
                Value::Int(i64::MIN),
                Value::Float(0.1),
                d("123456789012345.1234"),
                d("-0.00001234"),
                t("tab\there \\ \"q\" ✓ 🦀\r\nend"),
                t("ünïcødé"),
                t("ab"),
                Value::Bytes((0..=255).collect()),
                Value::Bool(true),
                Value::Date("0001-01-01".into()),
                ts("1999-12-31 23:59:59.999999"),
                ts("2026-01-01T10:00:00+05:30"),
            ],
        ),
        row(
            "b",
            vec![
                Value::Int(0),
                Value::Int(-1),
                Value::Int(i64::MAX),
                Value::Int(1 << 53),
                d(".5"),
                d("7."),
                Value::Int(42),
                Value::Float(-2.5),
                Value::Bool(false),
                Value::Bytes(vec![]),
                Value::Int(0),
                Value::Date("9999-12-31".into()),
                ts("0001-01-01T00:00:00"),
                ts("1970-01-01T00:00:00Z"),
            ],
        ),
        row(
            "c",
            vec![
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Float(-0.0),
                d("-0.00"),
                Value::Float(1e20),
                t(""),
                Value::Null,
                t("abcde"),
                Value::Null,
                Value::Int(1),
                Value::Date("2000-02-29".into()),
                ts("2026-02-28 13:14:15.5"),
                ts("2026-02-28 13:14:15"),
            ],
        ),
        row(
            "d",
            vec![
                Value::Int(7),
                Value::Int(7),
                Value::Int(7),
                Value::Int(-3),
                Value::Int(i64::MAX),
                d("00012.3400"),
                Value::Decimal("1.50".into()),
                Value::Date("2026-01-01".into()),
                t("x"),
                Value::Bytes(vec![0]),
                Value::Null,
                Value::Null,
                Value::Null,
                ts("2000-01-01 00:00:00.000001-08:00"),
            ],
        ),
    ];
    let conn = dualsync_connectors::open(&db.database_url(), None).unwrap();
    let mut conn = conn.connect().unwrap();
    let outcome = conn.write(&insert("by_binary", &columns, rows.clone())).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    // A value the binary encoder leaves to the server's parser (text into an
    // integer column) sends the whole batch as text.
    let mut text_rows = rows.clone();
    text_rows.push(row("z", std::iter::once(t("5")).chain(std::iter::repeat_n(Value::Null, 13)).collect()));
    let outcome = conn.write(&insert("by_text", &columns, text_rows)).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    let dump = |table: &str| db.texts(&format!("SELECT row_to_json(t)::text FROM {table} t WHERE k <> 'z' ORDER BY k"));
    let (binary, text) = (dump("by_binary"), dump("by_text"));
    assert_eq!(binary.len(), 4);
    for (b, t) in binary.iter().zip(&text) {
        assert_eq!(b, t, "the binary COPY stored a row differently from the text COPY");
    }
    // A value with no binary form after more than one 64 KB chunk was sent:
    // the abandoned binary COPY leaves nothing behind, and the text COPY lands every row.
    let many: Vec<Vec<Value>> = (0..3000)
        .map(|i| row(&format!("m{i:05}"), std::iter::once(Value::Int(i)).chain(rows[0][2..].iter().cloned()).collect()))
        .chain(std::iter::once(row("m99999", std::iter::once(t("7")).chain(std::iter::repeat_n(Value::Null, 13)).collect())))
        .collect();
    let outcome = conn.write(&insert("by_text", &columns, many)).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(db.texts("SELECT count(*)::text FROM by_text WHERE k LIKE 'm%'"), vec![Some("3001".to_string())]);
    assert_eq!(db.texts("SELECT i2::text FROM by_text WHERE k = 'm99999'"), vec![Some("7".to_string())]);
    // What the binary path refuses is what the text path refuses: a value out of the column's range.
    let too_big = row("e", std::iter::once(Value::Int(40_000)).chain(std::iter::repeat_n(Value::Null, 13)).collect());
    let outcome =
        conn.write(&insert("by_binary", &columns, vec![too_big, row("f", std::iter::repeat_n(Value::Null, 14).collect())])).unwrap();
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    assert_eq!(outcome.failures[0].index, 0);
    assert!(outcome.failures[0].message.contains("out of range"), "{:?}", outcome.failures);
    assert_eq!(db.texts("SELECT k FROM by_binary WHERE k IN ('e', 'f')"), vec![Some("f".to_string())]);
}

/// PostgreSQL numerics and timestamps are read in binary and spelled by
/// dualsync: exactly as the server's own text (numeric) and JSON (timestamps) spell them.
#[test]
fn postgres_binary_reads_spell_values_as_the_server_does() {
    let Some(db) = TestDb::new(Kind::Postgres) else { return };
    db.exec("CREATE TABLE sp (k int PRIMARY KEY, n numeric, n2 numeric(18,2), ts timestamp, tz timestamptz)");
    db.exec(
        "INSERT INTO sp VALUES
           (1, 0, 0, '2015-06-14 21:19:50.5', '2015-06-14 21:19:50.5+05:30'),
           (2, -0.00, -1.5, '0044-03-15 10:00:00 BC', '0044-03-15 10:00:00+00 BC'),
           (3, 'NaN', 12345678.9, 'infinity', '-infinity'),
           (4, 'Infinity', -0.01, '10000-01-01 00:00:00', '2000-01-01 00:00:00.000001+00'),
           (5, 1e30, 99.99, '1999-12-31 23:59:59.999999', '1969-12-31 23:59:59.12-08'),
           (6, 1.5e-20, NULL, NULL, NULL),
           (7, -123456.7890, 1, '0001-01-01 00:00:00', '2026-02-28 13:14:15+00'),
           (8, 10000.0001, 0.1, '2000-02-29 00:00:00.01', '2000-01-01 00:00:00+14')",
    );
    let conn = dualsync_connectors::open(&db.database_url(), None).unwrap();
    let mut conn = conn.connect().unwrap();
    let columns = ["k", "n", "n2", "ts", "tz"];
    let read = scan_all(conn.as_mut(), "sp", &columns, &["k"], 100);
    // dualsync's sessions run in UTC; so does this one.
    db.exec("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET TimeZone = ''UTC''', current_database()); END $$");
    let server = db.texts("SELECT concat_ws('|', k, n::text, n2::text, to_json(ts) #>> '{}', to_json(tz) #>> '{}') FROM sp ORDER BY k");
    assert_eq!(read.len(), 8);
    for (row, spelled) in read.iter().zip(&server) {
        let ours = row
            .iter()
            .filter_map(|v| match v {
                Value::Null => None,
                Value::Int(i) => Some(i.to_string()),
                Value::Decimal(s) | Value::Timestamp(s) => Some(s.clone()),
                other => panic!("unexpected {other:?}"),
            })
            .collect::<Vec<_>>()
            .join("|");
        assert_eq!(Some(ours), *spelled);
    }
}

/// Issue 12: once a later holder of the state store has raised an app's
/// fence, an earlier holder's write transactions land nothing.
#[test]
fn a_fenced_connection_writes_nothing() {
    use dualsync_connectors::{ErrorKind, Fence};
    each_kind(|kind, db, first| {
        db.exec("CREATE TABLE f (k {key} PRIMARY KEY, v {text})");
        let connector = dualsync_connectors::open(&db.database_url(), None).unwrap();
        let fence = |epoch| Fence { store: "store test".into(), epoch };
        first.set_fence(fence(1)).unwrap();
        let row = |k: &str| vec![t(k), t("v")];
        assert!(first.write(&insert("f", &["k", "v"], vec![row("a")])).unwrap().failures.is_empty(), "{kind:?}");
        // A later holder takes over and raises the fence.
        let mut later = connector.connect().unwrap();
        later.set_fence(fence(2)).unwrap();
        let fenced = first.write(&insert("f", &["k", "v"], vec![row("b")])).expect_err("the earlier holder is fenced");
        assert_eq!(fenced.kind, ErrorKind::Fenced, "{kind:?}: {fenced}");
        assert!(fenced.message.contains("epoch 2 is later than this process's 1"), "{kind:?}: {fenced}");
        // Nor can an earlier holder raise it back.
        let mut stale = connector.connect().unwrap();
        assert_eq!(stale.set_fence(fence(1)).expect_err("stale").kind, ErrorKind::Fenced, "{kind:?}");
        // Another state store (made anew) fences under a row of its own.
        let mut other_store = connector.connect().unwrap();
        other_store.set_fence(Fence { store: "store other".into(), epoch: 1 }).unwrap();
        assert!(later.write(&insert("f", &["k", "v"], vec![row("c")])).unwrap().failures.is_empty(), "{kind:?}");
        let keys = scan_all(later.as_mut(), "f", &["k"], &["k"], 10);
        assert_eq!(keys, vec![vec![t("a")], vec![t("c")]], "{kind:?}: nothing of the fenced write landed");
    });
}
