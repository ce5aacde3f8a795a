//! One app of the benchmark: a SQLite file or a database on the PostgreSQL or
//! MariaDB server, with the profile's table (`items` or `customers`), created
//! fresh and dropped after.

use crate::cli::BenchProfile;
use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Sqlite,
    Postgres,
    Mariadb,
}

pub const COLUMNS: &str = "company, code, name, amount, qty, note, updated";

/// The plain profile's `items` table (named `table`, with `extra` columns) for `kind`.
pub fn plain_schema(kind: Kind, table: &str, extra: &str) -> String {
    match kind {
        // A rowid table with a unique key, as applications usually have.
        Kind::Sqlite => format!(
            "CREATE TABLE {table} (id INTEGER PRIMARY KEY, company TEXT NOT NULL, code TEXT NOT NULL, name TEXT,
                amount REAL, qty INTEGER, note TEXT, updated TEXT{extra}, UNIQUE (company, code))"
        ),
        Kind::Postgres => format!(
            "CREATE TABLE {table} (company TEXT NOT NULL, code TEXT NOT NULL, name TEXT, amount DOUBLE PRECISION,
                qty BIGINT, note TEXT, updated TEXT{extra}, PRIMARY KEY (company, code))"
        ),
        Kind::Mariadb => format!(
            "CREATE TABLE {table} (company VARCHAR(20) NOT NULL, code VARCHAR(20) NOT NULL, name TEXT, amount DOUBLE,
                qty BIGINT, note TEXT, updated TEXT{extra}, PRIMARY KEY (company, code))"
        ),
    }
}

pub struct BenchApp {
    pub kind: Kind,
    pub profile: BenchProfile,
    /// The database's URL, for the bench's own sessions (no TLS settings).
    pub url: String,
    /// The TLS settings dualsync's config adds to it (`?ssl-mode=DISABLED`).
    tls: String,
    name: String,
    admin: String,
}

impl BenchApp {
    /// The URL dualsync's config uses: with the TLS settings given to the bench.
    pub fn config_url(&self) -> String {
        format!("{}{}", self.url, self.tls)
    }

    /// A new empty app of this kind named `name`, with the `items` table.
    pub fn create(kind: Kind, name: &str, dir: &Path, servers: &Servers) -> Result<BenchApp> {
        Self::create_for(BenchProfile::Plain, kind, name, dir, servers)
    }

    /// A new empty app of this kind named `name`, with the profile's table.
    pub fn create_for(profile: BenchProfile, kind: Kind, name: &str, dir: &Path, servers: &Servers) -> Result<BenchApp> {
        let app = match kind {
            Kind::Sqlite => {
                let path = dir.join(format!("{name}.db"));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                BenchApp {
                    kind,
                    profile,
                    url: format!("sqlite://{}", path.display()),
                    tls: String::new(),
                    name: name.into(),
                    admin: String::new(),
                }
            }
            Kind::Postgres => {
                let (server, query) = split_query(&servers.postgres);
                let mut admin = postgres::Client::connect(server, postgres::NoTls).context("connecting to PostgreSQL (--postgres)")?;
                // A replication slot an earlier bench left in the database would keep it from being dropped.
                admin.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active",
                    &[&name],
                )?;
                // Two statements: DROP DATABASE cannot run inside the implicit transaction of a batch.
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
                admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
                let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
                BenchApp { kind, profile, url: format!("{base}/{name}"), tls: query.into(), name: name.into(), admin: server.to_string() }
            }
            Kind::Mariadb => {
                let (server, query) = split_query(&servers.mysql);
                let mut admin = mysql::Conn::new(mysql::Opts::from_url(server)?).context("connecting to MariaDB (--mysql)")?;
                admin.query_drop(format!("DROP DATABASE IF EXISTS {name}"))?;
                admin.query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))?;
                BenchApp {
                    kind,
                    profile,
                    url: format!("{}/{name}", server.trim_end_matches('/')),
                    tls: query.into(),
                    name: name.into(),
                    admin: server.to_string(),
                }
            }
        };
        app.exec(&profile.schema(kind, profile.table(), ""))?;
        Ok(app)
    }

    /// The lookup profile's target tables: refs with an id, and l<table> (litems,
    /// lcustomers) whose lookups hold those ids.
    pub fn create_lookup_tables(&self, lookups: usize) -> Result<()> {
        let (key, int, real) = match self.kind {
            Kind::Mariadb => ("VARCHAR(40)", "BIGINT", "DOUBLE"),
            Kind::Postgres => ("TEXT", "BIGINT", "DOUBLE PRECISION"),
            Kind::Sqlite => ("TEXT", "INTEGER", "REAL"),
        };
        let columns: String = (0..lookups).map(|j| format!(", l{j} {key}")).collect();
        self.exec(&format!(
            "CREATE TABLE refs (id {key} PRIMARY KEY, company {key} NOT NULL, code {key} NOT NULL, label TEXT, UNIQUE (company, code))"
        ))?;
        match self.profile {
            BenchProfile::Plain => self.exec(&format!(
                "CREATE TABLE litems (company {key} NOT NULL, code {key} NOT NULL, name TEXT, amount {real}, qty {int}, note TEXT, updated TEXT{columns}, PRIMARY KEY (company, code))"
            )),
            BenchProfile::Customers => self.exec(&self.profile.schema(self.kind, &format!("l{}", self.profile.table()), &columns)),
        }
    }

    pub fn count_table(&self, table: &str) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {table}");
        Ok(match self.kind {
            Kind::Sqlite => rusqlite::Connection::open(self.sqlite_path())?.query_row(&sql, [], |r| r.get::<_, i64>(0))? as u64,
            Kind::Postgres => postgres::Client::connect(&self.url, postgres::NoTls)?.query_one(sql.as_str(), &[])?.get::<_, i64>(0) as u64,
            Kind::Mariadb => mysql::Conn::new(mysql::Opts::from_url(&self.url)?)?.query_first::<u64, _>(sql)?.unwrap_or(0),
        })
    }

    pub fn sqlite_path(&self) -> PathBuf {
        PathBuf::from(self.url.trim_start_matches("sqlite://"))
    }

    pub fn exec(&self, sql: &str) -> Result<()> {
        match self.kind {
            Kind::Sqlite => {
                let db = rusqlite::Connection::open(self.sqlite_path())?;
                db.pragma_update(None, "journal_mode", "WAL")?;
                db.execute_batch(sql)?;
            }
            Kind::Postgres => postgres::Client::connect(&self.url, postgres::NoTls)?.batch_execute(sql)?,
            Kind::Mariadb => mysql::Conn::new(mysql::Opts::from_url(&self.url)?)?.query_drop(sql)?,
        }
        Ok(())
    }

    /// Rows in the profile's table.
    pub fn count(&self) -> Result<u64> {
        self.count_table(self.profile.table())
    }

    /// Loads the profile's CSV file with the database's own bulk tool (the raw
    /// load limit): `psql \copy`, `LOAD DATA LOCAL INFILE`, or one SQLite transaction.
    pub fn load_csv(&self, csv: &Path) -> Result<()> {
        match self.kind {
            Kind::Postgres => run(Command::new("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &self.url, "-c"]).arg(format!(
                "\\copy {} ({}) FROM '{}' WITH (FORMAT csv{})",
                self.profile.table(),
                self.profile.columns(),
                csv.display(),
                if self.profile.csv_header() { ", HEADER true" } else { "" }
            ))),
            Kind::Mariadb => {
                let mut conn = mysql::Conn::new(mysql::OptsBuilder::from_opts(mysql::Opts::from_url(&self.url)?).local_infile_handler(
                    Some(mysql::LocalInfileHandler::new(|name, writer| {
                        let mut file = std::fs::File::open(String::from_utf8_lossy(name).as_ref())?;
                        std::io::copy(&mut file, writer)?;
                        Ok(())
                    })),
                ))?;
                conn.query_drop(match self.profile {
                    BenchProfile::Plain => format!(
                        "LOAD DATA LOCAL INFILE '{}' INTO TABLE items FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' ({COLUMNS})",
                        csv.display()
                    ),
                    BenchProfile::Customers => super::customers::load_data_sql(csv),
                })?;
                Ok(())
            }
            Kind::Sqlite => {
                let mut db = rusqlite::Connection::open(self.sqlite_path())?;
                if self.profile == BenchProfile::Customers {
                    return super::customers::insert_csv(&mut db, csv);
                }
                let tx = db.transaction()?;
                {
                    let mut insert = tx.prepare(&format!("INSERT INTO items ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"))?;
                    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_path(csv)?;
                    for record in reader.records() {
                        let r = record?;
                        let field = |i: usize| (!r[i].is_empty()).then(|| r[i].to_string());
                        insert.execute(rusqlite::params![
                            &r[0],
                            &r[1],
                            field(2),
                            r[3].parse::<f64>().ok(),
                            r[4].parse::<i64>().ok(),
                            field(5),
                            field(6)
                        ])?;
                    }
                }
                tx.commit()?;
                Ok(())
            }
        }
    }

    /// SQL that makes 10% of the rows differ from the other app (see `--mode both`),
    /// by the number in their key (K0000000123, C000123) modulo 40.
    pub fn diverge(&self, keep_only_here: u32, change: bool) -> Result<()> {
        let (table, key) = (self.profile.table(), self.profile.key());
        let n = match self.kind {
            Kind::Sqlite => format!("CAST(substr({key}, 2) AS INTEGER)"),
            Kind::Postgres => format!("substr({key}, 2)::bigint"),
            Kind::Mariadb => format!("CAST(SUBSTRING({key}, 2) AS UNSIGNED)"),
        };
        let mut sql = format!("DELETE FROM {table} WHERE {n} % 40 = {keep_only_here}");
        if change {
            sql.push_str(&format!(";\nUPDATE {table} SET name = concat(name, ' (changed)') WHERE {n} % 40 IN (1, 2)"));
        }
        for statement in sql.split(";\n") {
            let statement = if self.kind == Kind::Sqlite {
                statement.replace("concat(name, ' (changed)')", "name || ' (changed)'")
            } else {
                statement.to_string()
            };
            self.exec(&statement)?;
        }
        Ok(())
    }

    /// Lets the server write out what earlier steps left in memory, so that the
    /// next timed step does not pay for them: a CHECKPOINT on PostgreSQL (a
    /// user without the right to run it just skips it).
    pub fn settle(&self) {
        if self.kind == Kind::Postgres {
            if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
                let _ = c.batch_execute("CHECKPOINT");
            }
        }
    }

    pub fn drop_database(&self) {
        match self.kind {
            Kind::Sqlite => {}
            Kind::Postgres => {
                if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
                    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
                }
            }
            Kind::Mariadb => {
                if let Ok(mut c) = mysql::Opts::from_url(&self.admin).map_err(anyhow::Error::from).and_then(|o| Ok(mysql::Conn::new(o)?)) {
                    let _ = c.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
                }
            }
        }
    }
}

/// Admin URLs of the servers the bench creates its databases on.
pub struct Servers {
    pub postgres: String,
    pub mysql: String,
}

pub fn run(command: &mut Command) -> Result<()> {
    let out = command.output().with_context(|| format!("running {:?}", command.get_program()))?;
    if !out.status.success() {
        bail!("{:?} failed: {}", command.get_program(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A server's url and its query: the apps' TLS settings (`?sslmode=disable`,
/// `?ssl-mode=VERIFY_IDENTITY&ssl-ca=…`), which the bench's own admin sessions
/// leave out.
pub(super) fn split_query(url: &str) -> (&str, &str) {
    url.find('?').map_or((url, ""), |at| url.split_at(at))
}
