//! The connector conformance suite (tests/conformance.rs) for the OData v4
//! connector: every case of the `Connection` trait against a real SAP CAP
//! server, started per test by the testkit on a SQLite file of its own.
//! Fixtures go straight into CAP's file (`server.exec`, tables
//! `<namespace>_<Entity>`) where the case is not about writing, and what the
//! connector wrote is read back from that file (`server.texts`) as well as
//! through the connector.

use dualsync_connectors::{
    CaptureSpec, Change, ChangeKind, Connection, ErrorKind, FetchRequest, KeyRange, ScanRequest, Selection, WriteBatch, WriteOp,
};
use dualsync_model::config::odata::{Dialect, ODataApp, ODataAuth};
use dualsync_model::config::DatabaseUrl;
use dualsync_model::{Filter, Row, TypeClass, Value};
use dualsync_testkit::odata::{ODataServer, Options};
use std::time::Duration;

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

/// A SQL string literal for fixtures written to CAP's file.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The app as a config would give it: small pages (3 rows) and changesets
/// (2 ops), so that paging and changeset splitting are exercised.
fn app(server: &ODataServer) -> ODataApp {
    ODataApp {
        url: server.url(),
        auth: ODataAuth::None,
        dialect: Dialect::Standard,
        page_size: 3,
        changeset_size: 2,
        timeout_seconds: 30,
        max_requests: 4,
        changed: Some("modifiedAt".into()),
        change_window_seconds: 0,
        delete_scan_seconds: 300,
        sort_run_rows: 100_000,
    }
}

fn connect(server: &ODataServer) -> Box<dyn Connection> {
    let connector = dualsync_connectors::open(&DatabaseUrl::OData(Box::new(app(server))), None).unwrap();
    connector.connect().unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
}

/// A CAP server for `model` and a connection to it, or None (skip) without the npm fixture.
fn serve(model: &str) -> Option<(ODataServer, Box<dyn Connection>)> {
    let server = ODataServer::start(model, Options::default())?;
    let conn = connect(&server);
    Some((server, conn))
}

fn all(table: &str) -> Selection {
    Selection { table: table.into(), ..Default::default() }
}

/// Every batch a scan hands over (each within `batch_size`).
fn scan_batches(conn: &mut dyn Connection, request: &ScanRequest) -> Vec<Vec<Row>> {
    let mut out = Vec::new();
    conn.scan(request, &mut |rows| {
        assert!(!rows.is_empty() && rows.len() <= request.batch_size, "a batch of {} rows (batch_size {})", rows.len(), request.batch_size);
        out.push(rows);
        true
    })
    .unwrap();
    out
}

fn scan_all(conn: &mut dyn Connection, table: &str, columns: &[&str], order: &[&str], batch: usize) -> Vec<Row> {
    let request = ScanRequest {
        selection: all(table),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        order_by: order.iter().map(|c| c.to_string()).collect(),
        batch_size: batch,
    };
    scan_batches(conn, &request).into_iter().flatten().collect()
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

fn sorted(mut values: Vec<Value>) -> Vec<Value> {
    values.sort_by(|a, b| a.key_cmp(b));
    values
}

fn first(rows: Vec<Row>) -> Vec<Value> {
    rows.into_iter().map(|mut r| r.remove(0)).collect()
}

/// Keys whose byte order is not their case-insensitive order ("B" < "a"), with
/// spaces, digits, punctuation and characters beyond ASCII.
const KEYS: [&str; 15] = ["b", "C", "a", "B", "é", "Z", " a", "10", "9", "a b", "ab", "Ω", "😀", "_x", "~y"];

#[test]
fn describe_reports_keys_types_nullability_and_declared_types() {
    let model = "namespace t;
entity Item { key k: String(100); name: String(100) not null; note: LargeString; qty: Integer; big: Integer64;
              price: Decimal(5,2); ok: Boolean; born: Date; seen: Timestamp; data: Binary(100); blob: LargeBinary; }
entity Line { key co: String(10); key k: String(100); key n: Integer; v: String(20); }";
    let Some((server, mut conn)) = serve(model) else { return };
    let schema = conn.describe("Item").unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["k", "name", "note", "qty", "big", "price", "ok", "born", "seen", "data", "blob"]);
    assert_eq!(schema.primary_key, ["k"]);
    let column = |c: &str| schema.column(c).unwrap_or_else(|| panic!("no column {c}"));
    for (c, class) in [
        ("k", TypeClass::Text),
        ("name", TypeClass::Text),
        ("note", TypeClass::Text),
        ("qty", TypeClass::Integer),
        ("big", TypeClass::Integer),
        ("price", TypeClass::Decimal),
        ("ok", TypeClass::Bool),
        ("born", TypeClass::Date),
        ("seen", TypeClass::Timestamp),
        ("data", TypeClass::Blob),
        ("blob", TypeClass::Blob),
    ] {
        assert_eq!(column(c).class, class, "{c}: {:?}", column(c));
    }
    for (c, declared) in [
        ("k", "Edm.String(100)"),
        ("name", "Edm.String(100)"),
        ("note", "Edm.String"),
        ("qty", "Edm.Int32"),
        ("big", "Edm.Int64"),
        ("price", "Edm.Decimal(5,2)"),
        ("ok", "Edm.Boolean"),
        ("born", "Edm.Date"),
    ] {
        assert_eq!(column(c).declared_type, declared, "{c}");
    }
    assert!(column("seen").declared_type.starts_with("Edm.DateTimeOffset"), "{:?}", column("seen"));
    assert!(column("data").declared_type.starts_with("Edm.Binary"), "{:?}", column("data"));
    // Keys and `not null` elements are not nullable; the rest are.
    assert!(!column("k").nullable && !column("name").nullable);
    for c in ["note", "qty", "big", "price", "ok", "born", "seen", "data", "blob"] {
        assert!(column(c).nullable, "{c}");
    }

    let line = conn.describe("Line").unwrap();
    assert_eq!(line.primary_key, ["co", "k", "n"], "a composite key in its declared order");
    assert_eq!(line.column("n").unwrap().class, TypeClass::Integer);
    assert!(["co", "k", "n"].iter().all(|c| !line.column(c).unwrap().nullable));
    assert!(line.column("v").unwrap().nullable);

    // A missing entity set is a schema error naming it; a wrong case is pointed to the right one.
    let missing = conn.describe("Nope").unwrap_err();
    assert_eq!(missing.kind, ErrorKind::Schema, "{missing}");
    assert!(missing.message.contains("\"Nope\"") && missing.message.contains("Item"), "{missing}");
    let wrong_case = conn.describe("item").unwrap_err();
    assert_eq!(wrong_case.kind, ErrorKind::Schema, "{wrong_case}");
    assert!(wrong_case.message.contains("\"item\"") && wrong_case.message.contains("did you mean Item?"), "{wrong_case}");
}

#[test]
fn scans_stream_in_binary_key_order_in_batches() {
    let Some((server, mut conn)) = serve("namespace t; entity Item { key k: String(100); co: String(10); qty: Integer; }") else {
        return;
    };
    let values: Vec<String> =
        KEYS.iter().enumerate().map(|(i, k)| format!("({}, '{}', {i})", q(k), if i % 2 == 0 { "C1" } else { "C2" })).collect();
    server.exec(&format!("INSERT INTO t_Item (k, co, qty) VALUES {}", values.join(", ")));

    // Pages of 3 rows, batches of 2: neither aligns with the other.
    let request = ScanRequest { selection: all("Item"), columns: vec!["k".into()], order_by: vec!["k".into()], batch_size: 2 };
    let batches = scan_batches(conn.as_mut(), &request);
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 2, 2, 2, 2, 2, 1], "full batches but the last");
    let scanned = first(batches.into_iter().flatten().collect());
    let expected = sorted(KEYS.iter().map(|k| t(k)).collect());
    assert_eq!(scanned, expected, "the service sorts keys by bytes");
    let at = |k: &str| scanned.iter().position(|v| *v == t(k)).unwrap();
    assert!(at("B") < at("a") && at("Z") < at("a") && at("~y") < at("é"), "{scanned:?}");

    // A selection: one company, with a filter.
    let selection = Selection {
        table: "Item".into(),
        filter: Some(Filter::parse("qty >= 2").unwrap()),
        equals: vec![("co".into(), t("C1"))],
        range: None,
    };
    let request =
        ScanRequest { selection: selection.clone(), columns: vec!["qty".into(), "k".into()], order_by: vec!["k".into()], batch_size: 2 };
    let got: Vec<Row> = scan_batches(conn.as_mut(), &request).into_iter().flatten().collect();
    let mut want: Vec<Row> =
        KEYS.iter().enumerate().filter(|(i, _)| i % 2 == 0 && *i >= 2).map(|(i, k)| vec![Value::Int(i as i64), t(k)]).collect();
    want.sort_by(|a, b| a[1].key_cmp(&b[1]));
    assert_eq!(got, want, "even qty from 2 to 14, in key order");
    assert_eq!(conn.count(&selection).unwrap(), 7);
    assert_eq!(conn.count(&all("Item")).unwrap(), 15);

    // Early stop: the scan ends when the callback says so (with more pages to read).
    for request in [request.clone(), ScanRequest { selection: all("Item"), ..request.clone() }] {
        let mut calls = 0;
        conn.scan(&request, &mut |rows| {
            calls += 1;
            assert_eq!(rows.len(), 2);
            false
        })
        .unwrap();
        assert_eq!(calls, 1);
    }
    // The connection reads on after an early stop.
    assert_eq!(scan_all(conn.as_mut(), "Item", &["k"], &["k"], 100).len(), 15);
}

#[test]
fn a_batch_commits_every_row_but_the_refused_ones() {
    let model = "namespace t; entity Item { key k: String(100); name: String(100); price: Decimal(5,2); qty: Integer; }";
    let Some((server, mut conn)) = serve(model) else { return };
    let columns = ["k", "name", "price", "qty"];
    let rows: Vec<Row> = (0..12)
        .map(|i| {
            let name = match i {
                7 => t(&"😀".repeat(51)),  // 102 UTF-16 units in a String(100)
                11 => t(&"😀".repeat(50)), // exactly 100: fits
                _ => t(&format!("n{i}")),
            };
            let price = match i {
                3 => Value::Decimal("1.005".into()),   // more decimals than Decimal(5,2) takes
                10 => Value::Decimal("1234.5".into()), // more integer digits than Decimal(5,2) takes
                _ => Value::Decimal(format!("{i}.25")),
            };
            vec![t(&format!("k{i:03}")), name, price, Value::Int(i)]
        })
        .collect();
    let outcome = conn.write(&insert("Item", &columns, rows)).unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let failed: Vec<(usize, Option<&str>)> = outcome.failures.iter().map(|f| (f.index, f.column.as_deref())).collect();
    assert_eq!(failed, [(3, Some("price")), (7, Some("name")), (10, Some("price"))], "{:#?}", outcome.failures);
    assert!(outcome.failures.iter().all(|f| !f.message.is_empty()), "{:#?}", outcome.failures);
    assert!(outcome.failures[1].message.contains("MaxLength of 100"), "{}", outcome.failures[1].message);
    let keys = |server: &ODataServer| server.texts("SELECT k FROM t_Item ORDER BY k").into_iter().flatten().collect::<Vec<_>>();
    let landed: Vec<String> = (0..12).filter(|i| ![3, 7, 10].contains(i)).map(|i| format!("k{i:03}")).collect();
    assert_eq!(keys(&server), landed, "every other row committed (its changeset partner too)");
    assert_eq!(server.texts("SELECT price FROM t_Item WHERE k = 'k001'"), [Some("1.25".to_string())]);
    assert_eq!(server.texts("SELECT name FROM t_Item WHERE k = 'k011'"), [Some("😀".repeat(50))]);

    // Updates set only their columns; deletes remove; a duplicate key, a bad
    // value and an update of a row that is not there are refused alone.
    let op_batch = |ops: Vec<WriteOp>| WriteBatch {
        table: "Item".into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        key_columns: vec!["k".into()],
        scope: vec![],
        ops,
    };
    let batch = op_batch(vec![
        WriteOp::Insert(vec![t("k000"), t("dup"), Value::Null, Value::Null]),
        WriteOp::Update { key: vec![t("k001")], set: vec![("name".into(), t("renamed"))] },
        WriteOp::Update { key: vec![t("k002")], set: vec![("price".into(), Value::Null)] },
        WriteOp::Delete { key: vec![t("k004")] },
        WriteOp::Delete { key: vec![t("never there")] },
        WriteOp::Update { key: vec![t("ghost")], set: vec![("name".into(), t("x"))] },
        WriteOp::Update { key: vec![t("k005")], set: vec![("price".into(), Value::Decimal("1.005".into()))] },
        WriteOp::Update { key: vec![t("k006")], set: vec![("qty".into(), Value::Int(-6)), ("name".into(), t(""))] },
    ]);
    let outcome = conn.write(&batch).unwrap();
    let failed: Vec<usize> = outcome.failures.iter().map(|f| f.index).collect();
    assert_eq!(failed, [0, 5, 6], "{:#?}", outcome.failures);
    assert_eq!(outcome.failures[2].column.as_deref(), Some("price"), "{:#?}", outcome.failures);
    let one = |sql: &str| server.texts(sql).into_iter().next().flatten();
    assert_eq!(one("SELECT name FROM t_Item WHERE k = 'k000'").as_deref(), Some("n0"), "the duplicate changed nothing");
    assert_eq!(one("SELECT name || '|' || price || '|' || qty FROM t_Item WHERE k = 'k001'").as_deref(), Some("renamed|1.25|1"));
    assert_eq!(server.texts("SELECT price FROM t_Item WHERE k = 'k002'"), [None]);
    assert_eq!(one("SELECT name FROM t_Item WHERE k = 'k002'").as_deref(), Some("n2"));
    assert_eq!(one("SELECT price FROM t_Item WHERE k = 'k005'").as_deref(), Some("5.25"));
    assert_eq!(one("SELECT name || '|' || qty FROM t_Item WHERE k = 'k006'").as_deref(), Some("|-6"));
    assert_eq!(server.texts("SELECT count(*) FROM t_Item WHERE k IN ('k004', 'ghost', 'never there')"), [Some("0".to_string())]);

    // A delete of a row already gone is no failure; an update-only batch
    // (addressed by key, no lookup) refuses a missing row and creates nothing.
    let outcome = conn.write(&op_batch(vec![WriteOp::Delete { key: vec![t("k004")] }])).unwrap();
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    let outcome = conn
        .write(&op_batch(vec![
            WriteOp::Update { key: vec![t("k008")], set: vec![("qty".into(), Value::Int(80))] },
            WriteOp::Update { key: vec![t("ghost")], set: vec![("name".into(), t("x"))] },
        ]))
        .unwrap();
    assert_eq!(outcome.failures.iter().map(|f| f.index).collect::<Vec<_>>(), [1], "{:#?}", outcome.failures);
    assert_eq!(one("SELECT qty FROM t_Item WHERE k = 'k008'").as_deref(), Some("80"));
    assert_eq!(server.texts("SELECT count(*) FROM t_Item WHERE k = 'ghost'"), [Some("0".to_string())]);

    // Keys that URLs and key segments must escape: inserted, updated and deleted by key.
    let odd = ["O'Brien", "a/b", "x&y=z", "50%", "a+b", "#1", "?q", "sp ace", "é😀"];
    let rows: Vec<Row> = odd.iter().map(|k| vec![t(k), t("new"), Value::Null, Value::Null]).collect();
    assert!(conn.write(&insert("Item", &columns, rows)).unwrap().failures.is_empty());
    let updates: Vec<WriteOp> =
        odd.iter().map(|k| WriteOp::Update { key: vec![t(k)], set: vec![("name".into(), t(&format!("u {k}")))] }).collect();
    let outcome = conn.write(&op_batch(updates)).unwrap();
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    for k in odd {
        assert_eq!(one(&format!("SELECT name FROM t_Item WHERE k = {}", q(k))), Some(format!("u {k}")), "{k}");
    }
    let deletes: Vec<WriteOp> = odd.iter().map(|k| WriteOp::Delete { key: vec![t(k)] }).collect();
    let outcome = conn.write(&op_batch(deletes)).unwrap();
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    let landed: Vec<String> = (0..12).filter(|i| ![3, 4, 7, 10].contains(i)).map(|i| format!("k{i:03}")).collect();
    assert_eq!(keys(&server), landed);
}

/// Text that breaks naive tools (conformance.rs's, as SQLite stores it).
fn hard_texts() -> Vec<String> {
    vec![
        "He said \"hello\", then left".into(),
        "back\\slash \\N \\t and tab\there".into(),
        "CR\rLF\nCRLF\r\n".into(),
        "emoji 🚀👩‍👩‍👧, café, ñ".into(),
        "עברית العربية".into(),
        "'; DROP TABLE h; --".into(),
        "  spaced  ".into(),
        String::new(),
        format!("long {}", "xy\"\n,\t".repeat(3000)),
        "nul\u{0}inside".into(),
        "url-ish ?a=1&b=2#frag %20 + / \\u0041".into(),
    ]
}

#[test]
fn hard_text_and_null_round_trip_byte_for_byte() {
    let Some((server, mut conn)) = serve("namespace t; entity H { key k: String(100); v: LargeString; }") else { return };
    let mut rows: Vec<Row> = hard_texts().into_iter().enumerate().map(|(i, s)| vec![t(&format!("k{i:02}")), t(&s)]).collect();
    rows.push(vec![t("null"), Value::Null]);
    let outcome = conn.write(&insert("H", &["k", "v"], rows.clone())).unwrap();
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    rows.sort_by(|a, b| a[0].key_cmp(&b[0]));
    assert_eq!(scan_all(conn.as_mut(), "H", &["k", "v"], &["k"], 4), rows, "read back through the service");
    let stored = server.texts("SELECT v FROM t_H ORDER BY k");
    let written: Vec<Option<String>> = rows.iter().map(|r| if let Value::Text(s) = &r[1] { Some(s.clone()) } else { None }).collect();
    assert_eq!(stored, written, "stored in CAP's file: '' is not NULL");
}

#[test]
fn every_type_round_trips() {
    let model = "namespace t; entity Ty { key k: String(20); i: Integer; big: Integer64; r: Double; d: Decimal(15,2); b: Boolean;
                                        dt: Date; ts: Timestamp; x: Binary(1000); }";
    let Some((server, mut conn)) = serve(model) else { return };
    let columns = ["k", "i", "big", "r", "d", "b", "dt", "ts", "x"];
    let full = vec![
        t("full"),
        Value::Int(-2_147_483_648),
        Value::Int(9_007_199_254_740_993), // 2^53 + 1: a JavaScript number would drop the 1
        Value::Float(0.1),
        Value::Decimal("123456789012.25".into()), // exact in the REAL CAP stores it as
        Value::Bool(true),
        Value::Date("2026-02-28".into()),
        Value::Timestamp("2026-02-28T13:14:15.5Z".into()),
        Value::Bytes((0..=255).collect()),
    ];
    let other = vec![
        t("other"),
        Value::Int(2_147_483_647),
        Value::Int(-9_007_199_254_740_993),
        Value::Float(-2.5),
        Value::Decimal("-0.5".into()),
        Value::Bool(false),
        Value::Date("1999-12-31".into()),
        Value::Timestamp("2000-01-01 00:00:00".into()), // a naive timestamp is UTC
        Value::Bytes(vec![0]),
    ];
    let nulls: Row = std::iter::once(t("nulls")).chain(std::iter::repeat_n(Value::Null, 8)).collect();
    let outcome = conn.write(&insert("Ty", &columns, vec![full.clone(), other.clone(), nulls.clone()])).unwrap();
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    // What CAP's file holds: every digit of the Int64.
    assert_eq!(
        server.texts("SELECT big FROM t_Ty ORDER BY k"),
        [Some("9007199254740993".to_string()), None, Some("-9007199254740993".to_string())]
    );

    let back = scan_all(conn.as_mut(), "Ty", &columns, &["k"], 10);
    assert_eq!(back.len(), 3);
    for (got, want) in back.iter().zip([&full, &nulls, &other]) {
        for (c, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(g.same_as(w), "column {}: wrote {w:?}, read {g:?}", columns[c]);
            if w.is_null() {
                continue;
            }
            // Each value comes back as its type, not as text.
            let kind_ok = match columns[c] {
                "i" | "big" => matches!(g, Value::Int(_)),
                "r" => matches!(g, Value::Float(_)),
                "d" => matches!(g, Value::Decimal(_)),
                "b" => matches!(g, Value::Bool(_)),
                "dt" => matches!(g, Value::Date(_)),
                "ts" => matches!(g, Value::Timestamp(s) if s.ends_with('Z')),
                "x" => matches!(g, Value::Bytes(_)),
                _ => matches!(g, Value::Text(_)),
            };
            assert!(kind_ok, "column {}: read {g:?} for {w:?}", columns[c]);
        }
    }
    assert_eq!(back[0][2], Value::Int(9_007_199_254_740_993));
    assert_eq!(back[2][2], Value::Int(-9_007_199_254_740_993));
}

/// A chunk of a big partition: the keys after one bound and up to the next,
/// in the order the scan sorts them (bytes for text), on one or several columns.
#[test]
fn a_key_range_selects_the_keys_between_its_bounds_in_sort_order() {
    let model = "namespace t; entity R { key co: String(10); key k: String(100); key n: Integer; }
                 entity One { key k: String(100); v: Integer; }";
    let Some((server, mut conn)) = serve(model) else { return };
    let values: Vec<String> = KEYS.iter().flat_map(|k| (1..=3).map(move |n| format!("('X', {}, {n})", q(k)))).collect();
    server.exec(&format!("INSERT INTO t_R (co, k, n) VALUES {}, ('Y', 'a', 1)", values.join(", ")));
    let values: Vec<String> = KEYS.iter().enumerate().map(|(i, k)| format!("({}, {i})", q(k))).collect();
    server.exec(&format!("INSERT INTO t_One (k, v) VALUES {}", values.join(", ")));

    // Composite: (k, n) within company X.
    let mut keys: Vec<Vec<Value>> = KEYS.iter().flat_map(|k| (1..=3).map(|n| vec![t(k), Value::Int(n)])).collect();
    keys.sort_by(|a, b| a[0].key_cmp(&b[0]).then(a[1].key_cmp(&b[1])));
    let scan = |conn: &mut dyn Connection, after: Option<Vec<Value>>, upto: Option<Vec<Value>>| {
        let columns = vec!["k".to_string(), "n".to_string()];
        let request = ScanRequest {
            selection: Selection {
                table: "R".into(),
                filter: None,
                equals: vec![("co".into(), t("X"))],
                range: Some(KeyRange { columns: columns.clone(), after, upto }),
            },
            columns: columns.clone(),
            order_by: columns,
            batch_size: 5,
        };
        scan_batches(conn, &request).into_iter().flatten().collect::<Vec<Row>>()
    };
    // Cut after every 7th key: the chunks hold every key once, in order.
    let bounds: Vec<Vec<Value>> = keys.iter().skip(6).step_by(7).cloned().collect();
    let mut chunks = Vec::new();
    for i in 0..=bounds.len() {
        let after = i.checked_sub(1).map(|j| bounds[j].clone());
        let chunk = scan(conn.as_mut(), after, bounds.get(i).cloned());
        assert!(chunk.len() <= 7, "chunk {i}: {chunk:?}");
        chunks.extend(chunk);
    }
    assert_eq!(chunks, keys, "the chunks put together are the keys in order");
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
        ]
    );
    // Bounds of one column only: "B" < "a" in byte order.
    let upper = scan(conn.as_mut(), Some(vec![t("B"), Value::Int(3)]), Some(vec![t("a"), Value::Int(1)]));
    let want: Vec<Row> = keys
        .iter()
        .filter(|k| k[0].key_cmp(&t("B")).is_gt() && k[0].key_cmp(&t("a")).is_lt())
        .cloned()
        .chain([vec![t("a"), Value::Int(1)]])
        .collect();
    assert_eq!(upper, want);

    // Single column: the entity key alone, open at either end, bounds that are not keys.
    let one = |conn: &mut dyn Connection, after: Option<&str>, upto: Option<&str>| {
        let request = ScanRequest {
            selection: Selection {
                table: "One".into(),
                range: Some(KeyRange { columns: vec!["k".into()], after: after.map(|a| vec![t(a)]), upto: upto.map(|u| vec![t(u)]) }),
                ..Default::default()
            },
            columns: vec!["k".into()],
            order_by: vec!["k".into()],
            batch_size: 2,
        };
        first(scan_batches(conn, &request).into_iter().flatten().collect())
    };
    let sorted_keys = sorted(KEYS.iter().map(|k| t(k)).collect());
    let within = |after: Option<&str>, upto: Option<&str>| -> Vec<Value> {
        sorted_keys
            .iter()
            .filter(|k| after.is_none_or(|a| k.key_cmp(&t(a)).is_gt()) && upto.is_none_or(|u| k.key_cmp(&t(u)).is_le()))
            .cloned()
            .collect()
    };
    for (after, upto) in [
        (None, Some("B")),
        (Some("B"), Some("a")),
        (Some("a"), Some("a c")), // bounds that are not keys: "a b" alone is between
        (Some("a c"), None),
        (Some("Z"), Some("é")),
        (Some("~y"), Some("😀")),
        (Some("😀"), None),
        (None, None),
    ] {
        let got = one(conn.as_mut(), after, upto);
        assert_eq!(got, within(after, upto), "after {after:?} upto {upto:?}");
    }
    assert_eq!(one(conn.as_mut(), Some("a"), Some("a c")), [t("a b")]);
    assert_eq!(one(conn.as_mut(), Some("😀"), None), Vec::<Value>::new());
}

#[test]
fn fetch_count_and_distinct_find_rows_by_keys_of_one_or_several_columns() {
    let model = "namespace t; entity F { key co: String(10); key k: String(100); n: Integer; grp: String(10); }";
    let Some((server, mut conn)) = serve(model) else { return };
    // 50 rows in companies A and B; the first 12 (a multiple of the page size) without a group.
    let mut values: Vec<String> = (0..50)
        .map(|i| {
            let grp = if i < 12 { "NULL".to_string() } else { format!("'g{}'", i % 3) };
            format!("('{}', 'k{i}', {i}, {grp})", if i < 25 { "A" } else { "B" })
        })
        .collect();
    let odd = ["O'Brien", "a/b", "x&y=z", "50%", "a+b", "#1", "?q", "sp ace", "é😀", "it''s", "(k)", "a,b", "$x", "k eq 'k1'"];
    values.extend(odd.iter().enumerate().map(|(j, k)| format!("('S', {}, {}, 'gS')", q(k), 100 + j)));
    server.exec(&format!("INSERT INTO t_F (co, k, n, grp) VALUES {}", values.join(", ")));

    let request = FetchRequest {
        selection: Selection { table: "F".into(), filter: None, equals: vec![("co".into(), t("B"))], range: None },
        columns: vec!["n".into()],
        match_columns: vec!["k".into()],
        keys: vec![vec![t("k3")], vec![t("k30")], vec![t("k31")], vec![t("missing")]],
    };
    let got = sorted(first(conn.fetch(&request).unwrap()));
    assert_eq!(got, [Value::Int(30), Value::Int(31)], "k3 is in company A");
    let two = FetchRequest {
        selection: all("F"),
        columns: vec!["n".into(), "grp".into()],
        match_columns: vec!["co".into(), "k".into()],
        keys: vec![vec![t("A"), t("k3")], vec![t("B"), t("k3")], vec![t("A"), t("k20")]],
    };
    let mut rows = conn.fetch(&two).unwrap();
    rows.sort_by(|a, b| a[0].key_cmp(&b[0]));
    assert_eq!(rows, vec![vec![Value::Int(3), Value::Null], vec![Value::Int(20), t("g2")]]);

    // Keys with quotes, slashes, ampersands, percents, pluses, hashes: each found, and only it.
    let mut keys: Vec<Vec<Value>> = odd.iter().map(|k| vec![t(k)]).collect();
    keys.extend([vec![t("O'Brie")], vec![t("O''Brien")], vec![t("50")], vec![t("a b")]]);
    let request = FetchRequest {
        selection: Selection { table: "F".into(), equals: vec![("co".into(), t("S"))], ..Default::default() },
        columns: vec!["k".into(), "n".into()],
        match_columns: vec!["k".into()],
        keys,
    };
    let mut got = conn.fetch(&request).unwrap();
    got.sort_by(|a, b| a[1].key_cmp(&b[1]));
    let want: Vec<Row> = odd.iter().enumerate().map(|(j, k)| vec![t(k), Value::Int(100 + j as i64)]).collect();
    assert_eq!(got, want);
    for (j, k) in odd.iter().enumerate() {
        let one = FetchRequest {
            keys: vec![vec![t("S"), t(k)]],
            match_columns: vec!["co".into(), "k".into()],
            selection: all("F"),
            ..request.clone()
        };
        assert_eq!(conn.fetch(&one).unwrap(), vec![vec![t(k), Value::Int(100 + j as i64)]], "{k}");
    }
    // Many keys: more than one URL holds.
    let many = FetchRequest {
        selection: all("F"),
        columns: vec!["n".into()],
        match_columns: vec!["co".into(), "k".into()],
        keys: (0..1200).map(|i| vec![t(if i % 2 == 0 { "A" } else { "B" }), t(&format!("k{i}"))]).collect(),
    };
    let got = sorted(first(conn.fetch(&many).unwrap()));
    let want: Vec<Value> = (0..50).filter(|i| (*i < 25) == (i % 2 == 0)).map(Value::Int).collect();
    assert_eq!(got, want);

    // Counts, of a selection too.
    assert_eq!(conn.count(&all("F")).unwrap(), 50 + odd.len() as u64);
    assert_eq!(conn.count(&Selection { table: "F".into(), equals: vec![("co".into(), t("A"))], ..Default::default() }).unwrap(), 25);
    let with = |filter: &str| Selection { table: "F".into(), filter: Some(Filter::parse(filter).unwrap()), ..Default::default() };
    assert_eq!(conn.count(&with("n >= 40 AND n < 100")).unwrap(), 10);
    assert_eq!(conn.count(&with("grp IS NULL")).unwrap(), 12);
    assert_eq!(conn.count(&Selection { table: "F".into(), equals: vec![("grp".into(), Value::Null)], ..Default::default() }).unwrap(), 12);

    // Distinct values in key order, NULL first where present.
    assert_eq!(conn.distinct(&all("F"), "co").unwrap(), [t("A"), t("B"), t("S")]);
    let b = Selection { table: "F".into(), equals: vec![("co".into(), t("B"))], ..Default::default() };
    assert_eq!(conn.distinct(&b, "grp").unwrap(), [t("g0"), t("g1"), t("g2")]);
    let k_of_s = conn.distinct(&Selection { table: "F".into(), equals: vec![("co".into(), t("S"))], ..Default::default() }, "k").unwrap();
    assert_eq!(k_of_s, sorted(odd.iter().map(|k| t(k)).collect()));
    // NULL among the values (fewer NULL rows than a page: see the next test for more).
    let a =
        Selection { table: "F".into(), filter: Some(Filter::parse("n >= 10").unwrap()), equals: vec![("co".into(), t("A"))], range: None };
    assert_eq!(conn.distinct(&a, "grp").unwrap(), [Value::Null, t("g0"), t("g1"), t("g2")]);
}

/// Reading in the order of a column that holds NULLs, when a page ends on a
/// NULL: the next page's condition must reach past the NULLs to the values.
#[test]
fn reads_in_the_order_of_a_column_with_nulls_page_past_the_nulls() {
    let model = "namespace t; entity F { key k: String(10); grp: String(10); }";
    let Some((server, mut conn)) = serve(model) else { return };
    // 6 rows without a group (two pages of 3), then 6 with one.
    let values: Vec<String> =
        (0..12).map(|i| format!("('k{i:02}', {})", if i < 6 { "NULL".to_string() } else { format!("'g{}'", i % 3) })).collect();
    server.exec(&format!("INSERT INTO t_F (k, grp) VALUES {}", values.join(", ")));
    assert_eq!(conn.distinct(&all("F"), "grp").unwrap(), [Value::Null, t("g0"), t("g1"), t("g2")]);
    let rows = scan_all(conn.as_mut(), "F", &["grp", "k"], &["grp", "k"], 5);
    let mut want: Vec<Row> =
        (0..12).map(|i| vec![if i < 6 { Value::Null } else { t(&format!("g{}", i % 3)) }, t(&format!("k{i:02}"))]).collect();
    want.sort_by(|a, b| a[0].key_cmp(&b[0]).then(a[1].key_cmp(&b[1])));
    assert_eq!(rows, want, "every row, NULLs first");
}

/// A fetch of many keys goes as several requests, each URL short enough for
/// the server (Node's limit on a request's head is 16 KB): keys of emoji take
/// three times their UTF-8 length once percent-encoded.
#[test]
fn fetch_splits_many_keys_into_urls_the_server_takes_however_they_encode() {
    let Some((server, mut conn)) = serve("namespace t; entity F { key co: String(10); key k: String(100); n: Integer; }") else { return };
    let wide = |i: usize| format!("{}{i:03}", "😀".repeat(20));
    server.exec(&format!("INSERT INTO t_F (co, k, n) VALUES ('W', {}, 0), ('W', {}, 399)", q(&wide(0)), q(&wide(399))));
    let request = FetchRequest {
        selection: Selection { table: "F".into(), equals: vec![("co".into(), t("W"))], ..Default::default() },
        columns: vec!["n".into()],
        match_columns: vec!["k".into()],
        keys: (0..400).map(|i| vec![t(&wide(i))]).collect(),
    };
    let got = conn.fetch(&request).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sorted(first(got)), [Value::Int(0), Value::Int(399)]);
}

/// CAP declares a LargeBinary as Edm.Binary in $metadata but leaves it out of
/// every JSON answer, even when `$select`ed (it serves it as a stream only):
/// the connector must not take the missing property for a NULL, which a sync
/// would then write over the value on the other side.
#[test]
fn a_property_the_service_leaves_out_is_never_read_as_null() {
    let Some((server, mut conn)) = serve("namespace t; entity B { key k: String(10); lb: LargeBinary; }") else { return };
    server.exec("INSERT INTO t_B (k, lb) VALUES ('a', X'040506')");
    assert_eq!(server.texts("SELECT count(*) FROM t_B WHERE lb IS NOT NULL"), [Some("1".to_string())]);
    let request = ScanRequest { selection: all("B"), columns: vec!["k".into(), "lb".into()], order_by: vec!["k".into()], batch_size: 10 };
    let mut rows = Vec::new();
    let read = conn.scan(&request, &mut |batch| {
        rows.extend(batch);
        true
    });
    match read {
        Err(e) => assert!(e.message.contains("lb"), "an error naming the property: {e}"),
        Ok(()) => assert!(rows.iter().all(|r| !r[1].is_null()), "read as NULL: {rows:?}"),
    }
}

/// Waits until this machine's clock (the server's: same machine) is past the
/// second of `stamp`: the service's `Date` header, to the second, then says a
/// change stamped `stamp` is behind it, and a read returns it.
fn wait_past(stamp: &str) -> i64 {
    let micros = dualsync_model::value::epoch_micros(stamp).unwrap_or_else(|| panic!("{stamp:?} is no timestamp")).0;
    let target = (micros.div_euclid(1_000_000) + 1) * 1_000_000 + 50_000;
    loop {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        if now >= target {
            return micros;
        }
        std::thread::sleep(Duration::from_micros((target - now) as u64));
    }
}

#[test]
fn change_capture_polls_the_change_timestamp() {
    let model = "namespace t;
entity Item { key k: String(100); name: String(100); modifiedAt: Timestamp @cds.on.insert: $now @cds.on.update: $now; }
entity Plain { key k: String(100); }";
    let Some((server, mut conn)) = serve(model) else { return };
    server.exec(
        "INSERT INTO t_Item (k, name, modifiedAt) VALUES ('w', 'old', '2024-01-01T00:00:00.000Z'), ('x', 'old', '2024-01-01T00:00:00.000Z'),
         ('y', 'old', '2024-01-01T00:00:00.000Z'), ('z', 'old', '2024-01-01T00:00:00.000Z')",
    );
    // Nothing to install: a set without the change timestamp cannot be polled.
    assert_eq!(conn.capture_of("Item").unwrap(), Some(vec![]));
    assert_eq!(conn.capture_of("Plain").unwrap(), None);
    let refused = conn.install_capture(&CaptureSpec { table: "Plain".into(), columns: vec!["k".into()] }).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Schema, "{refused}");
    conn.install_capture(&CaptureSpec { table: "Item".into(), columns: vec!["k".into()] }).unwrap();
    let start = conn.change_cursor().unwrap();
    assert!(start.0.starts_with("odata:"), "{start:?}");
    assert!(conn.read_changes("Item", &start, 100).unwrap().0.is_empty(), "rows stamped before the cursor are no changes");
    assert_eq!(conn.pending_changes("Item", &start).unwrap(), 0);

    // A change through the service's API, stamped by CAP.
    let patch = |k: &str| {
        let reply = server
            .request("PATCH", &format!("/odata/v4/s/Item('{k}')"), &[("Content-Type", "application/json")], Some(r#"{"name":"new"}"#))
            .unwrap();
        assert!(reply.status < 300, "{}: {}", reply.status, reply.body);
    };
    patch("x");
    assert_eq!(conn.pending_changes("Item", &start).unwrap(), 1);
    let stamp = server.texts("SELECT modifiedAt FROM t_Item WHERE k = 'x'")[0].clone().unwrap();
    let micros = wait_past(&stamp);
    let (changes, after_x) = conn.read_changes("Item", &start, 100).unwrap();
    assert_eq!(changes, vec![Change { values: vec![t("x")], kind: ChangeKind::Update, at_micros: micros }]);
    // The cursor passed back returns nothing new: the change is not read twice.
    assert!(conn.read_changes("Item", &after_x, 100).unwrap().0.is_empty());
    assert_eq!(conn.pending_changes("Item", &after_x).unwrap(), 0);
    assert_eq!(conn.pending_changes("Item", &start).unwrap(), 1);

    // Three rows changed in one changeset (one stamp, or stamps close together): read two
    // at a time, in (timestamp, key) order, each exactly once.
    let body = r#"{"requests":[
        {"id":"1","atomicityGroup":"g","method":"PATCH","url":"Item('z')","headers":{"content-type":"application/json"},"body":{"name":"z2"}},
        {"id":"2","atomicityGroup":"g","method":"PATCH","url":"Item('y')","headers":{"content-type":"application/json"},"body":{"name":"y2"}},
        {"id":"3","atomicityGroup":"g","method":"PATCH","url":"Item('w')","headers":{"content-type":"application/json"},"body":{"name":"w2"}}]}"#;
    let reply = server.request("POST", "/odata/v4/s/$batch", &[("Content-Type", "application/json")], Some(body)).unwrap();
    assert!(reply.status == 200 && !reply.body.contains(r#""status":4"#), "{}", reply.body);
    assert_eq!(conn.pending_changes("Item", &after_x).unwrap(), 3);
    let latest = server.texts("SELECT max(modifiedAt) FROM t_Item")[0].clone().unwrap();
    wait_past(&latest);
    let (two, cursor) = conn.read_changes("Item", &after_x, 2).unwrap();
    assert_eq!(two.len(), 2, "{two:?}");
    assert_eq!(conn.pending_changes("Item", &cursor).unwrap(), 1);
    let (rest, end) = conn.read_changes("Item", &cursor, 100).unwrap();
    let got: Vec<Change> = two.into_iter().chain(rest).collect();
    let position = |c: &Change| (c.at_micros, c.values[0].display().into_owned());
    let mut ordered = got.clone();
    ordered.sort_by_key(position);
    assert_eq!(got, ordered, "in (timestamp, key) order");
    let mut keys: Vec<String> = got.iter().map(|c| c.values[0].display().into_owned()).collect();
    keys.sort();
    assert_eq!(keys, ["w", "y", "z"], "{got:?}");
    assert!(got.iter().all(|c| c.kind == ChangeKind::Update && c.at_micros > micros), "{got:?}");
    assert!(conn.read_changes("Item", &end, 100).unwrap().0.is_empty());
    assert_eq!(conn.pending_changes("Item", &end).unwrap(), 0);
}
