//! Every type between every pair of kinds of app (issue 10): decimals, booleans,
//! dates, timestamps, instants under non-UTC zones, blobs with every byte and
//! text with NUL, from a source into an empty target and back again.
//!
//! Values are read back with each database's own driver and compared as
//! values by this file's own rules (decimals by their digits, wall-clock
//! timestamps by their reading, instants as UTC instants), not by dualsync's.

use crate::util::{Run, Workspace};
use dualsync_testkit::{Kind, TestDb};
use std::collections::BTreeMap;

const COLUMNS: [&str; 8] = ["id", "amount", "flag", "born", "seen", "instant", "bin", "txt"];

/// Row ids of the fixture. `BIG` holds a decimal of 18 significant digits; `NUL` text with a NUL.
const BIG: i64 = 4;
const NUL: i64 = 5;

fn ddl(kind: Kind) -> &'static str {
    match kind {
        Kind::Sqlite => {
            "CREATE TABLE ty (id INTEGER PRIMARY KEY, amount NUMERIC(18,4), flag BOOLEAN, born DATE, seen TIMESTAMP,
                              instant TIMESTAMPTZ, bin BLOB, txt TEXT)"
        }
        Kind::Postgres => {
            "CREATE TABLE ty (id bigint PRIMARY KEY, amount numeric(18,4), flag boolean, born date, seen timestamp,
                              instant timestamptz, bin bytea, txt text)"
        }
        Kind::Mariadb => {
            "CREATE TABLE ty (id BIGINT PRIMARY KEY, amount DECIMAL(18,4), flag BOOLEAN, born DATE, seen DATETIME(6),
                              instant TIMESTAMP(6) NULL, bin LONGBLOB, txt TEXT)"
        }
    }
}

fn hex(bytes: impl IntoIterator<Item = u8>) -> String {
    bytes.into_iter().map(|b| format!("{b:02x}")).collect()
}

/// A blob literal in the kind's SQL.
fn blob(kind: Kind, bytes: impl IntoIterator<Item = u8>) -> String {
    match kind {
        Kind::Postgres => format!("'\\x{}'::bytea", hex(bytes)),
        _ => format!("X'{}'", hex(bytes)),
    }
}

/// Text with a NUL in the middle, in the kind's SQL (PostgreSQL cannot hold it).
fn nul_text(kind: Kind, before: &str, after: &str) -> String {
    match kind {
        Kind::Sqlite => format!("'{before}' || char(0) || '{after}'"),
        Kind::Mariadb => format!("'{before}\\0{after}'"),
        Kind::Postgres => unreachable!("PostgreSQL text cannot hold NUL"),
    }
}

fn holds_nul(kind: Kind) -> bool {
    kind != Kind::Postgres
}

fn boolean(kind: Kind, b: bool) -> &'static str {
    match (kind, b) {
        (Kind::Sqlite, true) => "1",
        (Kind::Sqlite, false) => "0",
        (_, true) => "TRUE",
        (_, false) => "FALSE",
    }
}

/// An instant in the kind's own spelling. SQLite: text with an offset or `Z`;
/// PostgreSQL: a literal with an offset; MariaDB: the session's wall clock
/// (the statements run with `time_zone = '+05:30'`).
fn instant(kind: Kind, kolkata: &str, sqlite: &str) -> String {
    match kind {
        Kind::Sqlite => format!("'{sqlite}'"),
        Kind::Postgres => format!("'{kolkata}+05:30'"),
        Kind::Mariadb => format!("'{kolkata}'"),
    }
}

fn session(kind: Kind) -> &'static str {
    match kind {
        Kind::Mariadb => "SET time_zone = '+05:30';\n",
        _ => "",
    }
}

/// The source rows: every type, NULLs, a long decimal and (where the kind holds it) NUL text.
fn fill_source(db: &TestDb) {
    let k = db.kind;
    let mut sql = session(k).to_string();
    sql += &format!(
        "INSERT INTO ty VALUES (1, -0.0001, {}, '2024-02-29', '2024-02-29 23:59:59.123456', {}, {}, 'plain é 🚀');\n",
        boolean(k, true),
        instant(k, "2024-01-01 10:00:00.123456", "2024-01-01T10:00:00.123456+05:30"),
        blob(k, 0..=255),
    );
    sql += &format!(
        "INSERT INTO ty VALUES (2, 0, {}, '1970-01-01', '2000-01-01 00:00:00', {}, {}, '');\n",
        boolean(k, false),
        instant(k, "2024-07-01 17:30:00", "2024-07-01T12:00:00Z"),
        blob(k, [0u8, 255, 0]),
    );
    sql += "INSERT INTO ty VALUES (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL);\n";
    sql += &format!(
        "INSERT INTO ty VALUES ({BIG}, 12345678901234.5678, {}, '2038-01-19', '2038-01-19 03:14:08', {}, {}, 'big');\n",
        boolean(k, true),
        instant(k, "2038-01-19 08:44:07.999999", "2038-01-19T03:14:07.999999+00:00"),
        blob(k, [7u8]),
    );
    if holds_nul(k) {
        sql += &format!(
            "INSERT INTO ty VALUES ({NUL}, 1, {}, '2024-12-31', '2024-12-31 12:00:00.5', {}, {}, {});\n",
            boolean(k, false),
            instant(k, "2025-01-01 05:29:59.5", "2024-12-31T18:59:59.5-05:00"),
            blob(k, [0u8]),
            nul_text(k, "nul", "inside")
        );
    }
    db.exec(&sql);
}

/// The target app edits every column of row 1 and empties row 2.
fn edit_target(db: &TestDb, nul_allowed: bool) {
    let k = db.kind;
    let txt = if nul_allowed { nul_text(k, "changed ✓", "again") } else { "'changed ✓'".to_string() };
    let sql = format!(
        "{}UPDATE ty SET amount = 98765.4321, flag = {}, born = '1999-12-31', seen = '2030-06-15 08:09:10.5', instant = {},
                        bin = {}, txt = {txt} WHERE id = 1;
         UPDATE ty SET amount = NULL, flag = NULL, born = NULL, seen = NULL, instant = NULL, bin = NULL, txt = NULL WHERE id = 2",
        session(k),
        boolean(k, false),
        instant(k, "2025-07-01 12:29:59.999999", "2025-07-01 12:29:59.999999+05:30"),
        blob(k, (0..=255).rev()),
    );
    db.exec(&sql);
}

/// A value as this file compares it.
#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Null,
    /// Normalized decimal digits: `-0.0001`, `0`, `12345678901234.5678`.
    Num(String),
    Bool(bool),
    Date(String),
    /// A timestamp without zone: microseconds since 1970 of its reading.
    Wall(i128),
    /// An instant: microseconds since 1970 UTC.
    Instant(i128),
    Bytes(Vec<u8>),
    Text(String),
}

fn num(s: &str) -> Cell {
    let s = s.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "not a plain decimal: {s:?}");
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let body = match (int.is_empty(), frac.is_empty()) {
        (true, true) => return Cell::Num("0".into()),
        (_, true) => int.to_string(),
        (true, false) => format!("0.{frac}"),
        (false, false) => format!("{int}.{frac}"),
    };
    Cell::Num(if negative { format!("-{body}") } else { body })
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.f][Z|±HH[:MM]]`: microseconds of the reading, and the offset in seconds if any.
fn parse_timestamp(s: &str) -> (i128, Option<i64>) {
    let bad = || panic!("not a timestamp: {s:?}");
    let n = |t: &str| t.parse::<i64>().unwrap_or_else(|_| bad());
    if s.len() < 19 || !matches!(&s[10..11], "T" | " ") {
        bad();
    }
    let (date, rest) = (&s[..10], &s[11..]);
    let (y, m, d) = (n(&date[..4]), n(&date[5..7]), n(&date[8..10]));
    let (h, mi, sec) = (n(&rest[..2]), n(&rest[3..5]), n(&rest[6..8]));
    let mut rest = &rest[8..];
    let mut micros = 0i128;
    if let Some(f) = rest.strip_prefix('.') {
        let len = f.bytes().take_while(u8::is_ascii_digit).count();
        assert!(len <= 6, "more than microseconds: {s:?}");
        micros = format!("{:0<6}", &f[..len]).parse().unwrap();
        rest = &f[len..];
    }
    let offset = match rest {
        "" => None,
        "Z" | "+00" | "+00:00" => Some(0),
        _ => {
            let sign = match &rest[..1] {
                "+" => 1,
                "-" => -1,
                _ => bad(),
            };
            let body = rest[1..].replace(':', "");
            let (oh, om) = (n(&body[..2]), if body.len() >= 4 { n(&body[2..4]) } else { 0 });
            Some(sign * (oh * 3600 + om * 60))
        }
    };
    let seconds = days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + sec;
    (seconds as i128 * 1_000_000 + micros, offset)
}

fn wall(s: &str) -> Cell {
    match parse_timestamp(s) {
        (micros, None) => Cell::Wall(micros),
        (_, Some(_)) => panic!("a timestamp without zone holds an offset: {s:?}"),
    }
}

/// An instant; text without offset is read as UTC (what MariaDB's UTC sessions give SQLite).
fn at(s: &str) -> Cell {
    let (micros, offset) = parse_timestamp(s);
    Cell::Instant(micros - offset.unwrap_or(0) as i128 * 1_000_000)
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Cell) -> Cell {
    v.map_or(Cell::Null, f)
}

/// Every row of `ty` by id, read with the database's own driver.
fn read(db: &TestDb) -> BTreeMap<i64, Vec<Cell>> {
    let mut out = BTreeMap::new();
    match db.kind {
        Kind::Sqlite => {
            use rusqlite::types::ValueRef;
            let c = rusqlite::Connection::open(db.url.trim_start_matches("sqlite://")).unwrap();
            let mut stmt = c.prepare("SELECT id, amount, flag, born, seen, instant, bin, txt FROM ty").unwrap();
            let mut rows = stmt.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                let text = |i: usize| match r.get_ref(i).unwrap() {
                    ValueRef::Null => None,
                    ValueRef::Text(t) => Some(String::from_utf8(t.to_vec()).unwrap()),
                    other => panic!("column {} is not text: {other:?}", COLUMNS[i]),
                };
                let amount = match r.get_ref(1).unwrap() {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(i) => num(&i.to_string()),
                    ValueRef::Real(f) => num(&format!("{f}")),
                    ValueRef::Text(t) => num(std::str::from_utf8(t).unwrap()),
                    ValueRef::Blob(b) => panic!("amount is a blob: {b:?}"),
                };
                let flag = match r.get_ref(2).unwrap() {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(i @ (0 | 1)) => Cell::Bool(i == 1),
                    other => panic!("flag is not 0/1: {other:?}"),
                };
                let bin = match r.get_ref(6).unwrap() {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
                    other => panic!("bin is not a blob: {other:?}"),
                };
                let row = vec![
                    amount,
                    flag,
                    opt(text(3), Cell::Date),
                    opt(text(4), |s| wall(&s)),
                    opt(text(5), |s| at(&s)),
                    bin,
                    opt(text(7), Cell::Text),
                ];
                out.insert(r.get::<_, i64>(0).unwrap(), row);
            }
        }
        Kind::Postgres => {
            let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
            // `instant::text` in the database's own zone (not UTC): the offset says which instant.
            let sql = "SELECT id, amount::text, flag, born::text, seen::text, instant::text, bin, txt FROM ty";
            for r in c.query(sql, &[]).unwrap() {
                let s = |i: usize| r.get::<_, Option<String>>(i);
                let row = vec![
                    opt(s(1), |v| num(&v)),
                    opt(r.get::<_, Option<bool>>(2), Cell::Bool),
                    opt(s(3), Cell::Date),
                    opt(s(4), |v| wall(&v)),
                    opt(s(5), |v| at(&v)),
                    opt(r.get::<_, Option<Vec<u8>>>(6), Cell::Bytes),
                    opt(s(7), Cell::Text),
                ];
                out.insert(r.get::<_, i64>(0), row);
            }
        }
        Kind::Mariadb => {
            use mysql::prelude::Queryable;
            let mut c = mysql::Conn::new(mysql::Opts::from_url(&db.url).unwrap()).unwrap();
            // Read in +05:30 and say so: the instant is independent of the session's zone.
            c.query_drop("SET time_zone = '+05:30'").unwrap();
            let sql = "SELECT id, CAST(amount AS CHAR), flag, CAST(born AS CHAR), CAST(seen AS CHAR),
                              CONCAT(CAST(instant AS CHAR), '+05:30'), bin, txt FROM ty";
            for r in c.query::<mysql::Row, _>(sql).unwrap() {
                let s = |i: usize| r.get::<Option<String>, _>(i).unwrap();
                let row = vec![
                    opt(s(1), |v| num(&v)),
                    opt(r.get::<Option<i64>, _>(2).unwrap(), |b| Cell::Bool(b != 0)),
                    opt(s(3), Cell::Date),
                    opt(s(4), |v| wall(&v)),
                    opt(s(5), |v| at(&v)),
                    opt(r.get::<Option<Vec<u8>>, _>(6).unwrap(), Cell::Bytes),
                    opt(r.get::<Option<Vec<u8>>, _>(7).unwrap(), |b| Cell::Text(String::from_utf8(b).unwrap())),
                ];
                out.insert(r.get::<i64, _>(0).unwrap(), row);
            }
        }
    }
    out
}

fn config(src: &TestDb, dst: &TestDb) -> String {
    let mut out =
        format!("[apps.src]\nurl = \"{}\"\n[apps.dst]\nurl = \"{}\"\n\n[[maps]]\nname = \"ty\"\nmaster = \"src\"\n", src.url, dst.url);
    for app in ["src", "dst"] {
        out += &format!("[maps.{app}]\ntable = \"ty\"\nkey = \"id\"\n");
    }
    for c in COLUMNS {
        out += &format!("[[maps.columns]]\nsrc = \"{c}\"\ndst = \"{c}\"\n");
    }
    out
}

fn sync(w: &Workspace, label: &str, failing: bool) -> Run {
    let run = w.run(&["--format", "json", "sync"]);
    let code = if failing { 3 } else { 0 };
    assert_eq!(run.code, code, "{label}: {}{}", run.stdout, run.stderr);
    run
}

/// Both tables hold the same rows, but for the ids the target refused.
fn assert_same(src: &TestDb, dst: &TestDb, refused: &[i64], label: &str) {
    let (a, b) = (read(src), read(dst));
    let expected: Vec<i64> = a.keys().copied().filter(|id| !refused.contains(id)).collect();
    assert_eq!(b.keys().copied().collect::<Vec<_>>(), expected, "{label}: the target's rows");
    for id in expected {
        for (c, (x, y)) in a[&id].iter().zip(&b[&id]).enumerate() {
            assert_eq!(x, y, "{label}: row {id}, column {}", COLUMNS[c + 1]);
        }
    }
}

/// The error log holds exactly one open error per refused row, on `column`, saying `why`.
fn assert_refused(w: &Workspace, expected: &[(i64, &str, &str)], label: &str) {
    let errors = w.run(&["--format", "json", "errors"]).json();
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), expected.len(), "{label}: {errors:#?}");
    for (id, column, why) in expected {
        let e = errors.iter().find(|e| e["key"][0].as_i64() == Some(*id)).unwrap_or_else(|| panic!("{label}: no error for row {id}"));
        assert_eq!(e["column"], *column, "{label}: {e}");
        assert_eq!(e["target_app"], "dst", "{label}: {e}");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains(why), "{label}: row {id}: {message:?} should say {why:?}");
    }
}

fn pair(src_kind: Kind, dst_kind: Kind) {
    let (Some(src), Some(dst)) = (TestDb::new(src_kind), TestDb::new(dst_kind)) else { return };
    let label = format!("{} -> {}", src_kind.name(), dst_kind.name());
    for (db, zone) in [(&src, "Asia/Kolkata"), (&dst, "America/New_York")] {
        if db.kind == Kind::Postgres {
            db.exec(&format!("ALTER DATABASE {} SET timezone TO '{zone}'", db.url.rsplit('/').next().unwrap()));
        }
        db.exec(ddl(db.kind));
    }
    fill_source(&src);

    // What the target must refuse, row by row: NUL into PostgreSQL text; 18 significant
    // digits into SQLite's NUMERIC affinity, which would keep a float's 15 to 17
    // (a SQLite source holds that float already, which arrives whole).
    let mut refused: Vec<(i64, &str, &str)> = Vec::new();
    if src_kind != Kind::Sqlite && dst_kind == Kind::Sqlite {
        refused.push((BIG, "amount", "declare the column"));
    }
    if holds_nul(src_kind) && dst_kind == Kind::Postgres {
        refused.push((NUL, "txt", "NUL"));
    }
    let refused_ids: Vec<i64> = refused.iter().map(|r| r.0).collect();
    let failing = !refused.is_empty();

    let w = Workspace::new();
    w.config(&config(&src, &dst));
    let first = sync(&w, &label, failing);
    assert_eq!(super::written(&first), read(&src).len() as u64 - refused.len() as u64, "{label}: {}", first.stdout);
    assert_refused(&w, &refused, &label);
    assert_same(&src, &dst, &refused_ids, &label);
    let again = sync(&w, &label, failing);
    assert_eq!(super::written(&again), 0, "{label}: the second sync writes nothing: {}", again.stdout);

    // Both directions: the target app changes every column of a row, and empties another.
    let back = format!("{label}, back");
    edit_target(&dst, holds_nul(src_kind) && holds_nul(dst_kind));
    let run = sync(&w, &back, failing);
    assert_eq!(super::written(&run), 2, "{back}: {}", run.stdout);
    assert_same(&src, &dst, &refused_ids, &back);
    assert_eq!(read(&src)[&2], vec![Cell::Null; 7], "{back}: row 2 emptied in the source");
    assert_eq!(read(&src)[&1][1], Cell::Bool(false), "{back}");
    let again = sync(&w, &back, failing);
    assert_eq!(super::written(&again), 0, "{back}: a further sync writes nothing: {}", again.stdout);
    assert_refused(&w, &refused, &back);
}

#[test]
fn sqlite_to_sqlite() {
    pair(Kind::Sqlite, Kind::Sqlite);
}

#[test]
fn sqlite_to_postgres() {
    pair(Kind::Sqlite, Kind::Postgres);
}

#[test]
fn sqlite_to_mariadb() {
    pair(Kind::Sqlite, Kind::Mariadb);
}

#[test]
fn postgres_to_sqlite() {
    pair(Kind::Postgres, Kind::Sqlite);
}

#[test]
fn postgres_to_postgres() {
    pair(Kind::Postgres, Kind::Postgres);
}

#[test]
fn postgres_to_mariadb() {
    pair(Kind::Postgres, Kind::Mariadb);
}

#[test]
fn mariadb_to_sqlite() {
    pair(Kind::Mariadb, Kind::Sqlite);
}

#[test]
fn mariadb_to_postgres() {
    pair(Kind::Mariadb, Kind::Postgres);
}

#[test]
fn mariadb_to_mariadb() {
    pair(Kind::Mariadb, Kind::Mariadb);
}

/// A timestamp with an offset written into a column without zone arrives as
/// its UTC reading, which is what dualsync compares it as: PostgreSQL would
/// drop the offset (`10:00+05:30` stored as `10:00`), MariaDB would refuse it.
#[test]
fn an_offset_into_a_column_without_zone_arrives_as_its_utc_reading() {
    for target in [Kind::Postgres, Kind::Mariadb] {
        let (Some(lite), Some(dst)) = (TestDb::new(Kind::Sqlite), TestDb::new(target)) else { continue };
        let label = format!("sqlite -> {}", target.name());
        lite.exec(
            "CREATE TABLE ev (id INTEGER PRIMARY KEY, seen TIMESTAMP);
             INSERT INTO ev VALUES (1, '2024-01-01T10:00:00+05:30'), (2, '2024-12-31 22:00:00.5-03:00'), (3, '2024-01-01T04:30:00Z'),
                                   (4, '2024-01-01 10:00:00'), (5, NULL)",
        );
        dst.exec(match target {
            Kind::Mariadb => "CREATE TABLE ev (id BIGINT PRIMARY KEY, seen DATETIME(6))",
            _ => "CREATE TABLE ev (id bigint PRIMARY KEY, seen timestamp)",
        });
        let w = Workspace::new();
        let mut config = config(&lite, &dst).replace("table = \"ty\"", "table = \"ev\"");
        config.truncate(config.find("[[maps.columns]]").unwrap());
        for c in ["id", "seen"] {
            config += &format!("[[maps.columns]]\nsrc = \"{c}\"\ndst = \"{c}\"\n");
        }
        w.config(&config);
        let readings = || {
            let sql = match target {
                Kind::Mariadb => "SELECT CAST(seen AS CHAR) FROM ev ORDER BY id",
                _ => "SELECT to_char(seen, 'YYYY-MM-DD HH24:MI:SS.US') FROM ev ORDER BY id",
            };
            dst.texts(sql).into_iter().map(|t| t.map(|t| t.trim_end_matches(".000000").to_string())).collect::<Vec<_>>()
        };
        assert_eq!(super::written(&sync(&w, &label, false)), 5, "{label}");
        let expected = [
            Some("2024-01-01 04:30:00"),
            Some("2025-01-01 01:00:00.500000"),
            Some("2024-01-01 04:30:00"),
            Some("2024-01-01 10:00:00"),
            None,
        ];
        assert_eq!(readings(), expected.map(|t| t.map(str::to_string)), "{label}");
        assert_eq!(super::written(&sync(&w, &label, false)), 0, "{label}: the UTC reading equals the value with its offset");

        // Updates take the same way (PostgreSQL: a staged UPDATE rather than COPY).
        lite.exec("UPDATE ev SET seen = '2024-06-30T23:00:00-07:00' WHERE id = 4");
        assert_eq!(super::written(&sync(&w, &label, false)), 1, "{label}");
        assert_eq!(readings()[3].as_deref(), Some("2024-07-01 06:00:00"), "{label}");
        assert_eq!(super::written(&sync(&w, &label, false)), 0, "{label}");
    }
}

/// SQLite's NUMERIC affinity keeps a float's 15 to 17 significant digits:
/// what it would round is refused row by row, saying what to do, and a column
/// with TEXT affinity and a decimal name (`DECIMAL_TEXT`) keeps every digit.
#[test]
fn sqlite_refuses_digits_it_would_lose_and_a_text_affinity_decimal_keeps_them() {
    let Some(pg) = TestDb::new(Kind::Postgres) else { return };
    pg.exec(
        "CREATE TABLE num (id integer PRIMARY KEY, amount numeric(40,20), big bigint);
         INSERT INTO num VALUES (1, '1.00000000000000000001', 1), (2, '12345678901234.5678', 2), (3, '-0.0001', 3),
                                (4, '12345678901234.5680', 4), (5, '99999999999999999999', 5), (6, 0.1, 9007199254740993), (7, NULL, NULL)",
    );
    let columns = ["id", "amount", "big"];
    let config = |lite: &TestDb| {
        let mut out =
            format!("[apps.src]\nurl = \"{}\"\n[apps.dst]\nurl = \"{}\"\n\n[[maps]]\nname = \"num\"\nmaster = \"src\"\n", pg.url, lite.url);
        for app in ["src", "dst"] {
            out += &format!("[maps.{app}]\ntable = \"num\"\nkey = \"id\"\n");
        }
        for c in columns {
            out += &format!("[[maps.columns]]\nsrc = \"{c}\"\ndst = \"{c}\"\n");
        }
        out
    };

    // NUMERIC and REAL affinity: the rows whose digits SQLite would lose are refused, the rest arrive.
    let lite = TestDb::new(Kind::Sqlite).unwrap();
    lite.exec("CREATE TABLE num (id INTEGER PRIMARY KEY, amount NUMERIC(40,20), big REAL)");
    let w = Workspace::new();
    w.config(&config(&lite));
    let run = sync(&w, "numeric affinity", true);
    assert_eq!(super::written(&run), 3, "{}", run.stdout);
    assert_eq!(lite.texts("SELECT CAST(id AS TEXT) FROM num ORDER BY id"), ["3", "4", "7"].map(|t| Some(t.to_string())));
    assert_eq!(lite.texts("SELECT CAST(amount AS TEXT) FROM num WHERE id = 4"), [Some("12345678901234.568".to_string())]);
    let why = "declare the column with TEXT affinity to keep every digit, e.g. DECIMAL_TEXT(40,20)";
    assert_refused(
        &w,
        &[
            (1, "amount", "value 1.00000000000000000001 would be stored as 1:"),
            (2, "amount", "value 12345678901234.5678 would be stored as 12345678901234.568:"),
            (5, "amount", why),
            (6, "big", "value 9007199254740993 would be stored as 9007199254740992: the column is declared REAL"),
        ],
        "numeric affinity",
    );
    assert_eq!(super::written(&sync(&w, "numeric affinity", true)), 0);

    // TEXT affinity with a decimal name: every digit arrives and compares as a decimal.
    let lite = TestDb::new(Kind::Sqlite).unwrap();
    lite.exec("CREATE TABLE num (id INTEGER PRIMARY KEY, amount DECIMAL_TEXT(40,20), big INTEGER)");
    let w = Workspace::new();
    w.config(&config(&lite));
    assert_eq!(super::written(&sync(&w, "text affinity", false)), 7);
    assert_eq!(
        lite.texts("SELECT amount FROM num ORDER BY id"),
        [
            Some("1.00000000000000000001"),
            Some("12345678901234.56780000000000000000"),
            Some("-0.00010000000000000000"),
            Some("12345678901234.56800000000000000000"),
            Some("99999999999999999999.00000000000000000000"),
            Some("0.10000000000000000000"),
            None
        ]
        .map(|t| t.map(str::to_string))
    );
    assert_eq!(super::written(&sync(&w, "text affinity", false)), 0, "decimals in text compare as decimals");
    pg.exec("UPDATE num SET amount = '1.00000000000000000002' WHERE id = 1");
    assert_eq!(super::written(&sync(&w, "text affinity", false)), 1, "a change in the 20th decimal is a change");
    assert_eq!(lite.texts("SELECT amount FROM num WHERE id = 1"), [Some("1.00000000000000000002".to_string())]);
}
