//! A fresh database per test on each kind of app: a SQLite file in a temporary
//! folder, or a uniquely named database on the machine's PostgreSQL or
//! MariaDB server, dropped when the test ends.
//!
//! A server that cannot be reached skips the test with a message saying so;
//! under `CI=true` it fails the test instead, so CI never passes by skipping.
//! Servers: `DUALSYNC_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and `DUALSYNC_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306`).

use dualsync_model::config::DatabaseUrl;
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod odata;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    Mariadb,
}

pub const ALL: [Kind; 3] = [Kind::Sqlite, Kind::Postgres, Kind::Mariadb];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
            Kind::Mariadb => "mariadb",
        }
    }

    /// A concrete column type for a portable one, so one DDL text serves every kind.
    pub fn ty(self, portable: &str) -> String {
        let t = match (self, portable) {
            (Kind::Mariadb, "key") => "VARCHAR(100)",
            (_, "key") => "TEXT",
            (_, "text") => "TEXT",
            (Kind::Sqlite, "int") => "INTEGER",
            (_, "int") => "BIGINT",
            (Kind::Postgres, "real") => "DOUBLE PRECISION",
            (Kind::Mariadb, "real") => "DOUBLE",
            (_, "real") => "REAL",
            (Kind::Mariadb, "decimal") => "DECIMAL(14,2)",
            (_, "decimal") => "NUMERIC(14,2)",
            (_, "bool") => "BOOLEAN",
            (Kind::Postgres, "blob") => "BYTEA",
            (Kind::Mariadb, "blob") => "LONGBLOB",
            (_, "blob") => "BLOB",
            (_, "date") => "DATE",
            (Kind::Mariadb, "timestamp") => "DATETIME(6)",
            (_, "timestamp") => "TIMESTAMP",
            (Kind::Mariadb, "longtext") => "LONGTEXT",
            (Kind::Mariadb, "cast_text") => "CHAR",
            (_, "cast_text") => "TEXT",
            (_, "longtext") => "TEXT",
            (_, other) => return other.to_string(),
        };
        t.to_string()
    }

    /// Replaces `{key}`, `{text}`, `{int}`… in DDL with this kind's types.
    pub fn ddl(self, portable: &str) -> String {
        let mut out = portable.to_string();
        for t in ["key", "text", "int", "real", "decimal", "bool", "blob", "date", "timestamp", "longtext", "cast_text"] {
            out = out.replace(&format!("{{{t}}}"), &self.ty(t));
        }
        out
    }
}

pub struct TestDb {
    pub kind: Kind,
    /// The URL to put in a config (no password: the servers here trust local users).
    pub url: String,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Test databases are named `dualsync_t<unix seconds>_<pid>_<n>`.
const PREFIX: &str = "dualsync_t";
/// A test database older than this was left by a run that died: dropped.
const LEFTOVER_SECONDS: u64 = 3 * 3600;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// When this test process started, once for all its databases.
fn started_at() -> u64 {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(now)
}

/// Whether a database name is a test database left behind by a run long gone.
fn is_leftover(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else { return false };
    let stamp = rest.split('_').next().and_then(|s| s.parse::<u64>().ok());
    // Names of the older PID-only form have no time: always leftovers once seen by a newer run.
    stamp.is_none_or(|t| t < 1_000_000_000 || t + LEFTOVER_SECONDS < now())
}

/// Drops leftovers once per test process (a run's own databases are never old enough).
fn sweep_postgres(c: &mut postgres::Client) {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let Ok(rows) = c.query("SELECT datname FROM pg_database WHERE datname LIKE 'dualsync\\_t%'", &[]) else { return };
        for name in rows.iter().map(|r| r.get::<_, String>(0)).filter(|n| is_leftover(n)) {
            drop_postgres(c, &name);
        }
    });
}

/// Drops a test database and the replication slots in it (which would keep it):
/// their sessions are ended first, since an active slot cannot be dropped.
fn drop_postgres(c: &mut postgres::Client, name: &str) {
    for _ in 0..50 {
        let _ = c.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL",
            &[&name],
        );
        let _ =
            c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active", &[&name]);
        let left = c.query_one("SELECT count(*) FROM pg_replication_slots WHERE database = $1", &[&name]).map(|r| r.get::<_, i64>(0));
        if left.map_or(true, |n| n == 0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

fn sweep_mysql(c: &mut mysql::Conn) {
    use mysql::prelude::Queryable;
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let Ok(names) = c.query::<String, _>("SHOW DATABASES LIKE 'dualsync\\_t%'") else { return };
        for name in names.into_iter().filter(|n| is_leftover(n)) {
            let _ = c.query_drop(format!("DROP DATABASE IF EXISTS {name}"));
        }
    });
}

impl TestDb {
    /// A new, empty database of this kind, or None when the server is not
    /// reachable outside CI (the reason is printed).
    pub fn new(kind: Kind) -> Option<TestDb> {
        // The start time and process make the name unique across runs (a PID alone repeats); the
        // time lets later runs sweep what a killed run left behind.
        let name = format!("{PREFIX}{}_{}_{}", started_at(), std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let created = match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join(format!("{name}.db"));
                rusqlite::Connection::open(&path).expect("create SQLite file");
                return Some(TestDb { kind, url: format!("sqlite://{}", path.display()), name, _dir: Some(dir) });
            }
            Kind::Postgres => postgres::Client::connect(&postgres_admin(), postgres::NoTls)
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    sweep_postgres(&mut c);
                    c.batch_execute(&format!("CREATE DATABASE {name}")).map_err(|e| e.to_string())
                })
                .map(|_| format!("{}/{name}", server_base(&postgres_admin()))),
            Kind::Mariadb => mysql::Conn::new(mysql::Opts::from_url(&mysql_admin()).expect("valid DUALSYNC_TEST_MYSQL"))
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    use mysql::prelude::Queryable;
                    sweep_mysql(&mut c);
                    c.query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
                        .map_err(|e| e.to_string())
                })
                .map(|_| format!("{}/{name}", mysql_admin().trim_end_matches('/'))),
        };
        match created {
            Ok(url) => Some(TestDb { kind, url, name, _dir: None }),
            Err(e) => {
                let server = if kind == Kind::Postgres { postgres_admin() } else { mysql_admin() };
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{} is not reachable at {server} ({e}); CI requires it: start the server (see .ci/run)", kind.name());
                }
                // Straight to the stderr handle: the test harness captures eprintln!, and a skip must be seen.
                use std::io::Write;
                let _ =
                    writeln!(std::io::stderr(), "SKIPPED: {} tests need the server at {server}, which is not reachable ({e})", kind.name());
                None
            }
        }
    }

    /// The database's name on its server.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn database_url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(&self.url, std::path::Path::new("/")).expect("test URL")
    }

    /// Runs statements (DDL, fixtures) with the database's own driver.
    pub fn exec(&self, sql: &str) {
        let sql = self.kind.ddl(sql);
        match self.kind {
            Kind::Sqlite => sqlite(&self.url).and_then(|c| c.execute_batch(&sql)).unwrap_or_else(|e| panic!("sqlite: {e}\n{sql}")),
            Kind::Postgres => postgres::Client::connect(&self.url, postgres::NoTls)
                .and_then(|mut c| c.batch_execute(&sql))
                .unwrap_or_else(|e| panic!("postgres: {e}\n{sql}")),
            Kind::Mariadb => {
                use mysql::prelude::Queryable;
                let mut c = mysql::Conn::new(mysql::Opts::from_url(&self.url).unwrap()).unwrap();
                c.query_drop(&sql).unwrap_or_else(|e| panic!("mariadb: {e}\n{sql}"));
            }
        }
    }

    /// The first column of a query's rows, as text (NULL as None), for assertions.
    pub fn texts(&self, sql: &str) -> Vec<Option<String>> {
        let sql = &self.kind.ddl(sql);
        match self.kind {
            Kind::Sqlite => {
                let c = sqlite(&self.url).unwrap();
                let mut s = c.prepare(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
                s.query_map([], |r| r.get::<_, Option<String>>(0)).unwrap().map(Result::unwrap).collect()
            }
            Kind::Postgres => {
                let mut c = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
                c.query(sql, &[]).unwrap_or_else(|e| panic!("{e}\n{sql}")).iter().map(|r| r.get::<_, Option<String>>(0)).collect()
            }
            Kind::Mariadb => {
                use mysql::prelude::Queryable;
                let mut c = mysql::Conn::new(mysql::Opts::from_url(&self.url).unwrap()).unwrap();
                c.query::<Option<String>, _>(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"))
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.kind {
            Kind::Sqlite => {}
            Kind::Postgres => {
                if let Ok(mut c) = postgres::Client::connect(&postgres_admin(), postgres::NoTls) {
                    drop_postgres(&mut c, &self.name);
                }
            }
            Kind::Mariadb => {
                if let Ok(mut c) = mysql::Conn::new(mysql::Opts::from_url(&mysql_admin()).unwrap()) {
                    use mysql::prelude::Queryable;
                    let _ = c.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
                }
            }
        }
    }
}

/// An app's SQLite file as the app would open it: waiting for dualsync's writes instead of failing.
fn sqlite(url: &str) -> rusqlite::Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(url.trim_start_matches("sqlite://"))?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(c)
}

fn postgres_admin() -> String {
    std::env::var("DUALSYNC_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn mysql_admin() -> String {
    std::env::var("DUALSYNC_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// `postgres://u@h:p/db` → `postgres://u@h:p`.
fn server_base(url: &str) -> String {
    match url.rfind('/') {
        Some(i) if i > url.find("://").map_or(0, |s| s + 2) => url[..i].to_string(),
        _ => url.to_string(),
    }
}

/// The folder of the test CA and certificates that `.ci/tls.sh` makes and the
/// local servers use (`DUALSYNC_TEST_TLS_DIR`), or None outside CI when it is
/// missing (the reason is printed).
pub fn tls_dir() -> Option<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(std::env::var("DUALSYNC_TEST_TLS_DIR").unwrap_or_else(|_| "/var/lib/dualsync-test-tls".into()));
    if dir.join("ca.crt").is_file() {
        return Some(dir);
    }
    let why = format!("the TLS tests need the test certificates of .ci/tls.sh in {}, which are missing", dir.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}; CI requires them: run `bash .ci/tls.sh` (as .ci/run does)");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
    None
}
