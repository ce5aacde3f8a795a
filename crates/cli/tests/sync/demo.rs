use crate::util::{run_in, Workspace};

#[test]
fn the_demo_syncs_and_a_second_sync_changes_nothing() {
    let w = Workspace::new();
    let demo = w.run(&["demo", "--dir", "d", "--rows", "300"]);
    assert_eq!(demo.code, 0, "{}{}", demo.stdout, demo.stderr);
    assert!(demo.stdout.contains("0 errors, 0 warnings"), "check passes: {}", demo.stdout);
    assert!(demo.stdout.contains("rows failed"), "the demo's refused rows are reported: {}", demo.stdout);
    // Its next steps name this binary by its path, and end with the service and a token that works.
    let exe = env!("CARGO_BIN_EXE_dualsync");
    assert!(demo.stdout.contains(&format!("{exe} --config d/dualsync.toml serve")), "{}", demo.stdout);
    let token = demo.stdout.lines().map(str::trim).find(|l| l.starts_with("dst_")).expect("a token for the dashboard");
    let tokens = run_in(&w.path("d"), &["--format", "json", "token", "list"]).json();
    assert_eq!(tokens[0]["name"], "demo", "{tokens}");
    assert_eq!(tokens[0]["role"], "admin");
    assert_eq!(token.len(), 68);
    let dir = w.path("d");
    let again = run_in(&dir, &["--format", "json", "sync"]);
    assert_eq!(again.code, 3, "the same rows still fail: {}", again.stderr);
    assert_eq!(super::written(&again), 0, "nothing else changes");
    let errors = run_in(&dir, &["--format", "json", "errors"]).json();
    let errors = errors.as_array().unwrap();
    assert!(errors.len() > 5, "every failed row, not only five: {}", errors.len());
    assert!(errors.iter().all(|e| e["key"].is_array() && !e["message"].as_str().unwrap().is_empty()));
    // Running the demo again recreates its folder.
    assert_eq!(w.run(&["demo", "--dir", "d", "--rows", "300", "--quiet"]).code, 0);
    // But it never overwrites a folder it did not make.
    std::fs::create_dir(w.path("mine")).unwrap();
    std::fs::write(w.path("mine/keep.txt"), "x").unwrap();
    assert_eq!(w.run(&["demo", "--dir", "mine"]).code, 2);
    assert!(w.path("mine/keep.txt").exists());
}
