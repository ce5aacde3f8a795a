//! The rows, and the baselines: what the databases' own tools do with the
//! same rows, measured in the same run.

use super::app::{plain_schema, run, BenchApp, Kind, Servers, COLUMNS};
use crate::cli::BenchProfile;
use anyhow::Result;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

pub struct Baseline {
    pub label: String,
    pub seconds: f64,
}

/// Rows with text that needs quoting, NULLs, decimals and timestamps, in SQLite.
pub fn generate(path: &Path, rows: u64, companies: u32) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let db = rusqlite::Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.execute_batch(&plain_schema(Kind::Sqlite, "items", ""))?;
    db.execute(
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
             INSERT INTO items ({COLUMNS})
             SELECT printf('CO%04d', i % ?2), printf('K%010d', i), 'Item ' || i || ' \"quoted\", with a comma',
                    i * 0.25, i % 1000, CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || hex(randomblob(8)) END,
                    '2026-01-01T00:00:00Z'
             FROM n"
        ),
        rusqlite::params![rows as i64, companies as i64],
    )?;
    Ok(())
}

/// The same rows as RFC 4180 CSV (NULL as an empty unquoted field).
pub fn export_csv(db: &Path, csv_path: &Path) -> Result<()> {
    let db = rusqlite::Connection::open(db)?;
    let mut w = csv::Writer::from_path(csv_path)?;
    let mut stmt = db.prepare(&format!("SELECT {COLUMNS} FROM items ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let text = |i: usize| -> rusqlite::Result<String> {
            Ok(match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                rusqlite::types::ValueRef::Real(f) => f.to_string(),
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
            })
        };
        w.write_record((0..7).map(text).collect::<rusqlite::Result<Vec<_>>>()?)?;
    }
    w.flush()?;
    Ok(())
}

/// Baselines for loading the rows of the source's profile into an empty app of `target`; the first is the reference.
pub fn measure(source: &BenchApp, target: Kind, dir: &Path, servers: &Servers, generated: &Path, csv: &Path) -> Result<Vec<Baseline>> {
    let profile = source.profile;
    let (table, columns) = (profile.table(), profile.columns());
    let mut out = Vec::new();
    let mut time = |label: &str, f: &mut dyn FnMut(&BenchApp) -> Result<()>| -> Result<()> {
        let app = BenchApp::create_for(profile, target, "dualsync_bench_base", dir, servers)?;
        app.settle();
        source.settle();
        let t = Instant::now();
        let result = f(&app);
        let seconds = t.elapsed().as_secs_f64();
        app.drop_database();
        result?;
        out.push(Baseline { label: label.to_string(), seconds });
        Ok(())
    };
    match (source.kind, target) {
        (Kind::Postgres, Kind::Postgres) => time("COPY … TO STDOUT | COPY … FROM STDIN", &mut |b| {
            run(Command::new("sh").arg("-c").arg(format!(
                "psql -X -q -v ON_ERROR_STOP=1 '{}' -c \"\\copy (SELECT {columns} FROM {table}) TO STDOUT\" | psql -X -q -v ON_ERROR_STOP=1 '{}' -c \"\\copy {table} ({columns}) FROM STDIN\"",
                source.url, b.url
            )))
        })?,
        // The column list keeps SQLite from copying pages undecoded (its transfer optimization).
        (Kind::Sqlite, Kind::Sqlite) => time(profile.sqlite_copy_label(), &mut |b| {
            let db = rusqlite::Connection::open(b.sqlite_path())?;
            if profile == BenchProfile::Customers {
                // As side_by_side.py's sqlite3 run: a WAL target with synchronous=NORMAL.
                db.pragma_update(None, "synchronous", "NORMAL")?;
            }
            db.execute("ATTACH DATABASE ?1 AS src", [generated.to_string_lossy()])?;
            db.execute_batch(&format!("BEGIN; INSERT INTO main.{table} ({columns}) SELECT {columns} FROM src.{table}; COMMIT;"))?;
            Ok(())
        })?,
        _ => {}
    }
    let label = match target {
        Kind::Postgres => "psql \\copy from CSV",
        Kind::Mariadb => "LOAD DATA LOCAL INFILE from CSV",
        Kind::Sqlite => "SQLite inserts from CSV in one transaction",
    };
    time(label, &mut |b| b.load_csv(csv))?;
    if source.kind == Kind::Sqlite && target == Kind::Postgres {
        if Command::new("pgloader").arg("--version").output().is_ok() {
            time("pgloader (creates its own table)", &mut |b| {
                b.exec(&format!("DROP TABLE {table}"))?;
                run(Command::new("pgloader").args(["--quiet", &format!("sqlite://{}", generated.display()), &b.url]))
            })?;
        } else {
            // stderr: with --format json, stdout holds only the report.
            eprintln!("  (pgloader is not installed: apt-get install pgloader to compare with it)");
        }
    }
    Ok(out)
}

/// The lookup profile's source tables: `refs` (1,000 rows per company) and
/// `l<table>` (litems, lcustomers): the profile's rows with `lookups` columns
/// that each hold a ref's code.
pub fn generate_lookups(path: &Path, profile: BenchProfile, lookups: usize, companies: u32) -> Result<()> {
    let mut db = rusqlite::Connection::open(path)?;
    let (table, cols) = (profile.table(), profile.columns());
    let columns: String = (0..lookups).map(|j| format!(", l{j} TEXT")).collect();
    let values: String = (0..lookups).map(|j| format!(", printf('R%04d', (rowid * {}) % 1000)", j + 7)).collect();
    let names: String = (0..lookups).map(|j| format!(", l{j}")).collect();
    db.execute_batch("CREATE TABLE refs (company TEXT NOT NULL, code TEXT NOT NULL, label TEXT, PRIMARY KEY (company, code))")?;
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO refs VALUES (?1, ?2, ?3)")?;
        for company in profile.company_codes(companies) {
            for j in 0..1000 {
                insert.execute(rusqlite::params![company, format!("R{j:04}"), format!("ref {j}")])?;
            }
        }
    }
    tx.commit()?;
    db.execute_batch(&format!(
        "{};
         INSERT INTO l{table} (rowid, {cols}{names}) SELECT rowid, {cols}{values} FROM {table};",
        profile.schema(Kind::Sqlite, &format!("l{table}"), &columns)
    ))?;
    Ok(())
}
