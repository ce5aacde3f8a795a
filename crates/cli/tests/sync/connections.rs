//! Apps that cannot be reached: each says which app, where, and what to do;
//! exit 1; nothing is written; the password never appears.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};

const SECRET: &str = "s3cret-Hunter2";

fn with_crm_url(url: &str) -> Workspace {
    let w = super::apps();
    w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'x')");
    let config = super::CONFIG.replace("url = \"sqlite://crm.db\"", &format!("url = \"{url}\"\npassword_env = \"DUALSYNC_TEST_SECRET\""));
    w.config(&config);
    w
}

fn run_with_secret(w: &Workspace, args: &[&str]) -> crate::util::Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dualsync"))
        .current_dir(w.dir.path())
        .env("DUALSYNC_TEST_SECRET", SECRET)
        .args(args)
        .output()
        .unwrap();
    crate::util::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn assert_unreachable(w: &Workspace, expect: &[&str]) {
    for args in [&["check"][..], &["sync"][..], &["--format", "json", "check"][..]] {
        let run = run_with_secret(w, args);
        let all = if args.contains(&"json") { strings_of(&run.json()) } else { format!("{}{}", run.stdout, run.stderr) };
        assert_eq!(run.code, 1, "{args:?}: {all}");
        assert!(!all.contains(SECRET), "{args:?} printed the password: {all}");
        for e in expect {
            assert!(all.contains(e), "{args:?} should say {e:?}: {all}");
        }
    }
    assert!(!w.path(".dualsync").exists(), "nothing written, not even the state store");
    assert_eq!(w.count("erp.db", "SELECT count(*) FROM cust"), 1);
}

#[test]
fn a_postgres_server_that_is_down() {
    let w = with_crm_url("postgres://sync@127.0.0.1:1/crm");
    assert_unreachable(&w, &["app crm", "postgres://sync@127.0.0.1:1/crm", "check that the server runs"]);
}

#[test]
fn a_postgres_database_that_does_not_exist() {
    if TestDb::new(Kind::Postgres).is_none() {
        return;
    }
    let w = with_crm_url("postgres://postgres@127.0.0.1:5432/dualsync_no_such_db");
    assert_unreachable(&w, &["app crm", "\"dualsync_no_such_db\" does not exist", "create the database"]);
}

#[test]
fn a_mariadb_password_that_is_wrong() {
    if TestDb::new(Kind::Mariadb).is_none() {
        return;
    }
    let w = with_crm_url("mysql://root@127.0.0.1:3306/mysql");
    assert_unreachable(&w, &["app crm", "mysql://root@127.0.0.1:3306/mysql", "Access denied", "check the user and the password"]);
}

#[test]
fn a_missing_table_on_a_server() {
    let Some(crm) = TestDb::new(Kind::Postgres) else { return };
    let w = super::apps();
    w.config(&super::CONFIG.replace("sqlite://crm.db", &crm.url));
    let run = w.run(&["sync"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("table grp: table \"grp\" does not exist"), "{}", run.stderr);
}

/// Every key and string of a JSON document, for searching its text.
fn strings_of(json: &serde_json::Value) -> String {
    match json {
        serde_json::Value::String(s) => format!("{s} "),
        serde_json::Value::Array(a) => a.iter().map(strings_of).collect(),
        serde_json::Value::Object(o) => {
            o.iter().map(|(k, v)| if k == "app" { format!("app {}", strings_of(v)) } else { strings_of(v) }).collect()
        }
        other => format!("{other} "),
    }
}

#[test]
fn each_missing_privilege_is_named_with_the_statement_that_grants_it() {
    let Some(crm) = TestDb::new(Kind::Postgres) else { return };
    crm.exec(super::kinds::CRM);
    let role = format!("dualsync_role_{}", std::process::id());
    crm.exec(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; GRANT SELECT, INSERT, UPDATE ON grp TO {role}"));
    let url = crm.url.replacen("postgres@", &format!("{role}@"), 1);
    for missing in ["SELECT", "INSERT", "UPDATE"] {
        let granted: Vec<&str> = ["SELECT", "INSERT", "UPDATE"].into_iter().filter(|p| *p != missing).collect();
        crm.exec(&format!("REVOKE ALL ON account FROM {role}; GRANT {} ON account TO {role}", granted.join(", ")));
        let w = super::apps();
        w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'x')");
        w.config(&super::CONFIG.replace("sqlite://crm.db", &url));
        let check = w.run(&["check"]);
        assert_eq!(check.code, 1, "{missing}: {}{}", check.stdout, check.stderr);
        assert!(check.stdout.contains(&format!("user {role} lacks {missing} on table account")), "{missing}: {}", check.stdout);
        assert!(check.stdout.contains(&format!("GRANT {missing} ON TABLE \"account\" TO \"{role}\";")), "{missing}: {}", check.stdout);
        // What live sync needs besides is named too, as a warning.
        assert!(
            check.stdout.contains(&format!(
                "user {role} lacks DELETE, TRIGGER on table account and CREATE ON SCHEMA \"public\": live sync (`dualsync start`) needs it"
            )),
            "{}",
            check.stdout
        );
        assert!(check.stdout.contains(&format!("GRANT DELETE, TRIGGER ON TABLE \"account\" TO \"{role}\";")), "{}", check.stdout);
        let sync = w.run(&["sync"]);
        assert_eq!(sync.code, 1, "{missing}: found before anything is written: {}", sync.stderr);
        assert_eq!(crm.texts("SELECT CAST(count(*) AS TEXT) FROM account"), [Some("0".to_string())]);
    }
    crm.exec(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
}

#[test]
fn a_mariadb_user_missing_a_privilege_is_warned_with_the_grant() {
    let Some(crm) = TestDb::new(Kind::Mariadb) else { return };
    crm.exec(super::kinds::CRM);
    let user = format!("dsu{}", std::process::id());
    let db = crm.url.rsplit('/').next().unwrap().to_string();
    for host in ["%", "localhost"] {
        crm.exec(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'{host}'; GRANT SELECT, UPDATE ON {db}.account TO '{user}'@'{host}'; GRANT ALL ON {db}.grp TO '{user}'@'{host}'"
        ));
    }
    let w = super::apps();
    w.config(&super::CONFIG.replace("sqlite://crm.db", &format!("mysql://{user}@127.0.0.1:3306/{db}")));
    let check = w.run(&["check"]);
    for host in ["%", "localhost"] {
        crm.exec(&format!("DROP USER IF EXISTS '{user}'@'{host}'"));
    }
    assert_eq!(check.code, 0, "a warning, since grants through roles are not listed: {}{}", check.stdout, check.stderr);
    assert!(check.stdout.contains(&format!("seems to lack INSERT on table account")), "{}", check.stdout);
    assert!(check.stdout.contains(&format!("GRANT INSERT ON `{db}`.`account` TO '{user}'@")), "{}", check.stdout);
    // Live sync's needs: deletes, triggers, and seeing other users' transactions.
    assert!(check.stdout.contains("lacks DELETE, TRIGGER on table account and PROCESS ON *.*"), "{}", check.stdout);
    assert!(check.stdout.contains(&format!("GRANT PROCESS ON *.* TO '{user}'@")), "{}", check.stdout);
}
