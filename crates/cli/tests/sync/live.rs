//! Change capture, incremental and live sync on real databases: inserts,
//! updates and deletes both ways, no echo, each conflict policy, pause and
//! resume, SIGTERM and SIGKILL of `dualsync run`, and concurrent writers;
//! on PostgreSQL with trigger capture and with log capture (`_from_the_log`),
//! and switching a running map between the two.

use crate::util::{test_seed, Rng, Run, Workspace};
use dualsync_testkit::{Kind, TestDb};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TABLE: &str = "CREATE TABLE item (k {key} PRIMARY KEY, name {text}, qty {int})";

/// Two apps `a` and `b` with an `item` table each, one map between them, the state store in the workspace.
struct Pair {
    w: Workspace,
    db: [TestDb; 2],
    /// Per side: whether its changes are read from the log (server apps with `capture = "log"`).
    log: [bool; 2],
}

/// How the server apps of a pair capture changes (SQLite apps keep triggers).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Capture {
    Trigger,
    Log,
}

impl Pair {
    fn new(kinds: [Kind; 2], policy: &str, extra: &str) -> Option<Pair> {
        Pair::capturing(kinds, Capture::Trigger, policy, extra)
    }

    fn capturing(kinds: [Kind; 2], capture: Capture, policy: &str, extra: &str) -> Option<Pair> {
        let db = [TestDb::new(kinds[0])?, TestDb::new(kinds[1])?];
        let log = kinds.map(|k| k != Kind::Sqlite && capture == Capture::Log);
        let setting = |side: usize| match (kinds[side], log[side]) {
            (Kind::Sqlite, _) => "",
            (_, true) => "capture = \"log\"",
            (_, false) => "capture = \"trigger\"",
        };
        for d in &db {
            d.exec(TABLE);
        }
        let w = Workspace::new();
        w.config(&format!(
            r#"
[state]
url = "sqlite://state.db"

[apps.a]
url = "{}"
{}
[apps.b]
url = "{}"
{}

[[maps]]
name = "items"
master = "a"
conflict = "{policy}"
{extra}
[maps.a]
table = "item"
key = "k"
[maps.b]
table = "item"
key = "k"
[[maps.columns]]
a = "k"
b = "k"
[[maps.columns]]
a = "name"
b = "name"
[[maps.columns]]
a = "qty"
b = "qty"
"#,
            db[0].url,
            setting(0),
            db[1].url,
            setting(1)
        ));
        Some(Pair { w, db, log })
    }

    fn exec(&self, side: usize, sql: &str) {
        self.db[side].exec(sql);
    }

    /// Every row as `k|name|qty`, in key order.
    fn dump(&self, side: usize) -> Vec<String> {
        self.db[side]
            .texts("SELECT concat(k, '|', coalesce(name, '∅'), '|', coalesce(CAST(qty AS {cast_text}), '∅')) FROM item ORDER BY k")
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }

    /// Rows in a trigger side's change table (none on a side read from the log).
    fn changes(&self, side: usize) -> usize {
        if self.log[side] {
            return 0;
        }
        self.count(side, "SELECT CAST(count(*) AS {cast_text}) FROM dualsync_changes")
    }

    /// A count read with a query (portable DDL placeholders allowed).
    fn count(&self, side: usize, sql: &str) -> usize {
        self.db[side].texts(sql)[0].as_deref().unwrap_or("0").parse().unwrap()
    }

    /// From now on, counts in each app's `captured(n)` every row that change
    /// capture inserts into its `dualsync_changes`: the changes the app's own
    /// statements made, plus any echo of dualsync's writes (which a trim of the
    /// change table cannot hide). Call it after `start`, which creates the table.
    fn count_captures(&self) {
        for d in self.db.iter().zip(self.log).filter(|(_, log)| !log).map(|(d, _)| d) {
            let sql: &[&str] = match d.kind {
                Kind::Sqlite => &["CREATE TABLE captured (n INTEGER NOT NULL); INSERT INTO captured VALUES (0);
                     CREATE TRIGGER count_captures AFTER INSERT ON dualsync_changes BEGIN UPDATE captured SET n = n + 1; END;"],
                Kind::Postgres => &["CREATE TABLE captured (n bigint NOT NULL); INSERT INTO captured VALUES (0);
                     CREATE FUNCTION count_captures() RETURNS trigger LANGUAGE plpgsql AS $$
                         BEGIN UPDATE captured SET n = n + 1; RETURN NULL; END $$;
                     CREATE TRIGGER count_captures AFTER INSERT ON dualsync_changes FOR EACH ROW EXECUTE FUNCTION count_captures();"],
                Kind::Mariadb => &[
                    "CREATE TABLE captured (n BIGINT NOT NULL)",
                    "INSERT INTO captured VALUES (0)",
                    "CREATE TRIGGER count_captures AFTER INSERT ON dualsync_changes FOR EACH ROW UPDATE captured SET n = n + 1",
                ],
            };
            sql.iter().for_each(|s| d.exec(s));
        }
    }

    /// Rows change capture inserted into each trigger app's `dualsync_changes` since `count_captures` (None for a side read from the log).
    fn captured(&self) -> [Option<usize>; 2] {
        [0, 1].map(|side| (!self.log[side]).then(|| self.count(side, "SELECT CAST(n AS {cast_text}) FROM captured")))
    }

    /// From now on, logs in `item_writes(op)` every row inserted into or updated in `item` of one app.
    fn count_item_writes(&self, side: usize) {
        let d = &self.db[side];
        let sql: &[&str] = match d.kind {
            Kind::Sqlite => &["CREATE TABLE item_writes (op TEXT NOT NULL);
                 CREATE TRIGGER count_item_inserts AFTER INSERT ON item BEGIN INSERT INTO item_writes VALUES ('INSERT'); END;
                 CREATE TRIGGER count_item_updates AFTER UPDATE ON item BEGIN INSERT INTO item_writes VALUES ('UPDATE'); END;"],
            Kind::Postgres => &["CREATE TABLE item_writes (op text NOT NULL);
                 CREATE FUNCTION count_item_writes() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN INSERT INTO item_writes VALUES (TG_OP); RETURN NULL; END $$;
                 CREATE TRIGGER count_item_writes AFTER INSERT OR UPDATE ON item FOR EACH ROW EXECUTE FUNCTION count_item_writes();"],
            Kind::Mariadb => &[
                "CREATE TABLE item_writes (op VARCHAR(6) NOT NULL)",
                "CREATE TRIGGER count_item_inserts AFTER INSERT ON item FOR EACH ROW INSERT INTO item_writes VALUES ('INSERT')",
                "CREATE TRIGGER count_item_updates AFTER UPDATE ON item FOR EACH ROW INSERT INTO item_writes VALUES ('UPDATE')",
            ],
        };
        sql.iter().for_each(|s| d.exec(s));
    }

    /// Rows `k<from>`…`k<to - 1>` into a, a statement per 100.
    fn insert_items(&self, from: usize, to: usize) {
        for batch in (from..to).step_by(100) {
            let values: Vec<String> = (batch..batch + 100).map(|i| format!("('k{i:05}', 'name {i}', {i})")).collect();
            self.exec(0, &format!("INSERT INTO item VALUES {}", values.join(", ")));
        }
    }

    /// Rows inserted into and updated in `item` of one app since `count_item_writes`.
    fn item_writes(&self, side: usize) -> (usize, usize) {
        let n = |op: &str| self.count(side, &format!("SELECT CAST(count(*) AS {{cast_text}}) FROM item_writes WHERE op = '{op}'"));
        (n("INSERT"), n("UPDATE"))
    }

    /// Waits until a query's count reaches `n`, for at most `within`.
    fn wait_count(&self, side: usize, sql: &str, n: usize, within: Duration) {
        let end = Instant::now() + within;
        loop {
            let now = self.count(side, sql);
            if now == n {
                return;
            }
            assert!(Instant::now() < end, "waited {within:?} for {n} from {sql}: {now}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.w.run(args)
    }

    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "{args:?}\n{}\n{}", run.stdout, run.stderr);
        run
    }

    fn spawn_run(&self) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_dualsync"))
            .current_dir(self.w.dir.path())
            .env_remove("DUALSYNC_CONFIG")
            .args(["run", "--poll-ms", "5"])
            // Into a file: a pipe nobody reads would fill up and block the process.
            .stdout(Stdio::from(std::fs::File::create(self.w.path("run.out")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(self.w.path("run.err")).unwrap()))
            .spawn()
            .expect("start dualsync run");
        Running(child)
    }

    /// Waits until both apps hold the same rows (and `expect`, when given).
    fn converge(&self, expect: Option<&[&str]>, within: Duration) {
        if let Err(e) = self.try_converge(expect, within) {
            panic!("{e}");
        }
    }

    fn try_converge(&self, expect: Option<&[&str]>, within: Duration) -> Result<(), String> {
        let end = Instant::now() + within;
        loop {
            let (a, b) = (self.dump(0), self.dump(1));
            let wanted = expect.is_none_or(|e| a == e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            if a == b && wanted {
                return Ok(());
            }
            if Instant::now() > end {
                let differ: Vec<_> = a.iter().filter(|r| !b.contains(r)).chain(b.iter().filter(|r| !a.contains(r))).collect();
                return Err(format!(
                    "the apps did not converge within {within:?}: rows on one side only: {differ:?}\nexpected: {expect:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A `dualsync run` child, killed if a failing test leaves it running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: sends a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

impl Pair {
    /// Stops `dualsync run` with SIGTERM and returns its output; it must exit 0.
    fn terminate(&self, mut running: Running) -> String {
        let child = &mut running.0;
        signal(child, libc::SIGTERM);
        let end = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < end, "dualsync run did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let read = |f: &str| std::fs::read_to_string(self.w.path(f)).unwrap_or_default();
        let text = format!("{}{}", read("run.out"), read("run.err"));
        assert_eq!(status.code(), Some(0), "SIGTERM must finish the batch and exit 0:\n{text}");
        text
    }
}

/// The changes `dualsync run` reported reading (`items: N changes → …` lines).
fn changes_read(run_output: &str) -> usize {
    run_output.lines().filter_map(|l| l.strip_prefix("items: ")?.split(' ').next()?.parse::<usize>().ok()).sum()
}

fn live_both_ways(kinds: [Kind; 2], capture: Capture) {
    let Some(p) = Pair::capturing(kinds, capture, "master", "") else { return };
    p.exec(0, "INSERT INTO item VALUES ('k1', 'one', 1), ('k2', 'two', 2)");
    p.exec(1, "INSERT INTO item VALUES ('k3', 'three', 3)");
    p.ok(&["start", "items"]);
    p.count_captures();
    p.converge(Some(&["k1|one|1", "k2|two|2", "k3|three|3"]), Duration::from_secs(5));
    let child = p.spawn_run();
    // Three changes on a, four on b.
    p.exec(0, "INSERT INTO item VALUES ('k4', 'four \"quoted\", with comma', 4)");
    p.exec(1, "UPDATE item SET name = 'two (crm)' WHERE k = 'k2'");
    p.exec(0, "DELETE FROM item WHERE k = 'k3'");
    p.exec(1, "INSERT INTO item VALUES ('k5', NULL, 5)");
    p.exec(0, "UPDATE item SET qty = 10 WHERE k = 'k1'");
    p.exec(1, "DELETE FROM item WHERE k = 'k5'");
    p.exec(1, "INSERT INTO item VALUES ('k6', '', NULL)");
    p.converge(Some(&["k1|one|10", "k2|two (crm)|2", "k4|four \"quoted\", with comma|4", "k6||∅"]), Duration::from_secs(15));
    // No echo: capture recorded exactly the test's own changes. Each write of dualsync's commits with
    // whatever capture makes of it, so once converged an echo would already be counted here.
    let own = [3, 4].map(Some);
    let own = [0, 1].map(|s| own[s].filter(|_| !p.log[s]));
    assert_eq!(p.captured(), own, "dualsync's own writes were captured back (rows captured on a and b; the apps made {own:?})");
    // The change tables are trimmed once reconciled.
    let end = Instant::now() + Duration::from_secs(10);
    while p.changes(0) + p.changes(1) > 0 {
        assert!(Instant::now() < end, "the change tables keep rows: {} and {}", p.changes(0), p.changes(1));
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = p.terminate(child);
    assert_eq!(p.captured(), own, "dualsync's own writes were captured back after converging:\n{out}");
    assert_eq!(changes_read(&out), 7, "run read exactly the apps' own 7 changes, none of its own writes:\n{out}");
    let status = p.ok(&["--format", "json", "status"]).json();
    assert_eq!(status["maps"][0]["state"], "running");
    assert_eq!(status["maps"][0]["lag"], serde_json::json!([0, 0]));
    // k5 inserted then deleted on b counts two writes, or none when both changes arrive in one batch.
    let written = status["maps"][0]["written"].as_u64().unwrap();
    assert!(status["maps"][0]["last_run"] == 2 && (written == 5 || written == 7), "the live run is the map's last run: {status}");
}

#[test]
fn live_sync_sqlite_to_sqlite() {
    live_both_ways([Kind::Sqlite, Kind::Sqlite], Capture::Trigger);
}

#[test]
fn live_sync_postgres_to_postgres() {
    live_both_ways([Kind::Postgres, Kind::Postgres], Capture::Trigger);
}

#[test]
fn live_sync_postgres_to_postgres_from_the_log() {
    live_both_ways([Kind::Postgres, Kind::Postgres], Capture::Log);
}

#[test]
fn live_sync_sqlite_to_postgres() {
    live_both_ways([Kind::Sqlite, Kind::Postgres], Capture::Trigger);
}

#[test]
fn live_sync_sqlite_to_postgres_from_the_log() {
    live_both_ways([Kind::Sqlite, Kind::Postgres], Capture::Log);
}

#[test]
fn live_sync_mariadb_to_sqlite() {
    live_both_ways([Kind::Mariadb, Kind::Sqlite], Capture::Trigger);
}

#[test]
fn live_sync_mariadb_to_mariadb_from_the_log() {
    live_both_ways([Kind::Mariadb, Kind::Mariadb], Capture::Log);
}

#[test]
fn live_sync_mariadb_to_postgres_from_the_log() {
    live_both_ways([Kind::Mariadb, Kind::Postgres], Capture::Log);
}

#[test]
fn incremental_sync_writes_only_changed_keys_and_never_echoes() {
    let cases = [
        ([Kind::Sqlite, Kind::Sqlite], Capture::Trigger),
        ([Kind::Postgres, Kind::Sqlite], Capture::Trigger),
        ([Kind::Postgres, Kind::Sqlite], Capture::Log),
    ];
    for (kinds, capture) in cases {
        let Some(p) = Pair::capturing(kinds, capture, "master", "") else { return };
        p.exec(0, "INSERT INTO item VALUES ('k1', 'one', 1), ('k2', 'two', 2)");
        p.ok(&["start", "items"]);
        assert_eq!((p.changes(0), p.changes(1)), (0, 0), "the initial sync's writes are not captured");
        p.count_captures();
        p.exec(0, "UPDATE item SET name = 'ONE' WHERE k = 'k1'");
        assert_eq!(p.changes(0), usize::from(!p.log[0]));
        // A PostgreSQL change is read once every older write transaction in its database has ended.
        let end = Instant::now() + Duration::from_secs(15);
        let run = loop {
            let run = p.ok(&["--format", "json", "sync"]).json();
            if run["maps"] != serde_json::json!([]) || Instant::now() > end {
                break run;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(run["maps"][0]["changes"], 1, "{run}");
        assert_eq!(run["maps"][0]["updated"], serde_json::json!([0, 1]), "{run}");
        assert_eq!(p.dump(1), vec!["k1|ONE|1", "k2|two|2"]);
        // Counted by a trigger on the change tables: a capture that a sync reconciled and trimmed still counts.
        assert_eq!(p.captured(), [(!p.log[0]).then_some(1), Some(0)], "the write into b was not captured as b's change ({kinds:?})");
        let again = p.ok(&["--format", "json", "sync"]).json();
        assert_eq!(again["maps"], serde_json::json!([]), "a second sync reads no change: {again}");
        // --full still diffs everything.
        let full = p.ok(&["--format", "json", "sync", "--full"]).json();
        assert_eq!(full["totals"]["unchanged"], 2, "{full}");
        assert_eq!(p.captured(), [(!p.log[0]).then_some(1), Some(0)], "nothing dualsync wrote was captured ({kinds:?})");
    }
}

/// Both apps change the same row: a's name and b's name and qty.
fn conflict_case(policy: &str) -> Option<Pair> {
    let p = Pair::new([Kind::Sqlite, Kind::Sqlite], policy, "")?;
    p.exec(0, "INSERT INTO item VALUES ('k1', 'base', 1)");
    p.ok(&["start", "items"]);
    p.exec(0, "UPDATE item SET name = 'from a' WHERE k = 'k1'");
    std::thread::sleep(Duration::from_millis(5));
    p.exec(1, "UPDATE item SET name = 'from b', qty = 2 WHERE k = 'k1'");
    Some(p)
}

#[test]
fn each_conflict_policy_settles_a_conflict_its_way_and_records_it() {
    for (policy, expect) in [("master", "k1|from a|1"), ("latest", "k1|from b|2"), ("merge", "k1|from a|2")] {
        let Some(p) = conflict_case(policy) else { return };
        p.ok(&["sync"]);
        assert_eq!(p.dump(0), vec![expect], "{policy}");
        assert_eq!(p.dump(1), vec![expect], "{policy}");
        let list = p.ok(&["--format", "json", "conflicts", "--all"]).json();
        assert_eq!(list.as_array().unwrap().len(), 1, "{policy}: {list}");
        assert_eq!(list[0]["columns"], serde_json::json!(["name"]), "{policy}");
        assert_eq!(list[0]["status"], "resolved");
        assert!(list[0]["resolution"].as_str().unwrap().starts_with(policy), "{list}");
    }
}

#[test]
fn a_manual_conflict_waits_in_the_queue_until_resolved() {
    let Some(p) = conflict_case("manual") else { return };
    p.ok(&["sync"]);
    assert_eq!(p.dump(0), vec!["k1|from a|1"], "nothing is written while it waits");
    assert_eq!(p.dump(1), vec!["k1|from b|2"]);
    let list = p.ok(&["--format", "json", "conflicts"]).json();
    assert_eq!(list[0]["status"], "open", "{list}");
    assert!(list[0]["values"][1].as_str().unwrap().contains("from b"), "{list}");
    let id = list[0]["id"].as_i64().unwrap().to_string();
    // Another sync leaves it alone.
    p.ok(&["sync"]);
    assert_eq!(p.dump(0), vec!["k1|from a|1"]);
    let bad = p.run(&["resolve", &id, "--take", "nope"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--take names one of them"), "{}", bad.stderr);
    p.ok(&["resolve", &id, "--take", "b"]);
    assert_eq!(p.dump(0), vec!["k1|from b|2"]);
    assert_eq!(p.dump(1), vec!["k1|from b|2"]);
    assert_eq!(p.ok(&["--format", "json", "conflicts"]).json(), serde_json::json!([]));
    // The resolved row is the new base: a later change on one side flows.
    p.exec(1, "UPDATE item SET qty = 3 WHERE k = 'k1'");
    p.ok(&["sync"]);
    assert_eq!(p.dump(0), vec!["k1|from b|3"]);
}

#[test]
fn a_delete_against_an_update_is_a_conflict_and_on_delete_ignore_keeps_rows() {
    let Some(p) = Pair::new([Kind::Sqlite, Kind::Sqlite], "master", "") else { return };
    p.exec(0, "INSERT INTO item VALUES ('k1', 'x', 1), ('k2', 'y', 2)");
    p.ok(&["start", "items"]);
    p.exec(1, "DELETE FROM item WHERE k IN ('k1', 'k2')");
    p.exec(0, "UPDATE item SET qty = 9 WHERE k = 'k1'");
    p.ok(&["sync"]);
    // k2 is deleted on a too; k1 changed on a (the master) since: it comes back to b.
    assert_eq!(p.dump(0), vec!["k1|x|9"]);
    assert_eq!(p.dump(1), vec!["k1|x|9"]);
    assert_eq!(p.ok(&["--format", "json", "conflicts", "--all"]).json().as_array().unwrap().len(), 1);

    let Some(q) = Pair::new([Kind::Sqlite, Kind::Sqlite], "master", "on_delete = \"ignore\"") else { return };
    q.exec(0, "INSERT INTO item VALUES ('k1', 'x', 1)");
    q.ok(&["start", "items"]);
    q.exec(1, "DELETE FROM item WHERE k = 'k1'");
    q.ok(&["sync"]);
    assert_eq!(q.dump(0), vec!["k1|x|1"], "on_delete = ignore leaves the other app's row");
}

/// A second map for `Pair`'s config: `other (k, name)` of a and b.
const OTHERS: &str = r#"
[[maps]]
name = "others"
master = "a"
[maps.a]
table = "other"
key = "k"
[maps.b]
table = "other"
key = "k"
[[maps.columns]]
a = "k"
b = "k"
[[maps.columns]]
a = "name"
b = "name"
"#;

#[test]
fn a_paused_map_queues_its_changes_and_applies_them_on_resume() {
    paused_map_case([Kind::Sqlite, Kind::Postgres], Capture::Trigger);
}

/// The paused map's changes wait in the slot (the binary log), which keeps them.
#[test]
fn a_paused_map_queues_its_changes_and_applies_them_on_resume_from_the_log() {
    paused_map_case([Kind::Postgres, Kind::Sqlite], Capture::Log);
    paused_map_case([Kind::Mariadb, Kind::Sqlite], Capture::Log);
}

fn paused_map_case(kinds: [Kind; 2], capture: Capture) {
    let Some(p) = Pair::capturing(kinds, capture, "master", "") else { return };
    // A second map keeps flowing while `items` is paused: its rows arriving prove that `run` is at work.
    for d in &p.db {
        d.exec("CREATE TABLE other (k {key} PRIMARY KEY, name {text})");
    }
    let config = std::fs::read_to_string(p.w.path("dualsync.toml")).unwrap();
    p.w.config(&format!("{config}{OTHERS}"));
    p.exec(0, "INSERT INTO item VALUES ('k1', 'x', 1)");
    p.ok(&["start", "items", "--skip-initial"]);
    p.ok(&["start", "others"]);
    assert_eq!(p.dump(1), Vec::<String>::new(), "--skip-initial copies nothing");
    let child = p.spawn_run();
    // Inserts a row of `others` on a and waits until `run` has copied it to b.
    let mut sent = 0;
    let mut flow = || {
        sent += 1;
        p.exec(0, &format!("INSERT INTO other VALUES ('o{sent}', 'n')"));
        p.wait_count(1, "SELECT CAST(count(*) AS {cast_text}) FROM other", sent, Duration::from_secs(15));
    };
    // `run` is live before the pause.
    flow();
    p.ok(&["pause", "items"]);
    // A round of `run` reads the map states as it begins. The round that copies the second row
    // began after the first had arrived, so after the pause: from then on every round sees it.
    flow();
    flow();
    for i in 2..=5 {
        p.exec(0, &format!("INSERT INTO item VALUES ('k{i}', 'n{i}', {i})"));
    }
    p.exec(0, "UPDATE item SET qty = 20 WHERE k = 'k2'");
    p.exec(0, "DELETE FROM item WHERE k = 'k3'");
    // Likewise a whole round of `run` began after the writes above and ended: it would have applied them.
    flow();
    flow();
    assert_eq!(p.dump(1), Vec::<String>::new(), "a paused map writes nothing");
    let status = p.ok(&["--format", "json", "status"]).json();
    assert_eq!(status["maps"][0]["map"], "items");
    assert_eq!(status["maps"][0]["state"], "paused");
    if p.log[0] {
        assert_eq!(status["maps"][0]["capture"][0]["capture"], "log", "{status}");
        if p.db[0].kind == Kind::Postgres {
            assert!(status["maps"][0]["capture"][0]["retained_bytes"].as_u64().unwrap() > 0, "the slot keeps the WAL: {status}");
        }
    } else {
        assert_eq!(p.count(0, "SELECT CAST(count(*) AS {cast_text}) FROM dualsync_changes WHERE tbl = 'item'"), 6, "its changes wait");
        assert_eq!(status["maps"][0]["lag"], serde_json::json!([6, 0]));
    }
    assert_eq!(status["maps"][1]["state"], "running", "{status}");
    p.ok(&["resume", "items"]);
    // k1 predates capture (skipped initial sync): it stays on a only.
    let end = Instant::now() + Duration::from_secs(15);
    while p.dump(1) != vec!["k2|n2|20", "k4|n4|4", "k5|n5|5"] {
        assert!(Instant::now() < end, "resume did not apply the queue: {:?}", p.dump(1));
        std::thread::sleep(Duration::from_millis(20));
    }
    p.terminate(child);
}

#[test]
fn sigterm_and_sigkill_of_run_lose_nothing_and_double_nothing() {
    sigkill_case([Kind::Sqlite, Kind::Postgres], Capture::Trigger);
}

/// Killed mid-stream, `run` resumes from the slot's confirmed place (the binlog position) and the saved cursor.
#[test]
fn sigterm_and_sigkill_of_run_lose_nothing_and_double_nothing_from_the_log() {
    sigkill_case([Kind::Postgres, Kind::Sqlite], Capture::Log);
    sigkill_case([Kind::Mariadb, Kind::Sqlite], Capture::Log);
}

fn sigkill_case(kinds: [Kind; 2], capture: Capture) {
    let Some(p) = Pair::capturing(kinds, capture, "master", "") else { return };
    p.ok(&["start", "items"]);
    // Only dualsync writes into b: every row it inserts or updates there is logged.
    p.count_item_writes(1);
    let writer = |from: usize, to: usize| p.insert_items(from, to);
    let on_b = "SELECT CAST(count(*) AS {cast_text}) FROM item";
    let child = p.spawn_run();
    writer(0, 100);
    // `run` is live: the first 100 rows reached b (so the update below updates them there).
    p.wait_count(1, on_b, 100, Duration::from_secs(15));
    writer(100, 3000);
    signal(&child.0, libc::SIGKILL);
    let mut child = child;
    child.0.wait().unwrap();
    writer(3000, 4000);
    p.exec(0, "UPDATE item SET qty = qty + 1000000 WHERE k < 'k00100'");
    let before = p.count(1, on_b);
    let child = p.spawn_run();
    // SIGTERM once the second run is at work (or done).
    let end = Instant::now() + Duration::from_secs(15);
    while p.count(1, on_b) == before {
        assert!(Instant::now() < end, "the second run wrote nothing into b");
        std::thread::sleep(Duration::from_millis(5));
    }
    p.terminate(child);
    writer(4000, 5000);
    let child = p.spawn_run();
    p.converge(None, Duration::from_secs(30));
    p.terminate(child);
    assert_eq!(p.dump(1).len(), 5000);
    assert_eq!(p.db[1].texts("SELECT CAST(qty AS {cast_text}) FROM item WHERE k = 'k00042'"), vec![Some("1000042".to_string())]);
    // Applied once: each row inserted into b once, and each of the 100 updated rows updated once.
    assert_eq!(p.item_writes(1), (5000, 100), "rows inserted into and updated in b by dualsync");
}

#[test]
fn an_alert_rule_pauses_a_map_and_status_says_why() {
    let Some(p) = Pair::new([Kind::Sqlite, Kind::Sqlite], "master", "alert_errors = 2\nalert_minutes = 5") else { return };
    p.exec(1, "DROP TABLE item; CREATE TABLE item (k TEXT PRIMARY KEY, name TEXT NOT NULL, qty INTEGER)");
    p.ok(&["start", "items"]);
    p.exec(0, "INSERT INTO item VALUES ('k1', NULL, 1), ('k2', NULL, 2), ('k3', 'fine', 3)");
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert_eq!(p.dump(1), vec!["k3|fine|3"], "the good row went through");
    let status = p.ok(&["status"]);
    assert!(status.stdout.contains("items is paused: alert: 2 failed rows in the last 5 minutes"), "{}", status.stdout);
    let errors = p.ok(&["--format", "json", "errors"]).json();
    assert_eq!(errors.as_array().unwrap().len(), 2);
}

#[test]
fn live_commands_say_what_is_wrong() {
    let Some(p) = Pair::new([Kind::Sqlite, Kind::Sqlite], "master", "") else { return };
    let run = p.run(&["pause", "items"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("map items is stopped; start it with `dualsync start items`"), "{}", run.stderr);
    let run = p.run(&["start", "nope"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("there is no map named \"nope\"; maps in the config: items"), "{}", run.stderr);
    p.ok(&["start", "items", "--skip-initial"]);
    let run = p.run(&["start", "items"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("already started (running)"), "{}", run.stderr);
    // Capture removed behind dualsync's back: the map pauses with the reason.
    p.exec(0, "DROP TRIGGER dualsync_item_i");
    p.exec(0, "DROP TABLE dualsync_changes");
    let check = p.run(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(check.stdout.contains("map items is running but a.item has no change capture"), "{}", check.stdout);
    assert!(check.stdout.contains("`dualsync stop items` then `dualsync start items`"), "{}", check.stdout);
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("change capture is missing or damaged: run `dualsync stop items` and `dualsync start items`"),
        "{}",
        run.stderr
    );
    assert!(p.ok(&["status"]).stdout.contains("items is paused: "), "the map waits for a person");
    p.ok(&["stop", "items"]);
    assert!(p.db[1].texts("SELECT name FROM sqlite_master WHERE type = 'trigger'").is_empty(), "stop removes the triggers");
    assert_eq!(p.ok(&["--format", "json", "status"]).json()["maps"][0]["state"], "stopped");
}

/// Random inserts, updates and deletes on one app until `until`.
fn random_writer(db: &TestDb, seed: u64, until: Instant) -> usize {
    let mut rng = Rng::new(seed);
    let names = ["plain", "O'Brien", "say \"hi\"", "a,b;c", "line\nbreak", "émoji 🚀", "", "مرحبا"];
    let mut ops = 0;
    while Instant::now() < until {
        let k = format!("k{:03}", rng.below(300));
        let name = rng.pick(&names).replace('\'', "''");
        let qty = rng.below(1000);
        let sql = match rng.below(10) {
            0..=3 => format!("INSERT INTO item VALUES ('{k}', '{name}', {qty}) ON CONFLICT (k) DO NOTHING"),
            4..=7 => format!("UPDATE item SET name = '{name}', qty = {qty} WHERE k = '{k}'"),
            8 => format!("UPDATE item SET qty = NULL WHERE k = '{k}'"),
            _ => format!("DELETE FROM item WHERE k = '{k}'"),
        };
        db.exec(&sql);
        ops += 1;
        std::thread::sleep(Duration::from_millis(rng.below(8) as u64));
    }
    ops
}

/// Concurrent writers on both apps while `dualsync run` runs, then quiet: the apps end identical.
#[test]
fn random_concurrent_writers_on_both_apps_end_identical() {
    random_writers_case(Capture::Trigger);
}

#[test]
fn random_concurrent_writers_on_both_apps_end_identical_from_the_log() {
    random_writers_case(Capture::Log);
}

fn random_writers_case(capture: Capture) {
    let Some(p) = Pair::capturing([Kind::Sqlite, Kind::Postgres], capture, "latest", "") else { return };
    let seed = test_seed();
    let seconds = std::env::var("DUALSYNC_RANDOM_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    // Straight to stderr: the seed must be seen to repeat a failure (DUALSYNC_TEST_SEED).
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "random_concurrent_writers: seed {seed}, {seconds} s");
    p.ok(&["start", "items"]);
    let child = p.spawn_run();
    let until = Instant::now() + Duration::from_secs(seconds);
    let ops = std::thread::scope(|s| {
        let a = s.spawn(|| random_writer(&p.db[0], seed, until));
        let b = s.spawn(|| random_writer(&p.db[1], seed.rotate_left(17), until));
        a.join().unwrap() + b.join().unwrap()
    });
    let converged = p.try_converge(None, Duration::from_secs(60));
    let out = p.terminate(child);
    if let Err(e) = converged {
        panic!("seed {seed}: {e}\n{out}");
    }
    assert!(ops > 100, "the writers wrote: {ops} (seed {seed})");
    assert!(!p.dump(0).is_empty(), "seed {seed}: {out}");
}

/// `start` while both apps keep changing: every change made during the initial sync arrives.
#[test]
fn changes_made_during_the_initial_sync_are_not_lost() {
    initial_sync_case(Capture::Trigger);
}

#[test]
fn changes_made_during_the_initial_sync_are_not_lost_from_the_log() {
    initial_sync_case(Capture::Log);
}

fn initial_sync_case(capture: Capture) {
    let Some(p) = Pair::capturing([Kind::Sqlite, Kind::Postgres], capture, "master", "") else { return };
    let rows = |prefix: &str, n: usize| (0..n).map(|i| format!("('{prefix}{i:05}', 'n{i}', {i})")).collect::<Vec<_>>().join(", ");
    p.exec(0, &format!("INSERT INTO item VALUES {}", rows("a", 20_000)));
    p.exec(1, &format!("INSERT INTO item VALUES {}", rows("b", 20_000)));
    let writes = std::thread::scope(|s| {
        let started = s.spawn(|| p.run(&["start", "items"]));
        let mut writes = 0;
        while !started.is_finished() {
            // Each side changes its own rows, adds rows and deletes some.
            let i = writes % 20_000;
            p.exec(0, &format!("UPDATE item SET name = 'changed during start' WHERE k = 'a{i:05}'"));
            p.exec(1, &format!("UPDATE item SET qty = -1 WHERE k = 'b{i:05}'"));
            p.exec(0, &format!("INSERT INTO item VALUES ('new-a{writes:05}', 'x', 1)"));
            p.exec(1, &format!("DELETE FROM item WHERE k = 'b{:05}'", 19_999 - i));
            writes += 1;
        }
        assert_eq!(started.join().unwrap().code, 0);
        writes
    });
    assert!(writes > 5, "the writer ran during the initial sync ({writes} rounds)");
    // Incremental syncs until both hold the same (a PostgreSQL change waits for older write transactions in its database).
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        p.ok(&["sync"]);
        match p.try_converge(None, Duration::from_millis(200)) {
            Ok(()) => break,
            Err(e) if Instant::now() > end => panic!("{e}"),
            Err(_) => {}
        }
    }
    let a = p.dump(0);
    for i in 0..writes {
        let j = i % 20_000;
        assert!(a.contains(&format!("a{j:05}|changed during start|{j}")), "update of a{j:05} on a lost");
        assert!(a.contains(&format!("b{j:05}|n{j}|-1")) || 19_999 - j < writes, "update of b{j:05} on b lost");
        assert!(a.contains(&format!("new-a{i:05}|x|1")), "insert new-a{i:05} lost");
        assert!(!a.iter().any(|r| r.starts_with(&format!("b{:05}|", 19_999 - j))), "delete of b{:05} lost", 19_999 - j);
    }
}

#[test]
fn an_import_into_a_started_map_reaches_the_other_app_without_capture() {
    let cases = [
        ([Kind::Sqlite, Kind::Sqlite], Capture::Trigger),
        ([Kind::Postgres, Kind::Sqlite], Capture::Trigger),
        ([Kind::Postgres, Kind::Sqlite], Capture::Log),
    ];
    for (kinds, capture) in cases {
        let Some(p) = Pair::capturing(kinds, capture, "master", "") else { return };
        p.exec(0, "INSERT INTO item VALUES ('k1', 'old', 1)");
        p.ok(&["start", "items"]);
        std::fs::write(p.w.path("in.csv"), "k,name,qty\nk1,\"new, \"\"quoted\"\"\",2\nk2,,3\nk3,\"\",\n").unwrap();
        let run = p.ok(&["--format", "json", "import", "--map", "items", "--app", "a", "--in", "in.csv"]).json();
        assert_eq!(run["propagated"]["inserted"], serde_json::json!([0, 2]), "{run}");
        assert_eq!(run["propagated"]["updated"], serde_json::json!([0, 1]), "{run}");
        let expect = vec!["k1|new, \"quoted\"|2", "k2|∅|3", "k3||∅"];
        assert_eq!(p.dump(0), expect, "{kinds:?}");
        assert_eq!(p.dump(1), expect, "{kinds:?}");
        assert_eq!((p.changes(0), p.changes(1)), (0, 0), "the import and its propagation are dualsync's writes: not captured");
        assert_eq!(p.ok(&["--format", "json", "sync"]).json()["maps"], serde_json::json!([]), "nothing left to reconcile");
    }
}

#[test]
fn bootstrap_company_on_a_started_map_takes_the_rows_to_the_other_app() {
    let w = Workspace::new();
    w.exec("a.db", "CREATE TABLE item (co TEXT, k TEXT NOT NULL, name TEXT, UNIQUE (co, k))");
    w.exec("b.db", "CREATE TABLE item (co TEXT, k TEXT NOT NULL, name TEXT, UNIQUE (co, k))");
    w.config(
        r#"
[apps.a]
url = "sqlite://a.db"
[apps.b]
url = "sqlite://b.db"
[[maps]]
name = "items"
[maps.a]
table = "item"
key = "k"
company = "co"
[maps.b]
table = "item"
key = "k"
company = "co"
[[maps.columns]]
a = "k"
b = "k"
[[maps.columns]]
a = "name"
b = "name"
"#,
    );
    w.exec("a.db", "INSERT INTO item VALUES ('C1', 'k1', 'with company'), (NULL, 'k2', 'no company yet')");
    let start = w.run(&["start", "items"]);
    assert_eq!(start.code, 0, "{}{}", start.stdout, start.stderr);
    assert_eq!(w.count("b.db", "SELECT count(*) FROM item"), 1);
    let run = w.run(&["--format", "json", "bootstrap-company", "--map", "items", "--app", "a", "--company", "C1"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["propagated"]["inserted"], serde_json::json!([0, 1]), "{}", run.stdout);
    assert_eq!(w.count("b.db", "SELECT count(*) FROM item WHERE co = 'C1' AND k = 'k2' AND name = 'no company yet'"), 1);
}

/// A running map switched from triggers to the log and back, with writes
/// going on the whole time: every write arrives once.
#[test]
fn switching_capture_on_a_running_map_loses_nothing() {
    let Some(p) = Pair::capturing([Kind::Postgres, Kind::Sqlite], Capture::Trigger, "master", "") else { return };
    p.ok(&["start", "items"]);
    p.count_item_writes(1);
    let config = std::fs::read_to_string(p.w.path("dualsync.toml")).unwrap();
    let mut next = 0;
    let mut write = |n: usize| {
        for _ in 0..n {
            p.exec(0, &format!("INSERT INTO item VALUES ('k{next:04}', 'n', {next})"));
            next += 1;
        }
    };
    for (round, capture) in ["log", "trigger", "log"].into_iter().enumerate() {
        let child = p.spawn_run();
        write(50);
        p.wait_count(1, "SELECT CAST(count(*) AS {cast_text}) FROM item", 50 * (2 * round + 1), Duration::from_secs(20));
        p.terminate(child);
        // Writes while no process runs, then the config asks for the other capture.
        write(50);
        p.w.config(&config.replace("capture = \"trigger\"", &format!("capture = \"{capture}\"")));
        let check = p.ok(&["--format", "json", "check"]).json();
        assert_eq!(check["apps"][0]["capture"], capture, "{check}");
        let child = p.spawn_run();
        p.wait_count(1, "SELECT CAST(count(*) AS {cast_text}) FROM item", 50 * (2 * round + 2), Duration::from_secs(20));
        let out = p.terminate(child);
        assert!(out.contains("change capture switched"), "{out}");
        let status = p.ok(&["--format", "json", "status"]).json();
        assert_eq!(status["maps"][0]["capture"][0]["capture"], capture, "{status}");
    }
    p.converge(None, Duration::from_secs(10));
    assert_eq!(p.item_writes(1), (300, 0), "each row inserted into b once, none twice");
    // Back on the log: the triggers and their change table rows are gone, the slot is in place.
    assert_eq!(p.count(0, "SELECT CAST(count(*) AS {cast_text}) FROM pg_trigger WHERE tgname LIKE 'dualsync%'"), 0);
    assert_eq!(p.count(0, "SELECT CAST(count(*) AS {cast_text}) FROM pg_replication_slots WHERE database = current_database()"), 1);
    p.ok(&["stop", "items"]);
    assert_eq!(
        p.count(0, "SELECT CAST(count(*) AS {cast_text}) FROM pg_replication_slots WHERE database = current_database()"),
        0,
        "stop drops the slot"
    );
    assert_eq!(p.count(0, "SELECT CAST(count(*) AS {cast_text}) FROM pg_publication"), 0, "stop drops the publication");
}

/// The replication session is cut while `run` is live (the server ended it,
/// a network drop): `run` opens it again from the slot and loses nothing.
#[test]
fn a_cut_replication_session_resumes_from_the_slot() {
    let Some(p) = Pair::capturing([Kind::Postgres, Kind::Sqlite], Capture::Log, "master", "") else { return };
    p.ok(&["start", "items"]);
    p.count_item_writes(1);
    let child = p.spawn_run();
    for round in 0..3 {
        for i in 0..100 {
            p.exec(0, &format!("INSERT INTO item VALUES ('k{round}-{i:03}', 'n', {i})"));
        }
        p.exec(0, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = current_database() AND active_pid IS NOT NULL");
    }
    let end = Instant::now() + Duration::from_secs(30);
    while p.count(1, "SELECT CAST(count(*) AS {cast_text}) FROM item") < 300 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = p.terminate(child);
    assert_eq!(p.item_writes(1), (300, 0), "each row inserted once:\n{out}");
}

#[test]
fn capture_log_on_a_server_that_cannot_is_refused_and_sqlite_keeps_triggers() {
    let Some(p) = Pair::capturing([Kind::Sqlite, Kind::Sqlite], Capture::Log, "master", "") else { return };
    let config = std::fs::read_to_string(p.w.path("dualsync.toml")).unwrap();
    p.w.config(&config.replacen("[apps.b]", "capture = \"log\"\n[apps.b]", 1));
    let run = p.run(&["check"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("apps.a.capture") && run.stderr.contains("SQLite has no log"), "{}", run.stderr);
}

/// Under `capture = "auto"`, a table whose deletes would not name the map's
/// key in the log (the key is not its replica identity) keeps triggers, and
/// `start` says why; the map works all the same.
#[test]
fn auto_capture_keeps_triggers_where_the_log_would_not_name_the_key() {
    let Some(p) = Pair::capturing([Kind::Postgres, Kind::Sqlite], Capture::Trigger, "master", "") else { return };
    p.exec(0, "DROP TABLE item; CREATE TABLE item (id serial PRIMARY KEY, k text NOT NULL UNIQUE, name text, qty bigint)");
    let config = std::fs::read_to_string(p.w.path("dualsync.toml")).unwrap();
    p.w.config(&config.replace("capture = \"trigger\"", ""));
    p.exec(0, "INSERT INTO item (k, name, qty) VALUES ('k1', 'one', 1)");
    let start = p.ok(&["start", "items"]);
    assert!(start.stdout.contains("keeps trigger capture") && start.stdout.contains("REPLICA IDENTITY FULL"), "{}", start.stdout);
    let status = p.ok(&["--format", "json", "status"]).json();
    assert_eq!(status["maps"][0]["capture"][0]["capture"], "trigger", "{status}");
    let child = p.spawn_run();
    p.exec(0, "DELETE FROM item WHERE k = 'k1'; INSERT INTO item (k, name, qty) VALUES ('k2', 'two', 2)");
    p.converge(Some(&["k2|two|2"]), Duration::from_secs(15));
    let out = p.terminate(child);
    assert!(!out.contains("switched"), "run leaves the table on triggers: {out}");
}

/// 6,000 rows changed in one transaction on a while b changes another column
/// of half of them and adds rows: one round of `run` reads 5,000 keys or more,
/// which it reconciles in chunks, reading the next chunk while it writes the
/// current one. Every change of both apps must arrive, as one key at a time.
fn big_batch_case(kinds: [Kind; 2], capture: Capture) {
    let Some(p) = Pair::capturing(kinds, capture, "master", "") else { return };
    let rows = |from: usize, to: usize| match kinds[0] {
        Kind::Postgres => {
            format!("INSERT INTO item SELECT 'k' || lpad(i::text, 6, '0'), 'n' || i, i FROM generate_series({from}, {}) i", to - 1)
        }
        _ => format!(
            "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {to})
             INSERT INTO item SELECT printf('k%06d', i), 'n' || i, i FROM n"
        ),
    };
    p.exec(0, &rows(0, 6000));
    p.ok(&["start", "items"]);
    p.converge(None, Duration::from_secs(30));
    assert_eq!(p.dump(1).len(), 6000);
    p.exec(0, "UPDATE item SET name = name || ' (a)'");
    p.exec(1, "UPDATE item SET qty = qty + 1000000 WHERE k < 'k003000'");
    p.exec(1, &rows(6000, 6050).replace("'k'", "'x'").replace("'k%06d'", "'x%06d'"));
    let mut expected: Vec<String> = (0..6000)
        .map(|i| format!("k{i:06}|n{i} (a)|{}", if i < 3000 { i + 1_000_000 } else { i }))
        .chain((6000..6050).map(|i| format!("x{i:06}|n{i}|{i}")))
        .collect();
    expected.sort();
    let child = p.spawn_run();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    p.converge(Some(&expected), Duration::from_secs(60));
    let out = p.terminate(child);
    assert_eq!(changes_read(&out), 6000 + 3000 + 50, "run read each change once:\n{out}");
}

#[test]
fn a_big_batch_is_reconciled_in_chunks_and_loses_nothing() {
    big_batch_case([Kind::Sqlite, Kind::Sqlite], Capture::Trigger);
}

#[test]
fn a_big_batch_is_reconciled_in_chunks_and_loses_nothing_from_the_log() {
    big_batch_case([Kind::Postgres, Kind::Postgres], Capture::Log);
}

/// The command that restarts a kind's server, from the environment: the
/// restart tests are ignored by `cargo test` (a restart would break the tests
/// running beside them) and `.ci/run` runs them alone afterwards with it set.
fn restart_command(kind: Kind) -> Option<String> {
    let var = match kind {
        Kind::Postgres => "DUALSYNC_TEST_RESTART_POSTGRES",
        _ => "DUALSYNC_TEST_RESTART_MARIADB",
    };
    match std::env::var(var) {
        Ok(command) if !command.trim().is_empty() => Some(command),
        _ => {
            assert!(std::env::var("CI").is_err(), "{var} is not set: .ci/run sets it to the command that restarts the server");
            eprintln!("SKIPPED: {var} is not set (the command that restarts the server)");
            None
        }
    }
}

/// The server of both apps restarts while `run` streams its log: `run` waits
/// for it, reads on from its saved place in the log, and every change lands
/// once (each row inserted into b once, each updated row updated once).
fn server_restart_case(kind: Kind) {
    let Some(restart) = restart_command(kind) else { return };
    let Some(p) = Pair::capturing([kind, kind], Capture::Log, "master", "") else { return };
    p.ok(&["start", "items"]);
    p.count_item_writes(1);
    let writer = |from: usize, to: usize| p.insert_items(from, to);
    let on_b = "SELECT CAST(count(*) AS {cast_text}) FROM item";
    let child = p.spawn_run();
    writer(0, 1000);
    p.wait_count(1, on_b, 1000, Duration::from_secs(30));
    // Committed while `run` applies them; the restart cuts in.
    writer(1000, 3000);
    let restarted = Command::new("bash").args(["-c", &restart]).output().unwrap();
    assert!(restarted.status.success(), "restarting the server with {restart:?}: {}", String::from_utf8_lossy(&restarted.stderr));
    writer(3000, 4000);
    p.exec(0, "UPDATE item SET qty = qty + 1000000 WHERE k < 'k00100'");
    p.converge(None, Duration::from_secs(120));
    let out = p.terminate(child);
    assert_eq!(p.dump(1).len(), 4000);
    assert_eq!(p.db[1].texts("SELECT CAST(qty AS {cast_text}) FROM item WHERE k = 'k00042'"), vec![Some("1000042".to_string())]);
    assert_eq!(p.item_writes(1), (4000, 100), "rows inserted into and updated in b by dualsync:\n{out}");
}

#[test]
#[ignore = "restarts PostgreSQL: .ci/run runs it alone after the suite"]
fn a_postgres_restart_while_run_reads_the_log_loses_nothing_and_doubles_nothing() {
    server_restart_case(Kind::Postgres);
}

#[test]
#[ignore = "restarts MariaDB: .ci/run runs it alone after the suite"]
fn a_mariadb_restart_while_run_reads_the_log_loses_nothing_and_doubles_nothing() {
    server_restart_case(Kind::Mariadb);
}
