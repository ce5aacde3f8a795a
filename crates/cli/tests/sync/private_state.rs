//! What dualsync keeps stays its owner's: a new SQLite state store (and the
//! -wal and -shm files SQLite makes beside it) is created readable by its
//! owner only, and `check` warns of a store or a password file others can read.

use std::os::unix::fs::PermissionsExt;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_state_store_is_private_and_check_warns_of_files_others_can_read() {
    let w = super::apps();
    w.exec("erp.db", "INSERT INTO cust (co, acct, name) VALUES ('C1', 'A1', 'one')");
    assert_eq!(w.run(&["sync"]).code, 0);
    let store = w.path(".dualsync/state.db");
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let file = w.path(&format!(".dualsync/state.db{suffix}"));
        if file.exists() {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
    let check = w.run(&["check"]);
    assert!(check.stdout.contains("0 errors, 0 warnings"), "{}", check.stdout);

    // A store made readable by others, and a password file too: warnings with the fix.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(w.path("pw.txt"), "secret\n").unwrap();
    std::fs::set_permissions(w.path("pw.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = std::fs::read_to_string(w.path("dualsync.toml")).unwrap();
    w.config(&config.replace("[apps.erp]\nurl = \"sqlite://erp.db\"", "[apps.erp]\nurl = \"sqlite://erp.db\"\npassword_file = \"pw.txt\""));
    let check = w.run(&["--format", "json", "check"]);
    assert_eq!(check.code, 0, "warnings only: {}", check.stderr);
    let findings = check.json()["findings"].to_string();
    assert!(findings.contains("the state store, which holds the values of refused rows,"), "{findings}");
    assert!(findings.contains("can be read by other users (mode 644)"), "{findings}");
    assert!(findings.contains("chmod 600 .dualsync/state.db"), "{findings}");
    assert!(findings.contains("the password_file") && findings.contains("pw.txt"), "{findings}");
    assert!(!findings.contains("secret"), "the password itself is never shown");
}
