//! Issue 10, item 2: the references of rows born in either app survive a
//! self-referencing lookup (two passes), on the first sync and on later ones,
//! and in live sync when a row refers to a new row whose change is read later.

use crate::util::{text, Workspace};

const CONFIG: &str = r#"
[apps.erp]
url = "sqlite://erp.db"
[apps.crm]
url = "sqlite://crm.db"

[[maps]]
name = "employees"
master = "erp"
[maps.erp]
table = "emp"
key = "no"
[maps.crm]
table = "employee"
key = "no"
id = "id"
id_default = "uuid"
[[maps.columns]]
erp = "no"
crm = "no"
[[maps.columns]]
erp = "name"
crm = "name"
[[maps.columns]]
erp = "manager"
crm = "manager_id"
lookup = "employees"
"#;

fn apps() -> Workspace {
    let w = Workspace::new();
    w.exec("erp.db", "CREATE TABLE emp (no TEXT PRIMARY KEY, name TEXT, manager TEXT)");
    w.exec("crm.db", "CREATE TABLE employee (id TEXT PRIMARY KEY, no TEXT UNIQUE NOT NULL, name TEXT, manager_id TEXT)");
    w.config(CONFIG);
    w
}

/// Each employee with its manager's number, as each app sees it.
fn managers(w: &Workspace) -> [Vec<String>; 2] {
    let erp = w.rows("erp.db", "SELECT no || '>' || coalesce(manager, '-') FROM emp ORDER BY no");
    let crm = w.rows(
        "crm.db",
        "SELECT e.no || '>' || coalesce(m.no, '-') FROM employee e LEFT JOIN employee m ON m.id = e.manager_id ORDER BY e.no",
    );
    [erp, crm].map(|rows| rows.iter().map(|r| text(&r[0]).to_string()).collect())
}

fn sync(w: &Workspace) -> serde_json::Value {
    let run = w.run(&["--format", "json", "sync"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run.json()
}

#[test]
fn references_of_rows_born_in_the_non_master_app_survive_both_passes() {
    let w = apps();
    w.exec("erp.db", "INSERT INTO emp VALUES ('E1', 'Boss', NULL), ('E2', 'Erp hire', 'E1')");
    // Born in the CRM (not the master) before the first sync, referring to each other and to an ERP row.
    w.exec("crm.db", "INSERT INTO employee VALUES ('c3', 'E3', 'Crm lead', NULL), ('c4', 'E4', 'Crm hire', 'c3')");
    sync(&w);
    // The CRM's lead now reports to the ERP's boss; a new CRM hire reports to the ERP's hire.
    let boss = text(&w.one("crm.db", "SELECT id FROM employee WHERE no = 'E1'")).to_string();
    let erp_hire = text(&w.one("crm.db", "SELECT id FROM employee WHERE no = 'E2'")).to_string();
    w.exec("crm.db", &format!("UPDATE employee SET manager_id = '{boss}' WHERE no = 'E3'"));
    w.exec("crm.db", &format!("INSERT INTO employee VALUES ('c5', 'E5', 'New hire', '{erp_hire}')"));
    sync(&w);
    let expected = ["E1>-", "E2>E1", "E3>E1", "E4>E3", "E5>E2"];
    assert_eq!(managers(&w), [expected, expected].map(|e| e.map(String::from).to_vec()));
    // And nothing is left to write.
    let third = sync(&w);
    assert_eq!(third["totals"]["updated"], serde_json::json!([0, 0]), "{third}");
    assert_eq!(third["totals"]["inserted"], serde_json::json!([0, 0]), "{third}");
}

#[test]
fn a_live_row_referring_to_a_new_row_not_read_yet_gets_its_reference() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let w = apps();
    w.exec("erp.db", "INSERT INTO emp VALUES ('E1', 'Boss', NULL)");
    let start = w.run(&["start", "employees"]);
    assert_eq!(start.code, 0, "{}{}", start.stdout, start.stderr);
    // The hire is written (and captured) before its new manager: a round of one change reads the
    // hire alone, while the manager is already in the ERP but not yet in the CRM.
    w.exec("erp.db", "INSERT INTO emp VALUES ('E2', 'Hire', 'E3'); INSERT INTO emp VALUES ('E3', 'New manager', 'E1');");
    let mut run = Command::new(env!("CARGO_BIN_EXE_dualsync"))
        .current_dir(w.dir.path())
        .env_remove("DUALSYNC_CONFIG")
        .args(["run", "--poll-ms", "5", "--batch", "1"])
        .stdout(Stdio::from(std::fs::File::create(w.path("run.out")).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(w.path("run.err")).unwrap()))
        .spawn()
        .expect("start dualsync run");
    let expected: Vec<String> = ["E1>-", "E2>E3", "E3>E1"].map(String::from).to_vec();
    let end = Instant::now() + Duration::from_secs(20);
    while managers(&w)[1] != expected && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: stops our own child process, which finishes its batch and exits.
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    let status = run.wait().expect("dualsync run ends");
    let log =
        std::fs::read_to_string(w.path("run.out")).unwrap_or_default() + &std::fs::read_to_string(w.path("run.err")).unwrap_or_default();
    assert_eq!(managers(&w), [expected.clone(), expected], "{log}");
    assert_eq!(status.code(), Some(0), "{log}");
    // The manager was taken along with the hire: nothing failed, not even for a moment.
    let errors = w.run(&["--format", "json", "errors", "--all"]).json();
    assert_eq!(errors, serde_json::json!([]), "{log}");
}

#[test]
fn a_live_reference_to_a_row_that_exists_nowhere_stays_in_the_error_log_until_retried() {
    let w = apps();
    let start = w.run(&["start", "employees"]);
    assert_eq!(start.code, 0, "{}{}", start.stdout, start.stderr);
    w.exec("erp.db", "INSERT INTO emp VALUES ('E2', 'Hire', 'E9')");
    let first = w.run(&["sync"]);
    assert_eq!(first.code, 3, "a reference that cannot be set is a failed row:\n{}{}", first.stdout, first.stderr);
    let open = w.run(&["--format", "json", "errors"]).json();
    assert_eq!(open.as_array().map(Vec::len), Some(1), "{open}");
    assert!(open[0]["message"].as_str().unwrap_or_default().contains("E9"), "{open}");
    // The manager arrives; the hire's own row did not change, so `retry` sets the reference.
    w.exec("erp.db", "INSERT INTO emp VALUES ('E9', 'Late manager', NULL)");
    let second = w.run(&["sync"]);
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    let retry = w.run(&["retry"]);
    assert_eq!(retry.code, 0, "{}{}", retry.stdout, retry.stderr);
    let expected: Vec<String> = ["E2>E9", "E9>-"].map(String::from).to_vec();
    assert_eq!(managers(&w), [expected.clone(), expected]);
    assert_eq!(w.run(&["--format", "json", "errors"]).json(), serde_json::json!([]));
}
