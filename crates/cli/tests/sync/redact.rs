//! `redact = true`: a column's values never reach the state store (grepped
//! byte by byte) nor any output, though a server quotes the refused row in its
//! message and a conflict holds both apps' rows. A hash stands for them.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};

const CONFIG: &str = r#"
[state]
url = "sqlite://state.db"
[apps.erp]
url = "sqlite://erp.db"
[apps.crm]
url = "CRM"
capture = "trigger"

[[maps]]
name = "people"
master = "erp"
conflict = "manual"
[maps.erp]
table = "person"
key = "id"
[maps.crm]
table = "person"
key = "id"
[[maps.columns]]
erp = "id"
crm = "id"
[[maps.columns]]
erp = "name"
crm = "name"
[[maps.columns]]
erp = "ssn"
crm = "ssn"
redact = true
"#;

/// Values that must appear nowhere dualsync keeps or prints.
const SECRETS: [&str; 4] = ["SSN-SECRET-ALPHA-0001", "123-45-6789", "CONFLICT-E1", "CONFLICT-C2"];

fn assert_hidden(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows the redacted value {s:?}:\n{text}");
    }
}

#[test]
fn a_redacted_column_is_nowhere_in_the_store_nor_in_any_output() {
    let Some(crm) = TestDb::new(Kind::Postgres) else { return };
    // The server quotes the whole refused row: "Failing row contains (P1, Ann, SSN-…)".
    crm.exec("CREATE TABLE person (id TEXT PRIMARY KEY, name TEXT, ssn TEXT CHECK (length(ssn) <= 11))");
    let w = Workspace::new();
    w.exec("erp.db", "CREATE TABLE person (id TEXT PRIMARY KEY, name TEXT, ssn TEXT)");
    w.exec("erp.db", "INSERT INTO person VALUES ('P1', 'Ann', 'SSN-SECRET-ALPHA-0001'), ('P2', 'Bob', '123-45-6789')");
    w.config(&CONFIG.replace("\"CRM\"", &format!("{:?}", crm.url)));
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let r = w.run(args);
        outputs.push((args.join(" "), format!("{}{}", r.stdout, r.stderr)));
        r
    };

    run(&["plan", "--probe"]);
    let sync = run(&["sync"]);
    assert_eq!(sync.code, 3, "P1 refused: {}{}", sync.stdout, sync.stderr);
    let errors = run(&["--format", "json", "errors"]).json();
    let error = &errors[0];
    assert_eq!(error["column"], "ssn", "{errors}");
    assert!(error["value"].as_str().unwrap().starts_with("[redacted sha256:"), "{errors}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("Failing row contains (P1, Ann, [redacted sha256:"), "the server's message, with the value hashed: {message}");
    run(&["errors"]);
    run(&["--format", "csv", "errors"]);
    run(&["-v", "errors"]);

    // A conflict: both apps change P2's ssn; `manual` queues both rows.
    assert_eq!(run(&["start", "people"]).code, 3, "P1 is still refused");
    w.exec("erp.db", "UPDATE person SET ssn = 'CONFLICT-E1' WHERE id = 'P2'");
    crm.exec("UPDATE person SET ssn = 'CONFLICT-C2' WHERE id = 'P2'");
    run(&["sync"]);
    let conflicts = run(&["--format", "json", "conflicts"]).json();
    assert_eq!(conflicts.as_array().map(Vec::len), Some(1), "{conflicts}");
    assert!(conflicts.to_string().contains("[redacted sha256:"), "{conflicts}");
    run(&["conflicts"]);
    run(&["status"]);
    run(&["--format", "json", "status"]);

    for (args, text) in &outputs {
        assert_hidden(&format!("dualsync {args}"), text);
    }
    for file in ["state.db", "state.db-wal"] {
        if let Ok(bytes) = std::fs::read(w.path(file)) {
            assert_hidden(file, &String::from_utf8_lossy(&bytes));
        }
    }
    // The apps themselves keep their values: only dualsync's records hide them.
    assert_eq!(crm.texts("SELECT ssn FROM person WHERE id = 'P2'"), [Some("CONFLICT-C2".to_string())]);
}

#[test]
fn a_key_or_lookup_column_cannot_be_redacted() {
    let w = Workspace::new();
    w.config(
        &CONFIG
            .replace("\"CRM\"", "\"sqlite://crm.db\"")
            .replace("erp = \"id\"\ncrm = \"id\"", "erp = \"id\"\ncrm = \"id\"\nredact = true"),
    );
    let check = w.run(&["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.contains("maps[0].columns[0].redact: a key or company column cannot be redacted"), "{}", check.stderr);
}
