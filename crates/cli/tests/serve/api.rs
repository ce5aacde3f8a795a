//! The API at work on real apps: maps, pause and resume, the error log with
//! its filters and pages, retry and skip, conflicts, activity, metrics, and
//! bad requests that get a JSON 4xx and change nothing.

use super::Served;
use dualsync_testkit::Kind;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Polls a GET until `done` holds for its JSON answer.
fn wait_for(s: &Served, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = s.get(path, &s.viewer);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let body = reply.json();
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < end, "{what} within 30 s: {body}\n{}", s.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn failed_rows_are_listed_retried_and_skipped_through_the_api() {
    for kinds in [[Kind::Sqlite, Kind::Sqlite], [Kind::Sqlite, Kind::Postgres]] {
        let Some(mut s) = Served::start(kinds, "master") else { return };
        let maps = s.get("/api/v1/maps", &s.viewer).json();
        assert_eq!(maps["total"], 1, "{maps}");
        assert_eq!(maps["items"][0]["map"], "items");
        assert_eq!(maps["items"][0]["state"], "running");
        assert_eq!(maps["items"][0]["keys_synced"], 3, "{maps}");

        // Two names too long for b: the live loop logs both.
        s.db[0].exec("INSERT INTO item VALUES ('k4', 'much too long a name', 4), ('k5', 'also far too long', 5)");
        let errors = wait_for(&s, "/api/v1/errors?map=items", "two errors", |b| b["items"].as_array().unwrap().len() == 2);
        let ids: Vec<i64> = errors["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
        assert_eq!(errors["items"][0]["key"], json!(["k4"]), "{errors}");
        assert_eq!(errors["items"][0]["target_app"], "b");
        assert_eq!(s.get("/api/v1/errors?app=b", &s.viewer).json()["items"].as_array().unwrap().len(), 2);
        assert_eq!(s.get("/api/v1/errors?app=zzz", &s.viewer).json()["items"], json!([]));
        assert_eq!(s.get("/api/v1/errors?company=nope", &s.viewer).json()["items"], json!([]));
        let first = s.get("/api/v1/errors?limit=1", &s.viewer).json();
        assert_eq!(first["items"].as_array().unwrap().len(), 1);
        assert_eq!(first["next_after"], ids[0]);
        let second = s.get(&format!("/api/v1/errors?limit=1&after={}", ids[0]), &s.viewer).json();
        assert_eq!(second["items"][0]["id"], ids[1]);
        assert_eq!(second["next_after"], Value::Null, "the last page says so");
        let map = s.get("/api/v1/maps/items", &s.viewer).json();
        assert_eq!((map["open_errors"].as_i64(), map["errors_last_hour"].as_i64()), (Some(2), Some(2)), "{map}");
        assert_eq!(map["companies_state"][0]["status"], "rows_failed", "the live run that met the two rows: {map}");

        // Paused, a fix in app a waits; a retry takes it across at once.
        assert_eq!(s.post("/api/v1/maps/items/pause", &s.operator, "").json()["state"], "paused");
        s.db[0].exec("UPDATE item SET name = 'k4 fixed' WHERE k = 'k4'");
        let retried = s.post(&format!("/api/v1/errors/{}/retry", ids[0]), &s.operator, "");
        assert_eq!(retried.status, 200, "{}", retried.body);
        assert_eq!(retried.json()["synced"], 1, "{}", retried.body);
        assert!(s.dump(1).contains(&"k4|k4 fixed|4".to_string()), "{:?}", s.dump(1));
        let again = s.post(&format!("/api/v1/errors/{}/retry", ids[0]), &s.operator, "");
        assert_eq!(again.status, 409, "a resolved error is not retried: {}", again.body);

        // The other row is left as it is, with why.
        let skipped = s.post(&format!("/api/v1/errors/{}/skip", ids[1]), &s.operator, r#"{"reason": "the CRM keeps short names"}"#);
        assert_eq!(skipped.status, 200, "{}", skipped.body);
        assert_eq!(s.get("/api/v1/errors", &s.viewer).json()["items"], json!([]), "no open errors");
        let all = s.get("/api/v1/errors?status=all", &s.viewer).json();
        let states: Vec<&str> = all["items"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
        assert_eq!(states, ["resolved", "skipped"], "{all}");
        assert_eq!(all["items"][1]["note"], "the CRM keeps short names");
        assert_eq!(s.post("/api/v1/maps/items/resume", &s.operator, "").json()["state"], "running");
        s.db[0].exec("UPDATE item SET qty = 44 WHERE k = 'k4'");
        s.wait_for_row(1, "k4|k4 fixed|44");

        // The activity log says who did what, newest first.
        let activity = s.get("/api/v1/activity?actor=otto", &s.viewer).json();
        let done: Vec<String> = activity["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{} {}: {}", a["action"].as_str().unwrap(), a["target"].as_str().unwrap(), a["result"].as_str().unwrap()))
            .collect();
        assert_eq!(done.len(), 5, "{done:?}");
        assert_eq!(done[0], "resume map items: running");
        assert!(done[1].starts_with("skip error") && done[1].ends_with("skipped: the CRM keeps short names"), "{done:?}");
        assert!(done[2].contains("refused (409)"), "{done:?}");
        assert!(done[3].starts_with("retry error") && done[3].contains("1 synced, 0 still failing"), "{done:?}");
        assert_eq!(done[4], "pause map items: paused");
        let out = s.stop();
        for token in [&s.admin, &s.operator, &s.viewer] {
            assert!(!out.contains(token.as_str()), "a token in the log:\n{out}");
        }
    }
}

#[test]
fn a_conflict_is_shown_with_both_rows_and_resolved_through_the_api() {
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Postgres], "manual") else { return };
    s.post("/api/v1/maps/items/pause", &s.operator, "");
    s.db[0].exec("UPDATE item SET name = 'from a' WHERE k = 'k1'");
    s.db[1].exec("UPDATE item SET name = 'from b', qty = 2 WHERE k = 'k1'");
    s.post("/api/v1/maps/items/resume", &s.operator, "");
    let list = wait_for(&s, "/api/v1/conflicts", "the conflict queued", |b| b["items"].as_array().unwrap().len() == 1);
    let c = &list["items"][0];
    assert_eq!(c["key"], json!(["k1"]), "{list}");
    assert_eq!(c["columns"], json!(["name"]));
    assert_eq!(c["status"], "open");
    assert!(c["rows"]["a"].to_string().contains("from a") && c["rows"]["b"].to_string().contains("from b"), "{list}");
    assert_eq!(s.dump(0)[0], "k1|from a|1", "nothing is written while it waits");
    let id = c["id"].as_i64().unwrap();
    let bad = s.post(&format!("/api/v1/conflicts/{id}/resolve"), &s.operator, r#"{"take": "c"}"#);
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.error().contains("has apps a and b"), "{}", bad.body);
    let resolved = s.post(&format!("/api/v1/conflicts/{id}/resolve"), &s.operator, r#"{"take": "b"}"#);
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    assert_eq!(resolved.json()["resolved"], true, "{}", resolved.body);
    assert_eq!(s.dump(0)[0], "k1|from b|2");
    assert_eq!(s.dump(1)[0], "k1|from b|2");
    assert_eq!(s.get("/api/v1/conflicts", &s.viewer).json()["items"], json!([]));
    assert_eq!(s.get("/api/v1/conflicts?status=all", &s.viewer).json()["items"][0]["status"], "resolved");
    let twice = s.post(&format!("/api/v1/conflicts/{id}/resolve"), &s.operator, r#"{"take": "a"}"#);
    assert_eq!(twice.status, 409, "{}", twice.body);
    s.stop();
}

#[test]
fn bad_requests_get_a_json_4xx_and_change_nothing() {
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Sqlite], "master") else { return };
    let op = s.operator.clone();
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("GET", "/api/v1/maps/nomap", None, 404, "no map \"nomap\" in the config; the maps are: items"),
        ("GET", "/api/v1/maps?state=sleeping", None, 400, "running, paused or stopped"),
        ("GET", "/api/v1/maps?limit=100000000", None, 400, "a page holds 1 to 1000"),
        ("GET", "/api/v1/errors?limit=0", None, 400, "a page holds 1 to 1000"),
        ("GET", "/api/v1/errors?limit=abc", None, 400, "the query string"),
        ("GET", "/api/v1/errors?after=x", None, 400, "the query string"),
        ("GET", "/api/v1/errors?status=closed", None, 400, "pick open or all"),
        ("GET", "/api/v1/conflicts?status=closed", None, 400, "pick open or all"),
        ("POST", "/api/v1/errors/1/skip", Some("{not json"), 400, "the request body"),
        ("POST", "/api/v1/errors/1/skip", Some(r#"{"why": "x"}"#), 422, "the request body"),
        ("POST", "/api/v1/errors/1/skip", Some(r#"{"reason": "  "}"#), 400, "needs a reason"),
        ("POST", "/api/v1/errors/1/skip", None, 415, "the request body"),
        ("POST", "/api/v1/errors/abc/retry", None, 400, "the path"),
        ("POST", "/api/v1/errors/retry", Some(r#"{"map": 5}"#), 422, "the request body"),
        ("POST", "/api/v1/errors/retry", Some(r#"{"mapp": "items"}"#), 422, "unknown field"),
        ("POST", "/api/v1/conflicts/1/resolve", Some("[]"), 422, "the request body"),
        ("GET", "/api/v1/nothing", None, 404, "the API is under /api/v1"),
        ("DELETE", "/api/v1/maps", None, 405, "DELETE is not allowed"),
    ];
    for &(method, path, body, status, says) in cases {
        let reply = s.call(method, path, Some(&op), body);
        assert_eq!(reply.status, status, "{method} {path} {body:?}: {}", reply.body);
        assert!(reply.head.to_ascii_lowercase().contains("content-type: application/json"), "{method} {path}: {}", reply.head);
        assert!(reply.error().contains(says), "{method} {path} {body:?}: {}", reply.body);
    }
    assert_eq!(s.get("/api/v1/maps/items", &s.viewer).json()["state"], "running", "nothing changed");
    assert_eq!(s.w.count("state.db", "SELECT count(*) FROM activity WHERE actor = 'otto'"), 0, "no action was taken");
    assert_eq!(s.get("/api/v1/maps/items", &s.viewer).status, 200, "the service still answers");
    s.stop();
}

#[test]
fn metrics_count_what_the_live_loop_applied_and_logs_can_be_json() {
    let Some(mut s) = Served::start([Kind::Postgres, Kind::Sqlite], "master") else { return };
    s.stop();
    s.serve(&["--log-format", "json", "--history-every-seconds", "1"]);
    // The chart's history has a first sample before the changes.
    wait_for(&s, "/api/v1/maps/items/history", "a first sample", |h| !h.as_array().unwrap().is_empty());
    s.db[0].exec("UPDATE item SET qty = 10 WHERE k = 'k1'");
    s.db[0].exec("DELETE FROM item WHERE k = 'k3'");
    s.wait_for_row(1, "k1|one|10");
    let end = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let text = s.get("/metrics", &s.viewer).body;
        if text.contains(r#"operation="delete"} 1"#) || Instant::now() > end {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for line in [
        r#"dualsync_changes_applied_total{map="items",app="b",operation="update"} 1"#,
        r#"dualsync_changes_applied_total{map="items",app="b",operation="delete"} 1"#,
        r#"dualsync_backlog_rows{map="items",app="a"} 0"#,
        r#"dualsync_map_state{map="items",state="running"} 1"#,
        "dualsync_state_store_up 1",
        r#"dualsync_apply_lag_seconds{map="items"} "#,
        "# TYPE dualsync_http_requests_total counter",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let history = wait_for(&s, "/api/v1/maps/items/history", "a sample with the applied changes", |h| {
        h.as_array().unwrap().iter().any(|x| x["applied_per_second"].as_f64().unwrap() > 0.0)
    });
    assert_eq!(history[0]["backlog"], json!([0, 0]), "{history}");
    let page = super::http_with(s.port, "GET", "/maps/items", &[("Cookie", &format!("dualsync_token={}", s.viewer))], None);
    assert!(page.body.contains("<polyline"), "the map page draws the chart: {}", page.body);
    let out = s.stop();
    let lines: Vec<Value> = out.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("a JSON log line")).collect();
    assert!(lines.iter().any(|l| l["fields"]["message"] == "applied" && l["fields"]["map"] == "items"), "{out}");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "request" && l["fields"]["path"] == "/metrics"), "{out}");
}

#[test]
fn the_error_log_exports_whole_as_csv_and_json() {
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Sqlite], "master") else { return };
    // More errors than one page of the export, one of them with a quote, a comma and a line break.
    let tricky = "say \"hi\", then\nbye";
    let rows: Vec<String> = (0..1500).map(|i| format!("('x{i:04}', 'a name too long {i}', {i})")).collect();
    s.db[0].exec(&format!("INSERT INTO item VALUES {}", rows.join(", ")));
    s.db[0].exec(&format!("INSERT INTO item VALUES ('y', '{}', 0)", tricky.replace('\'', "''")));
    let end = Instant::now() + Duration::from_secs(60);
    while s.w.count("state.db", "SELECT count(*) FROM errors") < 1501 {
        assert!(Instant::now() < end, "1,501 errors logged: {}", s.output());
        std::thread::sleep(Duration::from_millis(100));
    }
    let csv = s.get("/api/v1/errors/export?format=csv", &s.viewer);
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.head.to_ascii_lowercase().contains("content-type: text/csv"), "{}", csv.head);
    let mut reader = csv::Reader::from_reader(csv.body.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1501);
    assert_eq!(reader.headers().unwrap().get(8), Some("value"));
    assert!(records.iter().any(|r| r.get(8) == Some(tricky)), "the value with a quote, comma and line break survives");
    let json = s.get("/api/v1/errors/export?format=json&map=items", &s.viewer).json();
    let ids: Vec<i64> = json.as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 1501);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "each error once, oldest first");
    assert_eq!(s.get("/api/v1/errors/export?format=json&map=nomap", &s.viewer).json(), json!([]));
    assert_eq!(s.get("/api/v1/errors/export?format=xml", &s.viewer).status, 400);
    s.stop();
}

/// Polls a job until it ends; its last answer.
fn job_end(s: &Served, id: i64) -> Value {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let job = s.get(&format!("/api/v1/jobs/{id}"), &s.viewer).json();
        if !["running", "cancelling"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < end, "job {id} did not end: {job}\n{}", s.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn maps_are_stopped_started_and_synced_through_the_api_as_jobs() {
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Postgres], "master") else { return };
    let stopped = s.post("/api/v1/maps/items/stop", &s.operator, "");
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert_eq!(s.get("/api/v1/maps/items", &s.viewer).json()["state"], "stopped");
    assert_eq!(s.post("/api/v1/maps/items/stop", &s.operator, "").status, 409, "a stopped map is not stopped twice");
    // Rows written while the map is stopped reach b through the start's initial sync.
    let rows: Vec<String> = (0..20_000).map(|i| format!("('n{i:05}', 'new {i}', {i})")).collect();
    s.db[0].exec(&format!("INSERT INTO item VALUES {}", rows.join(", ")));
    let started = s.post("/api/v1/maps/items/start", &s.operator, "{}");
    assert_eq!(started.status, 202, "{}", started.body);
    let job = started.json();
    assert_eq!((job["kind"].as_str(), job["actor"].as_str()), (Some("start"), Some("otto")), "{job}");
    let twice = s.post("/api/v1/maps/items/start", &s.operator, "{}");
    assert_eq!(twice.status, 409, "one start at a time: {}", twice.body);
    let done = job_end(&s, job["id"].as_i64().unwrap());
    assert_eq!(done["status"], "done", "{done}");
    assert!(done["rows"].as_u64().unwrap() >= 20_003, "progress counted the rows read: {done}");
    assert!(done["rows_per_second"].as_f64().unwrap() > 0.0, "{done}");
    let summary = done["summary"].as_str().unwrap();
    assert!(summary.starts_with("map items is running, initial sync run") && summary.ends_with("(ok)"), "{done}");
    assert_eq!((done["partitions"].as_u64(), done["partitions_done"].as_u64()), (Some(1), Some(1)), "{done}");
    assert_eq!(done["eta_seconds"], Value::Null, "no time left once it ended");
    assert_eq!(s.dump(1).len(), 20_003);
    assert_eq!(s.get("/api/v1/maps/items", &s.viewer).json()["state"], "running");
    // The start's sync is a run with its counts; the apps say how they are reached and captured.
    let runs = s.get("/api/v1/runs?kind=sync", &s.viewer).json();
    let run = runs["items"][0]["id"].as_i64().unwrap();
    let detail = s.get(&format!("/api/v1/runs/{run}"), &s.viewer).json();
    assert_eq!(detail["partitions"][0]["inserted"], json!([0, 20_000]), "{detail}");
    assert_eq!(detail["status"], "ok");
    assert_eq!(s.get("/api/v1/runs/999999", &s.viewer).status, 404);
    let apps = s.get("/api/v1/apps", &s.viewer).json();
    assert_eq!(apps[0]["app"], "a");
    assert_eq!((apps[0]["kind"].as_str(), apps[1]["kind"].as_str()), (Some("sqlite"), Some("postgres")), "{apps}");
    assert!(apps.as_array().unwrap().iter().all(|a| a["reachable"] == true), "{apps}");
    assert_eq!(apps[1]["tables"][0]["table"], "item");
    assert_eq!(apps[1]["tables"][0]["privileges"]["select"], true, "{apps}");
    assert!(!apps.to_string().contains("password"), "{apps}");
    // Live sync goes on after a start through the service.
    s.db[0].exec("UPDATE item SET qty = 7 WHERE k = 'n00007'");
    s.wait_for_row(1, "n00007|new 7|7");

    // A sync job: started maps are the live loop's unless asked whole.
    let refused = s.post("/api/v1/sync", &s.operator, "{}");
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.error().contains("full = true"), "{}", refused.body);
    assert_eq!(s.post("/api/v1/sync", &s.operator, r#"{"maps": ["nomap"]}"#).status, 404);
    let full = s.post("/api/v1/sync", &s.operator, r#"{"full": true}"#);
    assert_eq!(full.status, 202, "{}", full.body);
    let done = job_end(&s, full.json()["id"].as_i64().unwrap());
    assert_eq!(done["status"], "done", "{done}");
    assert!(done["summary"].as_str().unwrap().ends_with(": ok"), "nothing differed: {done}");
    // Plan and check as jobs: their reports come with the job.
    let planned = s.post("/api/v1/plan", &s.operator, r#"{"maps": ["items"]}"#);
    assert_eq!(planned.status, 202, "{}", planned.body);
    let plan = job_end(&s, planned.json()["id"].as_i64().unwrap());
    assert_eq!(plan["status"], "done", "{plan}");
    assert_eq!(plan["report"]["partitions"][0]["map"], "items", "{plan}");
    assert_eq!(plan["report"]["partitions"][0]["inserts"], json!([0, 0]), "in step: nothing to insert {plan}");
    let checked = s.post("/api/v1/check", &s.operator, "");
    let check = job_end(&s, checked.json()["id"].as_i64().unwrap());
    assert_eq!(check["status"], "done", "{check}");
    assert_eq!(check["report"]["apps"][1]["name"], "b", "{check}");
    assert!(check["summary"].as_str().unwrap().starts_with("0 errors"), "{check}");
    let metrics = s.get("/metrics", &s.viewer).body;
    for line in [r#"dualsync_sync_rows_total{map="items",app="b",what="inserted"} 20000"#, "dualsync_sync_duration_seconds_count 2"] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let jobs = s.get("/api/v1/jobs", &s.viewer).json();
    assert_eq!(jobs.as_array().unwrap().len(), 4, "{jobs}");
    assert_eq!(jobs[0]["kind"], "check", "newest first");
    assert!(jobs[0].get("report").is_none(), "lists leave reports out");
    let ended = s.post(&format!("/api/v1/jobs/{}/cancel", jobs[0]["id"]), &s.operator, "");
    assert_eq!(ended.status, 409, "an ended job is not cancelled: {}", ended.body);
    assert_eq!(s.post("/api/v1/jobs/999/cancel", &s.operator, "").status, 404);
    assert_eq!(s.post("/api/v1/jobs/1/cancel", &s.viewer, "").status, 403);
    s.stop();
}
