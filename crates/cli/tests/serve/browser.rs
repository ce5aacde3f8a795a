//! The dashboard in a real browser: Debian's chromium, driven by
//! playwright-core (tests/browser, installed by `npm ci`). Screenshots of
//! each page land in target/screenshots.

use super::Served;
use dualsync_testkit::Kind;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// What the browser test needs, or why it is skipped (outside CI only).
fn browser_tools() -> Option<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = if !dir.join("node_modules/playwright-core").exists() {
        Some(format!("playwright-core (run `npm ci --prefix {}`)", dir.display()))
    } else if !std::path::Path::new(&chromium).exists() {
        Some(format!("{chromium} (apt-get install chromium chromium-driver)"))
    } else if Command::new("node").arg("--version").output().is_err() {
        Some("node".into())
    } else {
        None
    };
    match missing {
        None => Some((dir, chromium)),
        Some(what) => {
            assert!(std::env::var("CI").is_err(), "CI needs {what} for the browser test");
            eprintln!("SKIPPED: the browser test needs {what}");
            None
        }
    }
}

/// Runs a browser script of tests/browser against `s` as its operator; it
/// must succeed. Returns the folder its screenshots are in.
fn run_script(dir: &std::path::Path, chromium: &str, script: &str, s: &Served) -> PathBuf {
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(dir.join(script))
        .env("BASE", format!("http://127.0.0.1:{}", s.port))
        .env("TOKEN", &s.operator)
        .env("SHOTS", &shots)
        .env("CHROMIUM", chromium)
        .output()
        .expect("run node");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{script} failed (screenshots in {}):\n{said}\n{}", shots.display(), s.output());
    shots
}

#[test]
fn an_operator_works_through_the_dashboard_in_chromium() {
    let Some((dir, chromium)) = browser_tools() else { return };
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Sqlite], "manual") else { return };
    // A row b refuses, then fixed at its source while the map is paused (so only a retry takes it across).
    s.db[0].exec("INSERT INTO item VALUES ('k4', 'much too long a name', 4)");
    let end = Instant::now() + Duration::from_secs(30);
    while s.get("/api/v1/errors", &s.viewer).json()["items"].as_array().unwrap().is_empty() {
        assert!(Instant::now() < end, "the failed row was not logged: {}", s.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    s.post("/api/v1/maps/items/pause", &s.operator, "");
    s.db[0].exec("UPDATE item SET name = 'k4 fixed' WHERE k = 'k4'");
    // A conflict: both apps change k1 while paused; a resume queues it (policy manual), a pause holds the rest.
    s.db[0].exec("UPDATE item SET name = 'from a' WHERE k = 'k1'");
    s.db[1].exec("UPDATE item SET name = 'from b', qty = 2 WHERE k = 'k1'");
    s.post("/api/v1/maps/items/resume", &s.operator, "");
    while s.get("/api/v1/conflicts", &s.viewer).json()["items"].as_array().unwrap().is_empty() {
        assert!(Instant::now() < end, "the conflict was not queued: {}", s.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    s.post("/api/v1/maps/items/pause", &s.operator, "");
    // The resume applied the fix of k4 too; make it fail again, fixed at its source, paused.
    s.post("/api/v1/maps/items/resume", &s.operator, "");
    s.db[0].exec("UPDATE item SET name = 'k4 far too long again' WHERE k = 'k4'");
    while s.get("/api/v1/errors", &s.viewer).json()["items"].as_array().unwrap().is_empty() {
        assert!(Instant::now() < end, "the failed row was not logged again: {}", s.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    s.post("/api/v1/maps/items/pause", &s.operator, "");
    s.db[0].exec("UPDATE item SET name = 'k4 fixed' WHERE k = 'k4'");

    let shots = run_script(&dir, &chromium, "dashboard.mjs", &s);

    // What the clicks did, in the databases.
    assert!(s.dump(1).contains(&"k4|k4 fixed|4".to_string()), "the retried row arrived: {:?}", s.dump(1));
    assert_eq!(s.dump(0)[0], "k1|from b|2", "the conflict took b's row");
    assert_eq!(s.dump(1)[0], "k1|from b|2");
    assert_eq!(s.get("/api/v1/maps/items", &s.viewer).json()["state"], "running");
    let actions: Vec<String> = s.get("/api/v1/activity?actor=otto", &s.viewer).json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .take(6)
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["plan", "start", "stop", "pause", "resume", "resolve"], "newest first");
    for page in ["login", "overview", "map", "errors", "conflicts", "map-job", "plan", "activity", "overview-phone"] {
        assert!(shots.join(format!("{page}.png")).exists(), "screenshot of {page}");
    }
    s.stop();
}

#[test]
fn an_initial_sync_started_in_the_dashboard_shows_its_progress_moving() {
    let Some((dir, chromium)) = browser_tools() else { return };
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Sqlite], "master") else { return };
    assert_eq!(s.post("/api/v1/maps/items/stop", &s.operator, "").status, 200);
    // Enough rows that the initial sync takes a few seconds.
    s.db[0].exec(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 499999)
         INSERT INTO item SELECT 'p' || i, 'n' || i, i FROM n",
    );
    run_script(&dir, &chromium, "progress.mjs", &s);
    assert_eq!(s.db[1].texts("SELECT CAST(count(*) AS {cast_text}) FROM item")[0].as_deref(), Some("500003"));
    s.stop();
}
