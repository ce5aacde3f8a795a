//! Issue 12: several processes of one command share a PostgreSQL state store's
//! work. `sync` processes share a job's companies, a stage at a time; `run`
//! processes split the groups of maps. A process killed mid-way costs only the
//! units it held, which move to the others once its lease runs out, and the
//! apps end as one process would have left them.

use super::spawn;
use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};
use std::process::Child;
use std::time::{Duration, Instant};

const COMPANIES: usize = 50;
const ROWS_PER_COMPANY: usize = 400;

/// Two PostgreSQL apps and a PostgreSQL state store, with a map per table, all of the same shape.
struct Fixture {
    w: Workspace,
    state: TestDb,
    erp: TestDb,
    crm: TestDb,
}

fn fixture(tables: &[&str]) -> Option<Fixture> {
    fixture_with(tables, "")
}

/// `fixture`, with more `[state]` settings.
fn fixture_with(tables: &[&str], state_settings: &str) -> Option<Fixture> {
    let state = TestDb::new(Kind::Postgres)?;
    let (erp, crm, apps) = app_pair(tables)?;
    let w = Workspace::new();
    w.config(&format!("[state]\nurl = \"{}\"\nlease_seconds = 2\n{state_settings}\n{apps}", state.url));
    Some(Fixture { w, state, erp, crm })
}

/// Two PostgreSQL apps with `tables`, and their apps and maps as config text.
fn app_pair(tables: &[&str]) -> Option<(TestDb, TestDb, String)> {
    let (erp, crm) = (TestDb::new(Kind::Postgres)?, TestDb::new(Kind::Postgres)?);
    let mut config = format!("[apps.erp]\nurl = \"{}\"\n\n[apps.crm]\nurl = \"{}\"\n", erp.url, crm.url);
    for table in tables {
        for app in [&erp, &crm] {
            app.exec(&format!("CREATE TABLE {table} (co TEXT NOT NULL, code TEXT NOT NULL, name TEXT, n INT, PRIMARY KEY (co, code))"));
        }
        config.push_str(&format!(
            "\n[[maps]]\nname = \"{table}\"\nworkers = 2\n[maps.erp]\ntable = \"{table}\"\nkey = \"code\"\ncompany = \"co\"\n\
             [maps.crm]\ntable = \"{table}\"\nkey = \"code\"\ncompany = \"co\"\n\
             [[maps.columns]]\nerp = \"code\"\ncrm = \"code\"\n[[maps.columns]]\nerp = \"name\"\ncrm = \"name\"\n\
             [[maps.columns]]\nerp = \"n\"\ncrm = \"n\"\n"
        ));
    }
    Some((erp, crm, config))
}

fn read(w: &Workspace, file: &str) -> String {
    std::fs::read_to_string(w.path(file)).unwrap_or_default()
}

/// Waits for `done`; on a timeout, fails with the processes' logs.
fn wait_until(w: &Workspace, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        if Instant::now() > end {
            let mut logs = String::new();
            for entry in std::fs::read_dir(w.dir.path()).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.ends_with(".out") || name.ends_with(".err") {
                    logs.push_str(&format!("--- {name}\n{}\n", read(w, &name)));
                }
            }
            panic!("timed out waiting until {what}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn number(db: &TestDb, sql: &str) -> i64 {
    db.texts(&format!("SELECT ({sql})::text"))[0].as_deref().unwrap_or("0").parse().unwrap()
}

/// The items a (killed) process held, not done: those, and only those, run again.
fn held_by(state: &TestDb, pid: u32) -> String {
    let held = state.texts(&format!(
        "SELECT coalesce(string_agg(i.id::text, ',' ORDER BY i.id), '') FROM work_items i JOIN leases l ON l.owner = i.owner
         WHERE l.pid = {pid} AND l.unit LIKE 'worker:%' AND i.done_at IS NULL"
    ));
    held[0].clone().unwrap_or_default()
}

/// The items claimed more than once.
fn ran_again(state: &TestDb) -> String {
    state.texts("SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM work_items WHERE claims > 1")[0]
        .clone()
        .unwrap_or_default()
}

/// Waits until the processes just started have made the store's tables.
fn wait_for_store(w: &Workspace, state: &TestDb) {
    wait_until(w, "the state store is made", Duration::from_secs(30), || {
        state.texts("SELECT (to_regclass('work_items') IS NOT NULL)::text") == vec![Some("true".to_string())]
    });
}

/// A table's rows: how many, and a digest of them all in order.
fn rows(db: &TestDb, table: &str) -> String {
    let row = "co || '|' || code || '|' || coalesce(name, '') || '|' || coalesce(n::text, '')";
    db.texts(&format!("SELECT count(*) || ' rows, md5 ' || md5(coalesce(string_agg({row}, E'\\n' ORDER BY co, code), '')) FROM {table}"))[0]
        .clone()
        .unwrap()
}

#[test]
fn three_sync_processes_share_the_companies_and_a_killed_one_costs_only_what_it_held() {
    let Some(f) = fixture(&["acct"]) else { return };
    // Rows only the ERP has, rows only the CRM has, and rows both have with different names (the ERP, map's master, wins).
    load(&f.erp, &f.crm, COMPANIES, ROWS_PER_COMPANY);

    let mut procs: Vec<Child> = (0..3).map(|i| spawn(&f.w, &["--format", "json", "sync"], &format!("sync{i}"))).collect();
    wait_for_store(&f.w, &f.state);
    // Kill one that has finished a company and holds another, once a few are done.
    let mut victim = None;
    wait_until(&f.w, "a worker holds a company after finishing one", Duration::from_secs(60), || {
        let holders = f.state.texts(&format!(
            "SELECT l.pid::text FROM leases l WHERE l.unit LIKE 'worker:%' AND l.owner IS NOT NULL
               AND EXISTS (SELECT 1 FROM work_items i WHERE i.owner = l.owner AND i.done_at IS NULL)
               AND EXISTS (SELECT 1 FROM work_items i WHERE i.done_by = l.owner)
               AND (SELECT count(*) FROM work_items WHERE done_at IS NOT NULL) >= 6"
        ));
        victim = holders.into_iter().flatten().next();
        victim.is_some()
    });
    let victim: u32 = victim.unwrap().parse().unwrap();
    let at = procs.iter().position(|p| p.id() == victim).expect("the victim is one of ours");
    let mut killed = procs.remove(at);
    // SAFETY: signals our own child.
    unsafe { libc::kill(killed.id() as i32, libc::SIGKILL) };
    killed.wait().unwrap();
    // Its companies in flight, and those whose completion it had not recorded yet.
    let held = held_by(&f.state, victim);

    for (i, p) in procs.iter_mut().enumerate() {
        let status = p.wait().unwrap();
        let log = format!("{}{}", read(&f.w, &format!("sync{i}.out")), read(&f.w, &format!("sync{i}.err")));
        assert!(status.success(), "a surviving sync failed:\n{log}");
    }
    // Every company of the job was done once, and only what the killed process held ran twice.
    assert_eq!(number(&f.state, "SELECT count(*) FROM work_items WHERE job IS NOT NULL"), COMPANIES as i64);
    assert_eq!(number(&f.state, "SELECT count(*) FROM work_items WHERE done_at IS NULL"), 0);
    assert!(!held.is_empty(), "the killed process held a company");
    assert_eq!(ran_again(&f.state), held, "only the companies the killed process held ran again");
    assert_eq!(number(&f.state, "SELECT count(*) FROM work_items WHERE claims <> 1 + takeovers"), 0, "each of them was taken over once");
    let done_by = number(&f.state, "SELECT count(DISTINCT done_by) FROM work_items");
    assert_eq!(done_by, 3, "the work spread over the three processes");
    assert_eq!(number(&f.state, "SELECT count(*) FROM sync_jobs WHERE ended_at IS NULL"), 0, "the job ended");

    // The apps are what one process leaves: every row in both, the ERP's names where both had one.
    let synced = rows(&f.erp, "acct");
    assert_eq!(synced, rows(&f.crm, "acct"), "the apps differ");
    let crm_only = (COMPANIES * ROWS_PER_COMPANY / 10) as i64;
    assert!(synced.starts_with(&format!("{} rows", COMPANIES * (ROWS_PER_COMPANY * 11 / 10))), "{synced}");
    assert_eq!(number(&f.crm, "SELECT count(*) FROM acct WHERE name LIKE 'crm %'"), crm_only, "CRM-only rows kept");
    assert_eq!(number(&f.erp, "SELECT count(*) FROM acct WHERE name LIKE 'crm %'"), crm_only, "and copied to the ERP");

    // A sync after it finds nothing left to do.
    let again = f.w.run(&["--format", "json", "sync"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    let totals = &again.json()["totals"];
    assert_eq!(totals["inserted"], serde_json::json!([0, 0]), "{totals}");
    assert_eq!(totals["updated"], serde_json::json!([0, 0]), "{totals}");
}

/// ERP rows of `companies` companies, and CRM rows: some the ERP has too (with other names), some only it has.
fn load(erp: &TestDb, crm: &TestDb, companies: usize, rows: usize) {
    erp.exec(&format!(
        "INSERT INTO acct SELECT 'C' || lpad(c::text, 2, '0'), 'K' || lpad(k::text, 7, '0'), 'erp ' || k, k
         FROM generate_series(1, {companies}) c, generate_series(1, {rows}) k"
    ));
    crm.exec(&format!(
        "INSERT INTO acct SELECT 'C' || lpad(c::text, 2, '0'), 'K' || lpad(k::text, 7, '0'), 'crm ' || k, k
         FROM generate_series(1, {companies}) c, generate_series({}, {}) k",
        rows - rows / 10,
        rows + rows / 10
    ));
}

/// Each company is cut into chunks of 10,000 keys, shared like companies.
#[test]
fn a_million_rows_synced_by_three_processes_with_one_killed_end_as_one_process_leaves_them() {
    const COMPANIES: usize = 20;
    const ROWS: usize = 50_000;
    let Some(f) = fixture_with(&["acct"], "chunk_rows = 10000") else { return };
    let (erp, crm, apps) = app_pair(&["acct"]).expect("the server answered just now");
    load(&f.erp, &f.crm, COMPANIES, ROWS);
    load(&erp, &crm, COMPANIES, ROWS);

    // One process, on a SQLite store: the reference.
    let alone = Workspace::new();
    alone.config(&apps);
    let one = alone.run(&["sync"]);
    assert_eq!(one.code, 0, "{}\n{}", one.stdout, one.stderr);

    // Three processes on the shared store; one is killed while it holds a company.
    let mut procs: Vec<Child> = (0..3).map(|i| spawn(&f.w, &["sync"], &format!("sync{i}"))).collect();
    wait_for_store(&f.w, &f.state);
    let mut victim = None;
    wait_until(&f.w, "a worker holds a company after a few are done", Duration::from_secs(120), || {
        let holders = f.state.texts(
            "SELECT l.pid::text FROM leases l WHERE l.unit LIKE 'worker:%' AND l.owner IS NOT NULL
               AND EXISTS (SELECT 1 FROM work_items i WHERE i.owner = l.owner AND i.done_at IS NULL)
               AND (SELECT count(*) FROM work_items WHERE done_at IS NOT NULL) >= 4",
        );
        victim = holders.into_iter().flatten().next();
        victim.is_some()
    });
    let victim: u32 = victim.unwrap().parse().unwrap();
    let mut killed = procs.remove(procs.iter().position(|p| p.id() == victim).unwrap());
    // SAFETY: signals our own child.
    unsafe { libc::kill(killed.id() as i32, libc::SIGKILL) };
    killed.wait().unwrap();
    let held = held_by(&f.state, victim);
    for (i, p) in procs.iter_mut().enumerate() {
        let log = || format!("{}{}", read(&f.w, &format!("sync{i}.out")), read(&f.w, &format!("sync{i}.err")));
        assert!(p.wait().unwrap().success(), "a surviving sync failed:\n{}", log());
    }
    assert!(!held.is_empty(), "the killed process held a chunk");
    assert_eq!(ran_again(&f.state), held, "only the chunks the killed process held ran again");
    // Cut after every 10,000th key of the side with more rows (the ERP's 50,000): five chunks a company.
    assert_eq!(number(&f.state, "SELECT count(*) FROM work_items WHERE chunk IS NOT NULL"), (COMPANIES * 5) as i64);
    assert_eq!(number(&f.state, "SELECT count(*) FROM work_items WHERE split AND done_at IS NOT NULL"), COMPANIES as i64);
    assert_eq!(rows(&f.erp, "acct"), rows(&erp, "acct"), "the ERP differs from one process's result");
    assert_eq!(rows(&f.crm, "acct"), rows(&crm, "acct"), "the CRM differs from one process's result");
    assert!(rows(&f.crm, "acct").starts_with(&format!("{} rows", COMPANIES * (ROWS + ROWS / 10))), "{}", rows(&f.crm, "acct"));
}

/// SIGTERM: the companies under way finish, the others are handed back at
/// once (nothing waits for a lease to run out), and the other process
/// finishes the job.
#[test]
fn a_sync_process_stopped_with_sigterm_hands_its_companies_back_at_once() {
    let Some(f) = fixture(&["acct"]) else { return };
    load(&f.erp, &f.crm, 30, ROWS_PER_COMPANY);
    let mut procs: Vec<Child> = (0..2).map(|i| spawn(&f.w, &["sync"], &format!("sync{i}"))).collect();
    wait_for_store(&f.w, &f.state);
    wait_until(&f.w, "a few companies are done", Duration::from_secs(60), || {
        number(&f.state, "SELECT count(*) FROM work_items WHERE done_at IS NOT NULL") >= 3
    });
    let mut stopped = procs.remove(0);
    // SAFETY: signals our own child.
    unsafe { libc::kill(stopped.id() as i32, libc::SIGTERM) };
    let status = stopped.wait().unwrap();
    let err = read(&f.w, "sync0.err");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("stopped by a signal") && err.contains("go on with them"), "{err}");
    assert_eq!(held_by(&f.state, stopped.id()), "", "it holds nothing once it has ended");
    let other = procs[0].wait().unwrap();
    assert!(other.success(), "{}", read(&f.w, "sync1.err"));
    assert_eq!(number(&f.state, "SELECT count(*) FROM work_items WHERE done_at IS NULL"), 0);
    assert_eq!(number(&f.state, "SELECT count(*) FROM work_items WHERE takeovers > 0"), 0, "nothing waited for a lease to run out");
    assert_eq!(rows(&f.erp, "acct"), rows(&f.crm, "acct"));
}

#[test]
fn a_sync_job_left_unfinished_is_joined_again_and_only_its_open_companies_run() {
    let Some(f) = fixture(&["acct"]) else { return };
    f.erp.exec(&format!(
        "INSERT INTO acct SELECT 'C' || lpad(c::text, 2, '0'), 'K' || k, 'erp ' || k, k
         FROM generate_series(1, 20) c, generate_series(1, {ROWS_PER_COMPANY}) k"
    ));
    let mut only = spawn(&f.w, &["sync"], "first");
    wait_for_store(&f.w, &f.state);
    wait_until(&f.w, "a few companies are done", Duration::from_secs(60), || {
        number(&f.state, "SELECT count(*) FROM work_items WHERE done_at IS NOT NULL") >= 5
    });
    // SAFETY: signals our own child.
    unsafe { libc::kill(only.id() as i32, libc::SIGKILL) };
    only.wait().unwrap();
    let held = held_by(&f.state, only.id());
    let done_before = number(&f.state, "SELECT count(*) FROM work_items WHERE done_at IS NOT NULL");
    assert!(done_before < 20, "killed too late to test anything: {done_before} done");

    // The next sync of the same selection joins the job once the killed one's lease has run out.
    let next = super::sync_when_free(&f.w, Instant::now(), Duration::from_secs(2 + 4));
    assert!(next.stdout.contains(&format!("{done_before} of its 20 items were done by earlier processes")), "{}", next.stdout);
    assert_eq!(ran_again(&f.state), held, "only the companies held at the kill ran again");
    assert_eq!(
        number(&f.state, "SELECT count(*) FROM run_partitions p JOIN runs r ON r.id = p.run_id WHERE r.id = (SELECT max(id) FROM runs)"),
        20 - done_before
    );
    let per_company = "SELECT string_agg(co || ':' || n, ' ' ORDER BY co) FROM (SELECT co, count(*) n FROM acct GROUP BY co) c";
    assert_eq!(rows(&f.erp, "acct"), rows(&f.crm, "acct"), "ERP {:?}\nCRM {:?}", f.erp.texts(per_company), f.crm.texts(per_company));
}

#[test]
fn three_run_processes_split_the_maps_and_a_killed_ones_maps_move_within_the_lease() {
    let tables = ["t1", "t2", "t3", "t4"];
    let Some(f) = fixture(&tables) else { return };
    for t in tables {
        f.erp.exec(&format!("INSERT INTO {t} SELECT 'C' || (k % 5), 'K' || k, 'start', 0 FROM generate_series(1, 50) k"));
        let started = f.w.run(&["start", t]);
        assert_eq!(started.code, 0, "{}\n{}", started.stdout, started.stderr);
    }
    let mut runs: Vec<Child> = (0..3).map(|i| spawn(&f.w, &["run", "--poll-ms", "20"], &format!("run{i}"))).collect();
    wait_for_store(&f.w, &f.state);
    let holders = || {
        f.state.texts(
            "SELECT i.step || '=' || l.pid FROM work_items i JOIN leases l ON l.unit = 'worker:' || i.owner AND l.owner = i.owner
             AND l.expires_at > now() WHERE i.job IS NULL ORDER BY i.step",
        )
    };
    // Four maps over three workers: every map held by exactly one, each worker holding one or two.
    wait_until(&f.w, "the maps are spread over the three workers", Duration::from_secs(30), || {
        let held = holders();
        let pids: std::collections::BTreeSet<_> = held.iter().flatten().map(|h| h.split('=').nth(1).unwrap().to_string()).collect();
        held.len() == tables.len() && pids.len() == 3
    });

    // Both apps keep writing; one worker dies.
    let edit = |round: usize| {
        for t in tables {
            f.erp.exec(&format!("UPDATE {t} SET n = n + 1, name = 'erp {round}' WHERE code = 'K{}'", round % 50 + 1));
            f.crm.exec(&format!("INSERT INTO {t} VALUES ('C1', 'crm{round}', 'from crm', {round}) ON CONFLICT DO NOTHING"));
        }
    };
    for round in 0..20 {
        edit(round);
    }
    let mut victim = runs.remove(0);
    let victim_pid = victim.id().to_string();
    // SAFETY: signals our own child.
    unsafe { libc::kill(victim.id() as i32, libc::SIGKILL) };
    victim.wait().unwrap();
    let killed_at = Instant::now();
    for round in 20..40 {
        edit(round);
    }
    wait_until(&f.w, "the killed worker's maps are held by the others", Duration::from_secs(20), || {
        let held = holders();
        held.len() == tables.len() && held.iter().flatten().all(|h| !h.ends_with(&format!("={victim_pid}")))
    });
    let moved_after = killed_at.elapsed();
    assert!(moved_after < Duration::from_secs(2 + 2), "maps moved {moved_after:?} after the kill (lease 2 s)");

    // Every change reaches the other app: the apps end identical.
    let mut last = Vec::new();
    wait_until(&f.w, "both apps hold the same rows", Duration::from_secs(30), || {
        last = tables.iter().map(|t| (rows(&f.erp, t), rows(&f.crm, t))).collect();
        last.iter().all(|(a, b)| a == b)
    });
    for t in tables {
        assert_eq!(number(&f.crm, &format!("SELECT sum(n) FROM {t} WHERE name LIKE 'erp %'")), 40, "{t}: every update arrived once");
        assert_eq!(number(&f.erp, &format!("SELECT count(*) FROM {t} WHERE code LIKE 'crm%'")), 40, "{t}: every insert arrived");
    }
    for mut run in runs {
        // SAFETY: signals our own child.
        unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
        assert!(run.wait().unwrap().success(), "SIGTERM ends a worker cleanly");
    }
    assert_eq!(number(&f.state, "SELECT count(*) FROM work_items WHERE owner IS NOT NULL"), 0, "SIGTERM hands the maps back");
}

/// The rule that keeps a company's merge bases right when its chunks ran in
/// several attempts: a key gone from both apps loses its base, so that a new
/// row with that key later is copied, not taken for a row deleted in the other app.
#[test]
fn a_chunked_company_forgets_keys_gone_from_both_apps() {
    let Some(f) = fixture_with(&["acct"], "chunk_rows = 100") else { return };
    f.erp.exec("INSERT INTO acct SELECT 'C1', 'K' || lpad(k::text, 4, '0'), 'erp', k FROM generate_series(1, 1000) k");
    let first = f.w.run(&["sync"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(number(&f.state, "SELECT count(*) FROM work_items WHERE chunk IS NOT NULL"), 10, "ten chunks of 100 keys");
    assert_eq!(number(&f.state, "SELECT count(*) FROM key_state"), 1000);

    // Gone from both apps between two syncs: the next sync forgets their bases.
    for app in [&f.erp, &f.crm] {
        app.exec("DELETE FROM acct WHERE code IN ('K0150', 'K0500', 'K0999')");
    }
    let second = f.w.run(&["sync"]);
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert_eq!(number(&f.state, "SELECT count(*) FROM key_state"), 997);
    assert_eq!(number(&f.state, "SELECT count(*) FROM key_state WHERE key LIKE '%K0500%'"), 0);

    // A new row with such a key, in one app: copied to the other, never deleted.
    f.erp.exec("INSERT INTO acct VALUES ('C1', 'K0500', 'back', 1)");
    let third = f.w.run(&["sync"]);
    assert_eq!(third.code, 0, "{}\n{}", third.stdout, third.stderr);
    for app in [&f.erp, &f.crm] {
        assert_eq!(number(app, "SELECT count(*) FROM acct WHERE code = 'K0500' AND name = 'back'"), 1);
    }
    assert_eq!(rows(&f.erp, "acct"), rows(&f.crm, "acct"));
}
