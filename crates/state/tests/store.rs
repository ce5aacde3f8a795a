//! The state store's behaviour, the same on SQLite and PostgreSQL.

use dualsync_model::config::DatabaseUrl;
use dualsync_state::{Counts, ErrorQuery, NewError, RunStatus, StateError, StateStore};
use dualsync_testkit::{Kind, TestDb};

fn each_store(case: impl Fn(&TestDb, &dyn Fn() -> StateStore)) {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let Some(db) = TestDb::new(kind) else { continue };
        let url: DatabaseUrl = db.database_url();
        let open = || StateStore::open_url(&url, None).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        case(&db, &open);
    }
}

fn error(key: &str, message: &str) -> NewError {
    NewError {
        map: "customers".into(),
        company: "C1".into(),
        source_app: "erp".into(),
        target_app: "crm".into(),
        key: format!("[\"{key}\"]"),
        column: Some("name".into()),
        value: Some("x".into()),
        message: message.into(),
    }
}

#[test]
fn runs_and_partitions_are_recorded() {
    each_store(|_, open| {
        let store = open();
        let run = store.begin_run("sync").unwrap();
        let p = store.begin_partition(run, "customers", "C1", ["erp", "crm"]).unwrap();
        let counts = Counts {
            read: [10, 8],
            inserted: [0, 2],
            updated: [1, 0],
            failed: [0, 1],
            unchanged: 7,
            no_company: [0, 0],
            ..Default::default()
        };
        store.finish_partition(p, &counts, RunStatus::RowsFailed, None).unwrap();
        store.finish_run(run, RunStatus::RowsFailed, None).unwrap();
        let parts = store.partitions_of_run(run).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].counts.read, [10, 8]);
        assert_eq!(parts[0].status, "rows_failed");
        assert!(parts[0].ended_at.as_deref().unwrap().ends_with('Z'));
        assert_eq!(store.last_partitions().unwrap()[0].run_id, run);
    });
}

#[test]
fn the_error_log_keeps_one_open_entry_per_row_and_counts_attempts() {
    each_store(|_, open| {
        let store = open();
        let run1 = store.begin_run("sync").unwrap();
        store.record_errors(run1, &[error("A1", "too long"), error("A2", "null")]).unwrap();
        let run2 = store.begin_run("sync").unwrap();
        store.record_errors(run2, &[error("A1", "still too long")]).unwrap();
        let open_errors = store.errors(&ErrorQuery::default()).unwrap();
        assert_eq!(open_errors.len(), 2);
        let a1 = open_errors.iter().find(|e| e.key == "[\"A1\"]").unwrap();
        assert_eq!((a1.attempts, a1.run_id, a1.message.as_str()), (2, run2, "still too long"));
        // A complete run of the partition resolves what it did not hit again.
        assert_eq!(store.resolve_errors_not_in_run("customers", "C1", run2).unwrap(), 1);
        assert_eq!(store.errors(&ErrorQuery::default()).unwrap().len(), 1);
        assert_eq!(store.errors(&ErrorQuery { include_resolved: true, ..Default::default() }).unwrap().len(), 2);
        assert_eq!(store.errors(&ErrorQuery { ids: vec![a1.id], ..Default::default() }).unwrap().len(), 1);
        assert_eq!(store.errors(&ErrorQuery { run: Some(run1), include_resolved: true, ..Default::default() }).unwrap().len(), 1);
        let all = ErrorQuery { include_resolved: true, ..Default::default() };
        assert_eq!(store.error_count(&all).unwrap(), 2);
        let first = store.errors(&ErrorQuery { limit: Some(1), ..all }).unwrap();
        assert_eq!((first.len(), first[0].key.as_str()), (1, "[\"A1\"]"), "the oldest first");
        store.resolve_row("customers", "C1", "[\"A1\"]").unwrap();
        assert_eq!(store.open_error_count("customers").unwrap(), 0);
        // A row that fails again after being resolved gets a new entry.
        store.record_errors(run2, &[error("A1", "again")]).unwrap();
        assert_eq!(store.open_error_count("customers").unwrap(), 1);
    });
}

#[test]
fn key_hashes_are_kept_per_partition_and_forgotten_when_unseen() {
    each_store(|_, open| {
        let store = open();
        let keys: Vec<(String, Vec<u8>)> = (0..5000).map(|i| (format!("[\"K{i:05}\"]"), vec![i as u8; 16])).collect();
        store.record_key_bases("m", "C1", 1, &keys).unwrap();
        store.record_key_bases("m", "C2", 1, &keys[..10]).unwrap();
        assert_eq!(store.key_count("m").unwrap(), 5010);
        store.record_key_bases("m", "C1", 2, &[(keys[7].0.clone(), vec![9; 24])]).unwrap();
        assert_eq!(store.key_base("m", "C1", &keys[7].0).unwrap(), Some(vec![9; 24]));
        assert_eq!(store.forget_keys_not_in_run("m", "C1", 2).unwrap(), 4999);
        assert_eq!(store.key_count("m").unwrap(), 11, "C2 is untouched");
        assert_eq!(store.key_base("m", "C1", &keys[8].0).unwrap(), None);
    });
}

#[test]
fn migrations_run_once_and_a_newer_store_is_refused() {
    each_store(|db, open| {
        drop(open());
        let store = open(); // a second open finds the schema in place
        store.begin_run("sync").unwrap();
        drop(store);
        db.exec("INSERT INTO schema_version (version) VALUES (99)");
        let err = StateStore::open_url(&db.database_url(), None).err().expect("refused");
        assert!(matches!(err, StateError::TooNew { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("upgrade dualsync"));
    });
}

#[test]
fn a_purge_deletes_in_batches_exactly_the_errors_it_names() {
    each_store(|db, open| {
        let store = open();
        let run = store.begin_run("sync").unwrap();
        // More than one batch of old errors, and one seen today.
        let old: Vec<NewError> = (0..10_050).map(|i| error(&format!("K{i}"), "too long")).collect();
        store.record_errors(run, &old).unwrap();
        db.exec("UPDATE errors SET last_seen = '2020-01-01T00:00:00.000Z'");
        db.exec("UPDATE errors SET status = 'resolved' WHERE key IN ('[\"K1\"]', '[\"K2\"]')");
        store.record_errors(run, &[error("today", "null")]).unwrap();
        assert_eq!(store.purge_errors(30, true, None).unwrap().resolved, 2, "only the settled ones");
        assert_eq!(store.purge_errors(30, false, Some("vendors")).unwrap().errors(), 0, "another map's");
        let p = store.purge_errors(30, false, None).unwrap();
        assert_eq!((p.open, p.resolved, p.skipped), (10_048, 0, 0));
        let left = store.errors(&ErrorQuery { include_resolved: true, ..Default::default() }).unwrap();
        assert_eq!(left.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["[\"today\"]"]);
    });
}
