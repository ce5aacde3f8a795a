use crate::exit::{usage, CliResult, OK};
use std::path::Path;

pub const STARTER: &str = r#"# dualsync.toml — see docs/config.md for every key.

# Where dualsync keeps run history, the error log and per-key hashes.
[state]
url = "sqlite://.dualsync/state.db"

# Two apps: any names. Relative SQLite paths start at this file's folder.
# Passwords never go in this file: use password_env = "VAR" or password_file = "PATH".
# On a server, live sync reads the database's log where it may (capture = "auto"; or "log", "trigger").
[apps.erp]
url = "sqlite://erp.db"

[apps.crm]
url = "sqlite://crm.db"

# One map per pair of tables.
[[maps]]
name = "customers"
threading = "multi"          # "single": one company at a time, rows in key order
workers = 4                  # companies synced in parallel
master = "erp"               # whose values win when both apps hold a row and differ

[maps.erp]
table = "Customers"
key = ["CustomerAccount"]    # identifies a row in both apps
company = "DataAreaId"       # optional: partitions the map by company

[maps.crm]
table = "account"
key = ["accountnumber"]
company = "company_code"
id = "accountid"             # the table's own primary key, generated on insert
id_default = "uuid"
# filter = "statecode = 0"   # only rows that match take part

[[maps.columns]]
erp = "CustomerAccount"
crm = "accountnumber"

[[maps.columns]]
erp = "Name"
crm = "name"

# [[maps.columns]]
# erp = "CreditLimit"
# crm = "creditlimit"
# direction = "erp->crm"     # "both" is the default
"#;

pub fn init(path: &Path, force: bool) -> CliResult {
    if path.exists() && !force {
        return Err(usage(format!("{} already exists; pass --force to overwrite it", path.display())));
    }
    std::fs::write(path, STARTER)?;
    println!("wrote {}: set the apps' urls, tables and columns, then run `dualsync check`", path.display());
    Ok(OK)
}
