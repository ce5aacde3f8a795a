//! A test workspace: a temporary folder with two SQLite apps and a config.

use rusqlite::types::Value as Sql;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self, name: &str) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path(name)).expect("open test database")
    }

    pub fn exec(&self, db: &str, sql: &str) {
        self.db(db).execute_batch(sql).unwrap_or_else(|e| panic!("{db}: {e}\n{sql}"));
    }

    /// All rows of a query, as SQLite values.
    pub fn rows(&self, db: &str, sql: &str) -> Vec<Vec<Sql>> {
        let conn = self.db(db);
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{db}: {e}\n{sql}"));
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect()).unwrap().map(Result::unwrap).collect()
    }

    pub fn one(&self, db: &str, sql: &str) -> Sql {
        self.rows(db, sql).into_iter().next().and_then(|r| r.into_iter().next()).unwrap_or(Sql::Null)
    }

    pub fn count(&self, db: &str, sql: &str) -> i64 {
        match self.one(db, sql) {
            Sql::Integer(n) => n,
            other => panic!("not a count: {other:?}"),
        }
    }

    pub fn config(&self, text: &str) {
        std::fs::write(self.path("dualsync.toml"), text).unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.dir.path(), args)
    }
}

/// How long one dualsync command of a test may take before it is killed and the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dualsync"))
        .current_dir(dir)
        .env_remove("DUALSYNC_CONFIG")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dualsync");
    // Read both pipes while waiting, so a chatty command never blocks on a full pipe.
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped")));
    let stderr = read(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for dualsync") {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dualsync {args:?} ran for more than {COMMAND_TIMEOUT:?} and was killed\nstdout:\n{}\nstderr:\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run { code: status.code().unwrap_or(-1), stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() }
}

pub fn text(v: &Sql) -> &str {
    match v {
        Sql::Text(s) => s,
        other => panic!("not text: {other:?}"),
    }
}

/// A small random generator, seeded so that a failing run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// The seed of a randomized test: `DUALSYNC_TEST_SEED` to replay one, the clock otherwise.
pub fn test_seed() -> u64 {
    std::env::var("DUALSYNC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64)
}
