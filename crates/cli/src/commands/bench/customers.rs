//! `dualsync bench --profile customers`: the realistic table of the
//! side-by-side measurements (shared/bench/customers_data.py), generated here
//! so that anyone can reproduce them: an ERP customers table of 15 columns
//! (text, a NUMERIC(18,2) credit limit, a BOOLEAN, a TIMESTAMP) keyed by
//! (data_area_id, customer_account), account numbers restarting per company,
//! ~5% of the names with quotes, commas, CR/LF and non-ASCII text, NULLs in
//! the optional columns. Its schemas, its map, its CSV and how each database's
//! bulk tool loads that CSV; the rest of the bench is shared with `plain`.

use super::app::Kind;
use anyhow::Result;
use std::path::Path;

/// The companies, with their currency and country; more than eight repeat those.
const COMPANIES: [(&str, &str, &str); 8] = [
    ("USMF", "USD", "USA"),
    ("DEMF", "EUR", "DEU"),
    ("GBSI", "GBP", "GBR"),
    ("FRRT", "EUR", "FRA"),
    ("JPMF", "JPY", "JPN"),
    ("BRMF", "BRL", "BRA"),
    ("INMF", "INR", "IND"),
    ("CNMF", "CNY", "CHN"),
];
/// `--companies` when the user gives none.
pub const DEFAULT_COMPANIES: u32 = COMPANIES.len() as u32;

const GROUPS: [&str; 8] = ["10", "20", "30", "40", "50", "INTERCOMP", "RETAIL", "WHOLESALE"];
const TERMS: [&str; 7] = ["Net10", "Net30", "Net45", "Net60", "COD", "Prepay", "Month+15"];
const FIRST: [&str; 18] = [
    "Contoso",
    "Fabrikam",
    "Adventure",
    "Northwind",
    "Litware",
    "Proseware",
    "Tailspin",
    "Wingtip",
    "Alpine",
    "Coho",
    "Lucerne",
    "Margie",
    "Trey",
    "Woodgrove",
    "Humongous",
    "Blue Yonder",
    "Fourth Coffee",
    "Wide World",
];
const SECOND: [&str; 12] = [
    "Retail",
    "Trading",
    "Supplies",
    "Industries",
    "Holdings",
    "Partners",
    "Logistics",
    "Foods",
    "Motors",
    "Systems",
    "Services",
    "Outlet",
];
const SUFFIX: [&str; 10] = ["Inc.", "GmbH", "Ltd", "SARL", "KK", "S.A.", "Pvt Ltd", "Co.", "LLC", "AG"];
const STREETS: [&str; 10] = [
    "Main St",
    "High Street",
    "Hauptstraße",
    "Rue de la Paix",
    "Elm Ave",
    "Oak Road",
    "Station Rd",
    "Market Square",
    "Industrial Pkwy",
    "Lake View",
];
const CITIES: [&str; 14] = [
    "Seattle",
    "Redmond",
    "München",
    "London",
    "Paris",
    "Tokyo",
    "São Paulo",
    "Mumbai",
    "Shanghai",
    "Chicago",
    "Berlin",
    "Lyon",
    "Osaka",
    "Pune",
];
/// The hard names (`{n}`: the row's number).
const ODD_NAMES: [&str; 10] = [
    "\"Best\" Buy {n}",
    "Smith, Jones & Co {n}",
    "Multi\nLine Corp {n}",
    "Müller & Söhne {n}",
    "株式会社 東京 {n}",
    "Café \"Olé\", Lda {n}",
    "Ωmega Σystems {n}",
    "Line1\r\nLine2 \"quoted\", {n}",
    "Łódź Trading {n}",
    "O'Brien \"The Boss\" {n}",
];

/// A column: name, SQLite (as customers_data.py declares it), PostgreSQL (as
/// pg_schema.sql) and MariaDB types, and whether it may be NULL.
struct Column {
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
    mariadb: &'static str,
    optional: bool,
}

const fn col(name: &'static str, sqlite: &'static str, postgres: &'static str, mariadb: &'static str, optional: bool) -> Column {
    Column { name, sqlite, postgres, mariadb, optional }
}

const COLS: [Column; 15] = [
    col("customer_account", "TEXT", "text", "VARCHAR(20)", false),
    col("data_area_id", "TEXT", "text", "VARCHAR(20)", false),
    col("name", "TEXT", "text", "TEXT", false),
    col("customer_group", "TEXT", "text", "TEXT", false),
    col("currency_code", "TEXT", "text", "TEXT", false),
    col("credit_limit", "NUMERIC(18,2)", "numeric(18,2)", "DECIMAL(18,2)", false),
    col("payment_terms", "TEXT", "text", "TEXT", true),
    col("address_street", "TEXT", "text", "TEXT", true),
    col("address_city", "TEXT", "text", "TEXT", true),
    col("address_zip", "TEXT", "text", "TEXT", true),
    col("address_country", "TEXT", "text", "TEXT", true),
    col("phone", "TEXT", "text", "TEXT", true),
    col("email", "TEXT", "text", "TEXT", true),
    col("is_blocked", "BOOLEAN", "boolean", "BOOLEAN", false),
    col("modified_at", "TIMESTAMP", "timestamp", "DATETIME(6)", false),
];
const CREDIT: usize = 5;
const BLOCKED: usize = 13;

pub const TABLE: &str = "customers";
pub const KEY: &str = "customer_account";
pub const COMPANY: &str = "data_area_id";

/// The column list, in the CSV's order.
pub fn columns() -> String {
    COLS.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
}

/// The company codes of `n` companies.
pub fn company_codes(n: u32) -> Vec<String> {
    (0..n as usize).map(|i| company(i).0).collect()
}

/// Company `i`: its code, currency and country.
fn company(i: usize) -> (String, &'static str, &'static str) {
    let (code, currency, country) = COMPANIES[i % COMPANIES.len()];
    if i < COMPANIES.len() {
        (code.to_string(), currency, country)
    } else {
        (format!("C{i:03}"), currency, country)
    }
}

/// The table for `kind`, named `table`, with `extra` (", l0 TEXT, …") after the 15 columns.
/// For SQLite this is customers_data.py's DDL, for PostgreSQL pg_schema.sql's, with its primary key.
pub fn schema(kind: Kind, table: &str, extra: &str) -> String {
    let width = COLS.iter().map(|c| c.name.len()).max().unwrap_or(0) + 1;
    let columns: Vec<String> = COLS
        .iter()
        .map(|c| {
            let ty = match kind {
                Kind::Sqlite => c.sqlite,
                Kind::Postgres => c.postgres,
                Kind::Mariadb => c.mariadb,
            };
            let null = if c.optional { "" } else { " NOT NULL" };
            format!("  {:<width$}{ty}{null}", c.name)
        })
        .collect();
    format!("CREATE TABLE {table} (\n{}{extra},\n  PRIMARY KEY ({COMPANY}, {KEY})\n)", columns.join(",\n"))
}

/// The map: the company column is the partition, the key is unique per company, the 13 other columns mapped.
pub fn map(name: &str, table: &str, threading: &str, workers: usize) -> String {
    let mut map = format!("\n[[maps]]\nname = \"{name}\"\nmaster = \"a\"\nthreading = \"{threading}\"\nworkers = {workers}\n");
    for app in ["a", "b"] {
        map.push_str(&format!("[maps.{app}]\ntable = \"{table}\"\nkey = \"{KEY}\"\ncompany = \"{COMPANY}\"\n"));
    }
    for c in COLS.iter().filter(|c| c.name != COMPANY) {
        map.push_str(&format!("[[maps.columns]]\na = \"{0}\"\nb = \"{0}\"\n", c.name));
    }
    map
}

/// A small seeded generator (splitmix64): the same rows on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in [0, 1).
    fn random(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// A time between 2015-01-01 and 2025 with microseconds, as `YYYY-MM-DD HH:MM:SS.ffffff`.
fn timestamp(rng: &mut Rng) -> String {
    const EPOCH_DAYS: i64 = 16_436; // 2015-01-01, in days since 1970-01-01
    let seconds = rng.below(10 * 365 * 86_400) as i64;
    let micros = rng.below(1_000_000);
    // Days to a civil date (H. Hinnant's algorithm).
    let z = EPOCH_DAYS + seconds / 86_400 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let s = seconds % 86_400;
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{micros:06}", s / 3600, s / 60 % 60, s % 60)
}

/// `rows` customers spread over `companies` companies into a new SQLite file
/// (customers_data.py's DDL and pragmas) and the same rows as RFC 4180 CSV
/// (header, CRLF, minimal quoting, NULL as an empty unquoted field, booleans as true/false).
pub fn generate(db_path: &Path, csv_path: &Path, rows: u64, companies: u32) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let companies: Vec<_> = (0..companies.max(1) as usize).map(company).collect();
    let mut rng = Rng(42);
    let mut db = rusqlite::Connection::open(db_path)?;
    db.pragma_update(None, "journal_mode", "OFF")?;
    db.pragma_update(None, "synchronous", "OFF")?;
    db.execute_batch(&schema(Kind::Sqlite, TABLE, ""))?;
    let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_path(csv_path)?;
    csv.write_record(COLS.iter().map(|c| c.name))?;
    let tx = db.transaction()?;
    {
        let placeholders = (1..=COLS.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        let mut insert = tx.prepare(&format!("INSERT INTO {TABLE} ({}) VALUES ({placeholders})", columns()))?;
        for i in 0..rows {
            let (code, currency, country) = &companies[(i % companies.len() as u64) as usize];
            let account = format!("C{:06}", i / companies.len() as u64 + 1);
            let name = if rng.random() < 0.05 {
                rng.pick(&ODD_NAMES).replace("{n}", &i.to_string())
            } else {
                format!("{} {} {}", rng.pick(&FIRST), rng.pick(&SECOND), rng.pick(&SUFFIX))
            };
            let cents = rng.below(100_000_000); // up to 999,999.99
            let has_address = rng.random() > 0.02;
            let group = rng.pick(&GROUPS);
            let terms = (rng.random() > 0.03).then(|| rng.pick(&TERMS));
            let street = has_address.then(|| format!("{} {}", 1 + rng.below(9998), rng.pick(&STREETS)));
            let city = has_address.then(|| rng.pick(&CITIES));
            let zip = has_address.then(|| format!("{:05}", rng.below(100_000)));
            let phone = (rng.random() > 0.1).then(|| format!("+1-{:03}-{:03}-{:04}", rng.below(1000), rng.below(1000), rng.below(10_000)));
            let email = (rng.random() > 0.15).then(|| format!("ap{i}@{}.example.com", code.to_lowercase()));
            let blocked = rng.random() < 0.04;
            let modified = timestamp(&mut rng);
            // SQLite gets what Python's sqlite3 binds: the credit limit as a float, the flag as 0/1.
            insert.execute(rusqlite::params![
                account,
                code,
                name,
                group,
                currency,
                cents as f64 / 100.0,
                terms,
                street,
                city,
                zip,
                country,
                phone,
                email,
                blocked as i64,
                modified
            ])?;
            let credit = format!("{}.{:02}", cents / 100, cents % 100);
            csv.write_record([
                account.as_str(),
                code,
                &name,
                group,
                currency,
                &credit,
                terms.unwrap_or(""),
                street.as_deref().unwrap_or(""),
                city.unwrap_or(""),
                zip.as_deref().unwrap_or(""),
                country,
                phone.as_deref().unwrap_or(""),
                email.as_deref().unwrap_or(""),
                if blocked { "true" } else { "false" },
                &modified,
            ])?;
        }
    }
    tx.commit()?;
    csv.flush()?;
    db.execute_batch("ANALYZE")?;
    Ok(())
}

/// MariaDB's bulk load of the CSV: LOAD DATA LOCAL INFILE, the header skipped,
/// empty fields as NULL, true/false as 1/0.
pub fn load_data_sql(csv: &Path) -> String {
    let targets: Vec<String> = COLS
        .iter()
        .enumerate()
        .map(|(i, c)| if c.optional || i == BLOCKED { format!("@{}", c.name) } else { c.name.to_string() })
        .collect();
    let mut sets: Vec<String> = COLS.iter().filter(|c| c.optional).map(|c| format!("{0} = NULLIF(@{0}, '')", c.name)).collect();
    sets.push(format!("{0} = (@{0} = 'true')", COLS[BLOCKED].name));
    format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE {TABLE} CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' \
         LINES TERMINATED BY '\\r\\n' IGNORE 1 LINES ({}) SET {}",
        csv.display(),
        targets.join(", "),
        sets.join(", ")
    )
}

/// SQLite's load of the CSV: one transaction of inserts, values typed as the generator binds them.
pub fn insert_csv(db: &mut rusqlite::Connection, csv: &Path) -> Result<()> {
    use rusqlite::types::Value;
    let tx = db.transaction()?;
    {
        let placeholders = (1..=COLS.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        let mut insert = tx.prepare(&format!("INSERT INTO {TABLE} ({}) VALUES ({placeholders})", columns()))?;
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_path(csv)?;
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record)? {
            let values = COLS.iter().zip(record.iter()).enumerate().map(|(i, (c, field))| match i {
                _ if field.is_empty() && c.optional => Value::Null,
                CREDIT => field.parse::<f64>().map_or_else(|_| Value::Text(field.into()), Value::Real),
                BLOCKED => Value::Integer((field == "true") as i64),
                _ => Value::Text(field.into()),
            });
            insert.execute(rusqlite::params_from_iter(values))?;
        }
    }
    tx.commit()?;
    Ok(())
}
