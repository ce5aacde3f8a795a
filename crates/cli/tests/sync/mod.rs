//! Sync tests on a small ERP/CRM pair: customers with a group lookup, a
//! company column, one-way columns, a value translation and a CRM filter.

mod basics;
mod bench;
mod companies;
mod company_key;
mod connections;
mod cycles;
mod demo;
mod exact_values;
mod failures;
mod fencing;
mod json_report;
mod kinds;
mod live;
mod lookups;
mod migrate;
mod model;
mod odata;
mod odata_oauth;
mod one_process;
mod plan;
mod private_state;
mod redact;
mod retention;
mod rules;
mod scale;
mod scale_out;
mod sqlite_journal;
mod text;
mod tls;
mod types_matrix;

use crate::util::Workspace;
use std::process::{Child, Command, Stdio};

pub const ERP: &str = "
    CREATE TABLE grp (co TEXT NOT NULL, code TEXT NOT NULL, label TEXT, PRIMARY KEY (co, code));
    CREATE TABLE cust (co TEXT NOT NULL, acct TEXT NOT NULL, name TEXT, credit REAL, email TEXT,
                       terms TEXT, grp TEXT, note TEXT, data BLOB, PRIMARY KEY (co, acct));";

pub const CRM: &str = "
    CREATE TABLE grp (id TEXT PRIMARY KEY, co TEXT NOT NULL, code TEXT NOT NULL, label TEXT, UNIQUE (co, code));
    CREATE TABLE account (id TEXT PRIMARY KEY, co TEXT, num TEXT NOT NULL,
                          name TEXT NOT NULL CHECK (length(name) <= 20), credit REAL, email TEXT,
                          terms INTEGER, grp_id TEXT, note TEXT, data BLOB,
                          active INTEGER NOT NULL DEFAULT 1, UNIQUE (co, num));";

pub const CONFIG: &str = r#"
[apps.erp]
url = "sqlite://erp.db"

[apps.crm]
url = "sqlite://crm.db"

[[maps]]
name = "groups"
[maps.erp]
table = "grp"
key = "code"
company = "co"
[maps.crm]
table = "grp"
key = "code"
company = "co"
id = "id"
id_default = "uuid"
[[maps.columns]]
erp = "code"
crm = "code"
[[maps.columns]]
erp = "label"
crm = "label"

[[maps]]
name = "customers"
master = "erp"
[maps.erp]
table = "cust"
key = "acct"
company = "co"
[maps.crm]
table = "account"
key = "num"
company = "co"
id = "id"
id_default = "uuid"
filter = "active = 1"
[[maps.columns]]
erp = "acct"
crm = "num"
[[maps.columns]]
erp = "name"
crm = "name"
[[maps.columns]]
erp = "credit"
crm = "credit"
direction = "erp->crm"
[[maps.columns]]
erp = "email"
crm = "email"
direction = "crm->erp"
[[maps.columns]]
erp = "terms"
crm = "terms"
values = { Net30 = "1", Net60 = "2" }
[[maps.columns]]
erp = "grp"
crm = "grp_id"
lookup = "groups"
[[maps.columns]]
erp = "note"
crm = "note"
[[maps.columns]]
erp = "data"
crm = "data"
"#;

/// Two empty apps with the fixture's tables and config (master = erp).
pub fn apps() -> Workspace {
    let w = Workspace::new();
    w.exec("erp.db", ERP);
    w.exec("crm.db", CRM);
    w.config(CONFIG);
    w
}

/// Totals of a `sync --format json` run: (inserted, updated) per side, failed, unchanged.
pub fn totals(run: &crate::util::Run) -> serde_json::Value {
    run.json()["totals"].clone()
}

/// Starts dualsync in the background in `w` with `args`, its output in `LOG.out` and `LOG.err`.
pub fn spawn(w: &Workspace, args: &[&str], log: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dualsync"))
        .current_dir(w.dir.path())
        .env_remove("DUALSYNC_CONFIG")
        .args(args)
        .stdout(Stdio::from(std::fs::File::create(w.path(&format!("{log}.out"))).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(w.path(&format!("{log}.err"))).unwrap()))
        .spawn()
        .expect("start dualsync")
}

/// Runs `sync` until the state store lets it in: while another process holds
/// it (`in use by`), again every 100 ms, until `limit` after `since`.
pub fn sync_when_free(w: &Workspace, since: std::time::Instant, limit: std::time::Duration) -> crate::util::Run {
    loop {
        let next = w.run(&["sync"]);
        if next.code == 0 {
            return next;
        }
        assert!(next.stderr.contains("in use by"), "{}\n{}", next.stdout, next.stderr);
        assert!(since.elapsed() < limit, "no takeover within the lease and then some");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn written(run: &crate::util::Run) -> u64 {
    let t = totals(run);
    ["inserted", "updated"].iter().flat_map(|k| t[k].as_array().unwrap().iter().map(|n| n.as_u64().unwrap())).sum()
}
