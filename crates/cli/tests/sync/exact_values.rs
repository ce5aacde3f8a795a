//! Numbers beyond f64 and instants in different time zones, on the real servers:
//! keys and values are compared exactly, so nothing is lost and a second sync
//! writes nothing.

use crate::util::{Run, Workspace};
use dualsync_testkit::{Kind, TestDb};

/// A config syncing table `table` (key `key`, `columns`) of app `a` (master) with app `b`.
fn config(a: (&str, &TestDb), b: (&str, &TestDb), table: &str, key: &str, columns: &[&str]) -> String {
    let mut out = format!(
        "[apps.{}]\nurl = \"{}\"\n[apps.{}]\nurl = \"{}\"\n\n[[maps]]\nname = \"{table}\"\nmaster = \"{}\"\n",
        a.0, a.1.url, b.0, b.1.url, a.0
    );
    for app in [a.0, b.0] {
        out += &format!("[maps.{app}]\ntable = \"{table}\"\nkey = \"{key}\"\n");
    }
    for c in columns {
        out += &format!("[[maps.columns]]\n{} = \"{c}\"\n{} = \"{c}\"\n", a.0, b.0);
    }
    out
}

fn sync(w: &Workspace, label: &str) -> Run {
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{label}: {}{}", run.stdout, run.stderr);
    run
}

fn first(db: &TestDb, sql: &str) -> Option<String> {
    db.texts(sql).into_iter().next().flatten()
}

/// The database name in a test database's URL (`…/dualsync_t1_2`).
fn db_name(db: &TestDb) -> &str {
    db.url.rsplit('/').next().unwrap()
}

#[test]
fn numeric_keys_and_values_beyond_f64_arrive_exactly() {
    const LOW: &str = "9007199254740992"; // 2^53
    const HIGH: &str = "9007199254740993"; // 2^53 + 1: the same f64
    for target in [Kind::Sqlite, Kind::Postgres] {
        let (Some(src), Some(dst)) = (TestDb::new(Kind::Postgres), TestDb::new(target)) else { return };
        let label = format!("postgres -> {}", target.name());
        // SQLite's NUMERIC affinity keeps 15 significant digits of a fraction (it stores a REAL),
        // so numeric(40,20) goes only to PostgreSQL; a whole numeric(19) is an exact INTEGER in SQLite.
        let mut columns = vec!["k", "qty", "name"];
        src.exec("CREATE TABLE item (k numeric(20) PRIMARY KEY, qty numeric(19), amount numeric(40,20), name text)");
        match target {
            Kind::Sqlite => dst.exec("CREATE TABLE item (k NUMERIC(20) PRIMARY KEY, qty NUMERIC(19), name TEXT)"),
            _ => {
                dst.exec("CREATE TABLE item (k numeric(20) PRIMARY KEY, qty numeric(19), amount numeric(40,20), name text)");
                columns.push("amount");
            }
        }
        src.exec(&format!(
            "INSERT INTO item VALUES ({LOW}, {LOW}, '1.00000000000000000001', 'low'), ({HIGH}, {HIGH}, '1.00000000000000000002', 'high')"
        ));
        if target == Kind::Postgres {
            // Beyond i64 too, where PostgreSQL holds it.
            src.exec("INSERT INTO item VALUES (99999999999999999998, 1, '-0.00000000000000000001', 'max-1'), (99999999999999999999, 2, '0', 'max')");
        }
        let w = Workspace::new();
        w.config(&config(("src", &src), ("dst", &dst), "item", "k", &columns));

        sync(&w, &label);
        let cast = if target == Kind::Sqlite { "CAST(k AS TEXT)" } else { "k::text" };
        let keys = dst.texts(&format!("SELECT {cast} FROM item ORDER BY k"));
        let mut expected = vec![Some(LOW.to_string()), Some(HIGH.to_string())];
        if target == Kind::Postgres {
            expected.extend(["99999999999999999998", "99999999999999999999"].map(|k| Some(k.to_string())));
        }
        assert_eq!(keys, expected, "{label}: every key arrives");
        let qty_cast = if target == Kind::Sqlite { "CAST(qty AS TEXT)" } else { "qty::text" };
        assert_eq!(first(&dst, &format!("SELECT {qty_cast} FROM item WHERE name = 'high'")).as_deref(), Some(HIGH), "{label}");
        if target == Kind::Postgres {
            assert_eq!(
                dst.texts("SELECT amount::text FROM item ORDER BY k"),
                ["1.00000000000000000001", "1.00000000000000000002", "-0.00000000000000000001", "0.00000000000000000000"]
                    .map(|a| Some(a.to_string())),
                "{label}"
            );
        }

        let again = sync(&w, &label);
        assert_eq!(super::written(&again), 0, "{label}: the second sync writes nothing: {}", again.stdout);

        // A change in the last digit is a change.
        src.exec(&format!(
            "UPDATE item SET qty = 9007199254740994, amount = '1.00000000000000000003' WHERE k = {HIGH};
             UPDATE item SET amount = '-0.00000000000000000002' WHERE k = 99999999999999999998"
        ));
        let update = sync(&w, &label);
        let changed = if target == Kind::Postgres { 2 } else { 1 };
        assert_eq!(super::written(&update), changed, "{label}: {}", update.stdout);
        assert_eq!(
            first(&dst, &format!("SELECT {qty_cast} FROM item WHERE name = 'high'")).as_deref(),
            Some("9007199254740994"),
            "{label}"
        );
        if target == Kind::Postgres {
            assert_eq!(first(&dst, &format!("SELECT amount::text FROM item WHERE k = {HIGH}")).as_deref(), Some("1.00000000000000000003"));
            assert_eq!(first(&dst, "SELECT amount::text FROM item WHERE name = 'max-1'").as_deref(), Some("-0.00000000000000000002"));
        }
        assert_eq!(super::written(&sync(&w, &label)), 0, "{label}: in step");
    }
}

/// The same instants, written in New York and in Kolkata and read by each
/// database's own zone, then the same instants after a trip through SQLite.
#[test]
fn timestamptz_compares_as_instants_across_time_zones() {
    let (Some(ny), Some(kol), Some(lite)) = (TestDb::new(Kind::Postgres), TestDb::new(Kind::Postgres), TestDb::new(Kind::Sqlite)) else {
        return;
    };
    ny.exec(&format!("ALTER DATABASE {} SET timezone TO 'America/New_York'", db_name(&ny)));
    kol.exec(&format!("ALTER DATABASE {} SET timezone TO 'Asia/Kolkata'", db_name(&kol)));
    assert_eq!(first(&ny, "SHOW timezone").as_deref(), Some("America/New_York"));
    for db in [&ny, &kol] {
        db.exec("CREATE TABLE ev (id integer PRIMARY KEY, at timestamptz, local timestamp)");
    }
    // Winter and summer time in New York, the day clocks moved, a fraction, an offset of its own.
    ny.exec(
        "INSERT INTO ev VALUES (1, '2024-01-01 10:00:00+05:30', '2024-01-01 10:00:00'), (2, '2024-07-01 12:00:00.123456+00', NULL),
                               (3, '2024-03-10 03:30:00', NULL), (4, '1999-12-31 23:59:59.5-08:00', '1999-12-31 23:59:59.5'), (5, NULL, NULL)",
    );
    kol.exec(
        "INSERT INTO ev VALUES (1, '2024-01-01 04:30:00Z', '2024-01-01 10:00:00'), (2, '2024-07-01 17:30:00.123456', NULL),
                               (3, '2024-03-10 07:30:00+00', NULL), (4, '2000-01-01 13:29:59.5', '1999-12-31 23:59:59.5'), (5, NULL, NULL)",
    );
    let w = Workspace::new();
    w.config(&config(("ny", &ny), ("kol", &kol), "ev", "id", &["id", "at", "local"]));
    let run = sync(&w, "ny <-> kol");
    assert_eq!(super::written(&run), 0, "equal instants are equal, whatever the zones: {}", run.stdout);
    assert_eq!(super::written(&sync(&w, "ny <-> kol")), 0);

    // A change of the instant arrives as that instant.
    ny.exec("UPDATE ev SET at = at + interval '1 hour' WHERE id = 1");
    assert_eq!(super::written(&sync(&w, "ny <-> kol")), 1);
    let utc = "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM ev ORDER BY id";
    let expected = ["2024-01-01 05:30:00.000000", "2024-07-01 12:00:00.123456", "2024-03-10 07:30:00.000000", "2000-01-01 07:59:59.500000"];
    assert_eq!(kol.texts(utc)[..4], expected.map(|t| Some(t.to_string())));
    assert_eq!(ny.texts(utc)[..4], expected.map(|t| Some(t.to_string())));
    assert_eq!(super::written(&sync(&w, "ny <-> kol")), 0);

    // New York to SQLite: the instants arrive in UTC; wall-clock timestamps as they are.
    lite.exec("CREATE TABLE ev (id INTEGER PRIMARY KEY, at TIMESTAMP, local TIMESTAMP)");
    let w = Workspace::new();
    w.config(&config(("ny", &ny), ("lite", &lite), "ev", "id", &["id", "at", "local"]));
    sync(&w, "ny -> sqlite");
    assert_eq!(
        lite.texts("SELECT at FROM ev ORDER BY id"),
        [
            Some("2024-01-01T05:30:00+00:00"),
            Some("2024-07-01T12:00:00.123456+00:00"),
            Some("2024-03-10T07:30:00+00:00"),
            Some("2000-01-01T07:59:59.5+00:00"),
            None
        ]
        .map(|t| t.map(str::to_string))
    );
    assert_eq!(lite.texts("SELECT local FROM ev WHERE id = 1"), [Some("2024-01-01T10:00:00".to_string())]);
    assert_eq!(super::written(&sync(&w, "ny -> sqlite")), 0);
    // Back from SQLite, an instant spelled with any offset compares by the instant.
    lite.exec("UPDATE ev SET at = '2024-07-01 17:30:00.123456+05:30' WHERE id = 2; UPDATE ev SET at = '2024-01-01T05:30:00Z' WHERE id = 1");
    assert_eq!(super::written(&sync(&w, "ny -> sqlite")), 0);
}

/// MariaDB `TIMESTAMP` is an instant shown in the session's zone: dualsync's
/// sessions run in UTC, so an app working in another zone and dualsync agree
/// on the instant, and PostgreSQL (in Kolkata) and SQLite receive it in UTC.
#[test]
fn mariadb_timestamp_is_read_and_written_in_utc() {
    let (Some(my), Some(kol), Some(lite)) = (TestDb::new(Kind::Mariadb), TestDb::new(Kind::Postgres), TestDb::new(Kind::Sqlite)) else {
        return;
    };
    kol.exec(&format!("ALTER DATABASE {} SET timezone TO 'Asia/Kolkata'", db_name(&kol)));
    my.exec("CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMP(6) NULL, local DATETIME(6) NULL)");
    // The app works in +05:30: 10:00 there is 04:30 UTC.
    my.exec("SET time_zone = '+05:30'; INSERT INTO ev VALUES (1, '2024-01-01 10:00:00', '2024-01-01 10:00:00'), (2, '2024-07-01 23:00:00.25', NULL)");
    let epoch = "SELECT CAST(UNIX_TIMESTAMP(at) AS CHAR) FROM ev ORDER BY id";
    assert_eq!(my.texts(epoch), [Some("1704083400.000000".to_string()), Some("1719855000.250000".to_string())]);

    lite.exec("CREATE TABLE ev (id INTEGER PRIMARY KEY, at TIMESTAMP, local TIMESTAMP)");
    let w = Workspace::new();
    w.config(&config(("my", &my), ("lite", &lite), "ev", "id", &["id", "at", "local"]));
    sync(&w, "mariadb -> sqlite");
    assert_eq!(
        lite.texts("SELECT at FROM ev ORDER BY id"),
        [Some("2024-01-01T04:30:00".to_string()), Some("2024-07-01T17:30:00.25".to_string())],
        "read in UTC"
    );
    assert_eq!(lite.texts("SELECT local FROM ev WHERE id = 1"), [Some("2024-01-01T10:00:00".to_string())], "DATETIME is wall-clock");
    assert_eq!(super::written(&sync(&w, "mariadb -> sqlite")), 0);
    // Written in UTC: an instant from SQLite lands as that instant.
    lite.exec("INSERT INTO ev VALUES (3, '2024-06-01T12:00:00Z', NULL)");
    assert_eq!(super::written(&sync(&w, "mariadb <- sqlite")), 1);
    assert_eq!(first(&my, "SELECT CAST(UNIX_TIMESTAMP(at) AS CHAR) FROM ev WHERE id = 3").as_deref(), Some("1717243200.000000"));
    assert_eq!(super::written(&sync(&w, "mariadb <- sqlite")), 0);

    // PostgreSQL in Kolkata: its timestamptz and MariaDB's TIMESTAMP hold the same instants.
    kol.exec("CREATE TABLE ev (id integer PRIMARY KEY, at timestamptz, local timestamp)");
    let w = Workspace::new();
    w.config(&config(("my", &my), ("kol", &kol), "ev", "id", &["id", "at", "local"]));
    sync(&w, "mariadb -> postgres");
    let utc = "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM ev ORDER BY id";
    assert_eq!(
        kol.texts(utc),
        ["2024-01-01 04:30:00.000", "2024-07-01 17:30:00.250", "2024-06-01 12:00:00.000"].map(|t| Some(t.to_string()))
    );
    assert_eq!(super::written(&sync(&w, "mariadb -> postgres")), 0);
    kol.exec("UPDATE ev SET at = '2024-01-01 12:00:00+05:30' WHERE id = 1");
    let w = Workspace::new();
    w.config(&config(("kol", &kol), ("my", &my), "ev", "id", &["id", "at", "local"]));
    assert_eq!(super::written(&sync(&w, "postgres -> mariadb")), 1);
    assert_eq!(first(&my, "SELECT CAST(UNIX_TIMESTAMP(at) AS CHAR) FROM ev WHERE id = 1").as_deref(), Some("1704090600.000000"));
    assert_eq!(super::written(&sync(&w, "postgres -> mariadb")), 0);
}
