//! Issue 12: a SQLite state store serves one syncing process at a time, and a
//! PostgreSQL store one command at a time. A process of another command is
//! refused and told who holds the store; the hold ends with the holder, on
//! SIGTERM and on SIGKILL alike. On PostgreSQL the hold is a lease: a dead
//! holder is taken over once it expires, and a holder paused past it stops
//! by itself when it wakes. (scale_out.rs: several processes of one command.)

use super::{apps, spawn, sync_when_free, CONFIG};
use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};
use std::process::Child;
use std::time::{Duration, Instant};

/// The fixture's state store (the default path).
const STORE: &str = ".dualsync/state.db";

fn spawn_run(w: &Workspace) -> Child {
    spawn(w, &["run", "--poll-ms", "20"], "run")
}

/// Waits until the store names `pid` as its holder.
fn wait_held_by(w: &Workspace, pid: u32) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let held = w.path(STORE).exists()
            && w.rows(STORE, "SELECT pid FROM store_owner").first().is_some_and(|r| r[0] == rusqlite::types::Value::Integer(pid as i64));
        if held {
            return;
        }
        assert!(Instant::now() < end, "dualsync run (PID {pid}) never took the store");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < end, "dualsync run did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_syncing_process_is_refused_and_told_who_holds_the_store() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', 'G1', 'one')");
    let start = w.run(&["start", "groups"]);
    assert_eq!(start.code, 0, "{}\n{}", start.stdout, start.stderr);
    let mut run = spawn_run(&w);
    wait_held_by(&w, run.id());

    for second in [&["sync"][..], &["run"], &["start", "customers"], &["retry"]] {
        let refused = w.run(second);
        assert_eq!(refused.code, 1, "{second:?} must be refused:\n{}\n{}", refused.stdout, refused.stderr);
        let holder = format!("in use by `dualsync run` (PID {} on host ", run.id());
        assert!(refused.stderr.contains(&holder), "{second:?} must name the holder:\n{}", refused.stderr);
        assert!(refused.stderr.contains("one syncing process at a time"), "{}", refused.stderr);
    }
    // Reading and steering commands still work while `run` holds the store.
    let status = w.run(&["status"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains(&format!("state store in use by `dualsync run` (PID {}", run.id())), "{}", status.stdout);
    let json = w.run(&["status", "--format", "json"]).json();
    assert!(json["held_by"].as_str().is_some_and(|h| h.contains(&run.id().to_string())), "{json}");
    assert_eq!(w.run(&["pause", "groups"]).code, 0);
    assert_eq!(w.run(&["resume", "groups"]).code, 0);
    let workers = w.run(&["workers", "--format", "json"]).json();
    assert_eq!(workers["workers"][0]["pid"], run.id(), "{workers}");
    assert_eq!(workers["workers"][0]["command"], "run", "{workers}");
    assert_eq!(workers["workers"][0]["holding"], true, "{workers}");
    let table = w.run(&["workers"]);
    assert!(table.stdout.contains(&run.id().to_string()) && table.stdout.contains("yes"), "{}", table.stdout);

    // SIGKILL: the operating system releases the lock; the next process takes the store over.
    unsafe { libc::kill(run.id() as i32, libc::SIGKILL) };
    wait_exit(&mut run);
    let after_kill = w.run(&["sync"]);
    assert_eq!(after_kill.code, 0, "the store stays held after its holder was killed:\n{}", after_kill.stderr);
    assert_eq!(w.count(STORE, "SELECT count(*) FROM store_owner"), 0, "the owner row goes with its process");
    let json = w.run(&["status", "--format", "json"]).json();
    assert!(json["held_by"].is_null(), "{json}");

    // SIGTERM: `run` finishes its batch, exits 0 and hands the store back.
    let mut run = spawn_run(&w);
    wait_held_by(&w, run.id());
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut run).code(), Some(0));
    assert_eq!(w.count(STORE, "SELECT count(*) FROM store_owner"), 0);
    assert_eq!(w.run(&["sync"]).code, 0);
    assert_eq!(w.run(&["workers", "--format", "json"]).json()["workers"], serde_json::json!([]));
    assert!(w.run(&["workers"]).stdout.contains("no process holds the state store"));
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: sends a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// Waits until `pid` holds the lease of the PostgreSQL store `db`.
fn wait_lease(db: &TestDb, pid: u32) {
    let end = Instant::now() + Duration::from_secs(20);
    while db.texts("SELECT pid::text FROM leases WHERE owner IS NOT NULL AND expires_at > now()") != vec![Some(pid.to_string())] {
        assert!(Instant::now() < end, "dualsync (PID {pid}) never took the lease");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_postgres_store_is_held_by_a_lease_taken_over_when_its_holder_dies_or_stalls() {
    let Some(state) = TestDb::new(Kind::Postgres) else { return };
    let w = apps();
    w.config(&format!("[state]\nurl = \"{}\"\nlease_seconds = 2\n{CONFIG}", state.url));
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', 'G1', 'one')");
    let start = w.run(&["start", "groups"]);
    assert_eq!(start.code, 0, "{}\n{}", start.stdout, start.stderr);

    let mut run = spawn_run(&w);
    wait_lease(&state, run.id());
    let refused = w.run(&["sync"]);
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains(&format!("in use by `dualsync run` (PID {} on host ", run.id())), "{}", refused.stderr);
    assert!(refused.stderr.contains("its lease runs until"), "{}", refused.stderr);
    let json = w.run(&["status", "--format", "json"]).json();
    assert!(json["held_by"].as_str().is_some_and(|h| h.contains(&run.id().to_string())), "{json}");

    // Killed: its lease expires on the server's clock and the next process takes over.
    let killed_at = Instant::now();
    signal(&run, libc::SIGKILL);
    wait_exit(&mut run);
    sync_when_free(&w, killed_at, Duration::from_secs(2 + 4));
    assert_eq!(state.texts("SELECT count(*)::text FROM leases WHERE owner IS NOT NULL"), vec![Some("0".to_string())], "handed back");
    let workers = w.run(&["workers", "--format", "json"]).json();
    let killed = workers["workers"].as_array().unwrap().iter().find(|l| l["pid"] == run.id()).expect("the killed worker's row");
    assert_eq!(killed["holding"], false, "{workers}");
    assert!(killed["heartbeat"].as_str().is_some_and(|t| t.ends_with('Z')), "{workers}");
    let unit = &workers["units"][0];
    assert_eq!(unit["step"], "groups, customers", "one unit for maps linked by a lookup: {workers}");
    assert_eq!(unit["takeovers"], 1, "the killed worker's map was taken over once: {workers}");

    // Paused past its lease: another process takes over, and the paused one stops as soon as it wakes.
    let mut stalled = spawn_run(&w);
    wait_lease(&state, stalled.id());
    signal(&stalled, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2500));
    let mut taker = spawn_run(&w);
    wait_lease(&state, taker.id());
    signal(&stalled, libc::SIGCONT);
    let code = wait_exit(&mut stalled).code();
    let err = std::fs::read_to_string(w.path("run.err")).unwrap_or_default();
    assert_eq!(code, Some(1), "the stalled holder must stop: {err}");
    assert!(err.contains("lost its lease on the state store"), "{err}");
    // The taker raises the map's fence in both apps to its epoch at its first round on the map.
    let read_unit = || {
        let unit = state.texts(
            "SELECT substr(l.incarnation, 1, 16) || ':' || i.id || ' ' || i.epoch FROM work_items i, leases l
             WHERE l.unit = 'store' AND i.step = 'groups, customers' AND i.job IS NULL",
        );
        let (unit, epoch) = unit[0].as_deref().unwrap().split_once(' ').unwrap();
        (unit.to_string(), epoch.parse::<i64>().unwrap())
    };
    let fences =
        |unit: &str| ["erp.db", "crm.db"].map(|app| w.count(app, &format!("SELECT epoch FROM dualsync_fence WHERE unit = '{unit}'")));
    let raised_by = Instant::now() + Duration::from_secs(10);
    let (unit, epoch) = loop {
        let (unit, epoch) = read_unit();
        if fences(&unit) == [epoch, epoch] || Instant::now() > raised_by {
            break (unit, epoch);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(epoch >= 4, "every claim bumps the epoch: {epoch}");
    assert_eq!(fences(&unit), [epoch, epoch], "both apps fenced at the taker's epoch");

    // A later holder's fence in an app: the taker's writes there land nothing, and it says so.
    w.exec("crm.db", "UPDATE dualsync_fence SET epoch = epoch + 100");
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', 'G2', 'two')");
    let end = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(w.path("run.err"))
        .unwrap_or_default()
        .contains("fenced: another dualsync process has taken this work over")
    {
        assert!(
            Instant::now() < end,
            "the fenced write was not reported: {}",
            std::fs::read_to_string(w.path("run.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(w.count("crm.db", "SELECT count(*) FROM grp WHERE code = 'G2'"), 0, "nothing of a fenced write lands");

    // Another claim of the worker's lease (as a takeover's fencing does): from the moment it
    // commits, the state store refuses the old holder's writes, and the old holder stops.
    let state_rows = "SELECT (SELECT count(*) FROM runs) || '/' || (SELECT count(*) FROM errors) || '/' ||
                             (SELECT coalesce(max(updated_at), '') FROM cursors) || '/' || (SELECT count(*) FROM key_state)";
    state.exec("UPDATE leases SET epoch = epoch + 1, owner = 'someone else' WHERE unit IN (SELECT unit FROM leases FOR UPDATE)");
    let before = state.texts(state_rows);
    assert_eq!(wait_exit(&mut taker).code(), Some(1), "the old holder must stop");
    assert_eq!(state.texts(state_rows), before, "the old holder wrote state after it lost the store");
}

/// A TCP proxy to a server that can be cut: from then on it forwards nothing
/// and closes nothing, as a network partition does, so calls through it hang.
struct Proxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn to(target: String) -> Proxy {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering::Relaxed;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cutting = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else { continue };
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let cut = cutting.clone();
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
                        let mut buf = [0u8; 16384];
                        loop {
                            if cut.load(Relaxed) {
                                std::thread::sleep(Duration::from_millis(50)); // hold the sockets open, forward nothing
                                continue;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => return,
                                Ok(n) if !cut.load(Relaxed) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Ok(_) => {}
                                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        Proxy { port, cut }
    }
}

#[test]
fn a_holder_cut_off_from_the_postgres_store_stops_by_its_deadline_and_another_takes_over() {
    let Some(state) = TestDb::new(Kind::Postgres) else { return };
    let w = apps();
    let direct = format!("[state]\nurl = \"{}\"\nlease_seconds = 2\n{CONFIG}", state.url);
    w.config(&direct);
    let (server, rest) = state.url.split_once('@').unwrap().1.split_once('/').unwrap();
    let proxy = Proxy::to(server.to_string());
    let via_proxy = direct.replace(&format!("@{server}/{rest}"), &format!("@127.0.0.1:{}/{rest}", proxy.port));
    std::fs::write(w.path("via-proxy.toml"), via_proxy).unwrap();
    w.exec("erp.db", "INSERT INTO grp VALUES ('C1', 'G1', 'one')");
    assert_eq!(w.run(&["start", "groups"]).code, 0);

    let mut holder = spawn(&w, &["--config", "via-proxy.toml", "run", "--poll-ms", "20"], "holder");
    wait_lease(&state, holder.id());
    proxy.cut.store(true, std::sync::atomic::Ordering::Relaxed);
    let cut_at = Instant::now();
    // Its renewals hang on the dead network; its own clock stops it before the lease runs out on the server.
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = holder.try_wait().unwrap() {
            break status;
        }
        let read = |f: &str| std::fs::read_to_string(w.path(f)).unwrap_or_default();
        assert!(Instant::now() < end, "the holder cut off from the store did not stop:\n{}{}", read("holder.out"), read("holder.err"));
        std::thread::sleep(Duration::from_millis(20));
    };
    let stopped_after = cut_at.elapsed();
    let err = std::fs::read_to_string(w.path("holder.err")).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("lost its lease") && err.contains("not renewed in time"), "{err}");
    assert!(stopped_after < Duration::from_secs(2), "the holder must stop within its lease: {stopped_after:?}");
    // Another process takes over once the lease has run out on the server's clock.
    sync_when_free(&w, cut_at, Duration::from_secs(2 + 4));
}
