//! TLS end to end: a PostgreSQL ERP, a MariaDB CRM and a PostgreSQL state
//! store, each verified (`verify-full`, `VERIFY_IDENTITY`) with the test CA of
//! `.ci/tls.sh`. `check` shows each connection's TLS as the server reports it;
//! a certificate from another CA stops the sync before anything is written.

use crate::util::Workspace;
use dualsync_testkit::{Kind, TestDb};

const TABLE: &str = "CREATE TABLE {table} (co VARCHAR(10) NOT NULL, acct VARCHAR(20) NOT NULL, name VARCHAR(50), PRIMARY KEY (co, acct))";

const CONFIG: &str = r#"
[state]
url = "STATE"
[apps.erp]
url = "ERP"
[apps.crm]
url = "CRM"

[[maps]]
name = "customers"
[maps.erp]
table = "cust"
key = "acct"
company = "co"
[maps.crm]
table = "account"
key = "acct"
company = "co"
[[maps.columns]]
erp = "acct"
crm = "acct"
[[maps.columns]]
erp = "name"
crm = "name"
"#;

#[test]
fn verified_tls_to_every_server_and_a_wrong_ca_writes_nothing() {
    let Some(tls) = dualsync_testkit::tls_dir() else { return };
    let (Some(erp), Some(crm), Some(state)) = (TestDb::new(Kind::Postgres), TestDb::new(Kind::Mariadb), TestDb::new(Kind::Postgres)) else {
        return;
    };
    erp.exec(&TABLE.replace("{table}", "cust"));
    crm.exec(&TABLE.replace("{table}", "account"));
    erp.exec("INSERT INTO cust VALUES ('usmf', 'C1', 'One')");
    let by_name = |url: &str| url.replace("@127.0.0.1:", "@localhost:");
    let ca = tls.join("ca.crt").display().to_string();
    let config = |crm_ca: &str| {
        CONFIG
            .replace("\"STATE\"", &format!("\"{}?sslmode=verify-full&sslrootcert={ca}\"", by_name(&state.url)))
            .replace("\"ERP\"", &format!("\"{}?sslmode=verify-full&sslrootcert={ca}\"", by_name(&erp.url)))
            .replace("\"CRM\"", &format!("\"{}?ssl-mode=VERIFY_IDENTITY&ssl-ca={crm_ca}\"", by_name(&crm.url)))
    };
    let w = Workspace::new();
    w.config(&config(&ca));
    let sync = w.run(&["sync"]);
    assert_eq!(sync.code, 0, "{}{}", sync.stdout, sync.stderr);
    assert_eq!(crm.texts("SELECT name FROM account"), [Some("One".to_string())]);

    let check = w.run(&["check"]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    for settings in ["(sslmode=verify-full)", "(ssl-mode=VERIFY_IDENTITY)"] {
        let line = format!("certificate and host name verified {settings}");
        assert!(check.stdout.contains(&line), "{line:?} missing: {}", check.stdout);
    }
    let connections = check.stdout.lines().filter(|l| l.trim_start().starts_with("connection: TLSv1.")).count();
    assert_eq!(connections, 3, "the two apps and the state store: {}", check.stdout);
    let json = w.run(&["--format", "json", "check"]).json();
    assert!(json["apps"][0]["transport"].as_str().is_some_and(|t| t.starts_with("TLSv1.")), "{json}");
    assert!(json["state_transport"].as_str().is_some_and(|t| t.contains("verified")), "{json}");

    // The CRM's certificate checked against another CA: refused before anything is written.
    erp.exec("INSERT INTO cust VALUES ('usmf', 'C2', 'Two')");
    w.config(&config(&tls.join("other-ca.crt").display().to_string()));
    for args in [&["sync"][..], &["check"][..]] {
        let run = w.run(args);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert_eq!(run.code, 1, "{args:?}: {all}");
        for said in ["crm", "not issued by a CA in the CA file", "other-ca.crt", "set ssl-ca"] {
            assert!(all.contains(said), "{args:?} should say {said:?}: {all}");
        }
    }
    assert_eq!(crm.texts("SELECT acct FROM account"), [Some("C1".to_string())], "nothing written");
}

#[test]
fn check_warns_of_a_server_beyond_loopback_that_is_not_proven() {
    let Some(erp) = TestDb::new(Kind::Postgres) else { return };
    // This machine's own name: dualsync judges names as written (it does not resolve
    // them), so any name but localhost counts as beyond loopback. It must reach the server.
    let host = String::from_utf8(std::process::Command::new("hostname").output().unwrap().stdout).unwrap().trim().to_string();
    let reaches = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 5432)).is_ok_and(|mut a| a.any(|a| a.ip().is_loopback()));
    if host.is_empty() || !reaches {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: this machine's name {host:?} does not resolve to a loopback address");
        return;
    }
    erp.exec(&TABLE.replace("{table}", "cust"));
    let w = Workspace::new();
    w.exec("crm.db", &TABLE.replace("{table}", "account"));
    let url = erp.url.replace("@127.0.0.1:", &format!("@{host}:"));
    let config = CONFIG.replace("[state]\nurl = \"STATE\"\n", "").replace("\"CRM\"", "\"sqlite://crm.db\"");
    for (mode, said) in [
        ("require", format!("the connection to {host} is encrypted, but the server is not proven to be {host} (certificate not verified; sslmode=require)")),
        ("disable", format!("the connection to {host} is not encrypted (sslmode=disable)")),
    ] {
        w.config(&config.replace("\"ERP\"", &format!("\"{url}?sslmode={mode}\"")));
        let check = w.run(&["check"]);
        assert_eq!(check.code, 0, "a warning, not an error: {}{}", check.stdout, check.stderr);
        assert!(check.stdout.contains(&said), "{said:?} missing: {}", check.stdout);
        assert!(check.stdout.contains("use sslmode=verify-full with sslrootcert"), "{}", check.stdout);
    }
    // The same server by its loopback address: nothing to warn of.
    w.config(&config.replace("\"ERP\"", &format!("\"{}?sslmode=require\"", erp.url)));
    let check = w.run(&["check"]);
    assert!(check.stdout.contains("0 errors, 0 warnings"), "{}", check.stdout);
}
