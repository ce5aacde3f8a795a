//! `dualsync demo`: two sample apps, a complete config, `check`, then `sync`.

mod data;

use crate::cli::{Cli, Command, DemoArgs, SyncArgs};
use crate::exit::{usage, CliResult, OK, ROWS_FAILED};
use std::path::Path;

const ERP_SCHEMA: &str = include_str!("erp.sql");
const CRM_SCHEMA: &str = include_str!("crm.sql");
const CONFIG: &str = include_str!("dualsync.toml");
/// Marks a folder as the demo's own, so running the demo again may recreate it.
const MARKER: &str = ".dualsync-demo";

pub fn demo(cli: &Cli, args: &DemoArgs) -> CliResult {
    let dir = &args.dir;
    prepare_dir(dir)?;
    let rows = args.rows.max(10) as u64;
    create_app(&dir.join("erp.db"), ERP_SCHEMA, |db| data::fill_erp(db, rows))?;
    create_app(&dir.join("crm.db"), CRM_SCHEMA, |db| data::fill_crm(db, rows))?;
    let config_path = dir.join("dualsync.toml");
    std::fs::write(&config_path, CONFIG)?;
    std::fs::write(dir.join(MARKER), "created by `dualsync demo`; running it again recreates this folder\n")?;
    let json = crate::output::is_json(cli.format);
    if !json {
        println!("Created two sample apps in {}:", dir.display());
        println!(
            "  erp.db  an ERP: companies, currencies, customer groups, {rows} customers, vendors, warehouses, locations, contact persons"
        );
        println!("  crm.db  a CRM: GUID keys, lookups by id, stricter columns; overlapping, conflicting and CRM-only rows, some without a company");
        println!("  dualsync.toml  8 maps between them (read it: every line is commented in docs/config.md)\n");
        println!("── dualsync check ──");
    }
    let sub = |command| Cli { config: config_path.clone(), format: cli.format, verbose: cli.verbose, quiet: cli.quiet, command };
    let config = crate::commands::load(&sub(Command::Check))?;
    let checked = crate::commands::check(&sub(Command::Check), &config)?;
    if checked != OK {
        return Ok(checked);
    }
    if !json {
        println!("\n── dualsync sync ──");
    }
    let synced = crate::commands::sync(
        &sub(Command::Sync(SyncArgs { maps: vec![], companies: vec![], full: false, allow_deletes: false })),
        &config,
        &SyncArgs { maps: vec![], companies: vec![], full: false, allow_deletes: false },
    )?;
    if !json {
        let token = demo_token(&config)?;
        print_next_steps(dir, &config_path, &token);
    }
    // Rows refused on purpose are the point of the demo, not its failure.
    Ok(if synced == ROWS_FAILED { OK } else { synced })
}

/// An admin token for the demo's dashboard, in the demo's own state store.
fn demo_token(config: &dualsync_model::Config) -> Result<String, crate::exit::CliError> {
    let store = dualsync_state::StateStore::open(&config.state)?;
    let (secret, _) = dualsync_serve::auth::create_token(&store, "demo", dualsync_serve::auth::Role::Admin, None)
        .map_err(|e| crate::exit::CliError::from(anyhow::Error::from(e)))?;
    Ok(secret)
}

/// What to try next, as commands that work exactly as printed: this very
/// binary by its path (`cargo run` puts none on the PATH), and the sqlite3
/// shell only where it is installed.
fn print_next_steps(dir: &Path, config_path: &Path, token: &str) {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "dualsync".into());
    let quote = |s: String| if s.contains([' ', '\'', '"']) { format!("'{}'", s.replace('\'', "'\\''")) } else { s };
    let bin = format!("{} --config {}", quote(exe), quote(config_path.display().to_string()));
    let sqlite3 = std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("sqlite3").is_file()));
    let db = |name: &str| quote(dir.join(name).display().to_string());
    println!("\nWhat happened: both apps now hold the same companies, currencies, groups, customers, vendors, warehouses, locations and contacts,");
    println!("the ERP won every customer conflict (it is the map's master), e-mail addresses flowed CRM → ERP only, credit limits ERP → CRM only,");
    println!("and hard text (quotes, newlines, emoji, right-to-left, 12,000-character notes) arrived byte for byte.");
    println!("The failed rows are on purpose: names too long or missing for the CRM, a payment term without translation, a group that exists nowhere.");
    println!("\nNext:");
    println!("  {bin} errors          # every failed row, with its key, column, value and the database's message");
    println!("  {bin} sync            # again: writes nothing, only the same rows fail");
    if sqlite3 {
        println!("  sqlite3 {} \"UPDATE CustomersV3 SET Name = 'Short name' WHERE Name IS NULL OR length(Name) > 160\"", db("erp.db"));
        println!("  {bin} retry           # the fixed rows sync; the rest stay in the log");
    }
    println!("  {bin} status");
    println!("\nLive sync, with the dashboard (every change, both ways, as it happens):");
    println!("  {bin} start customers --skip-initial   # capture on in both apps (the initial sync above is done)");
    println!("  {bin} serve                            # live sync plus the dashboard; Ctrl-C stops it");
    println!("  then open http://127.0.0.1:7700/ and log in with this admin token (made for the demo, shown once):");
    println!("  {token}");
    if sqlite3 {
        println!(
            "  sqlite3 {} \"UPDATE account SET name = 'Renamed in the CRM' WHERE accountnumber = 'C000000'\"   # in another terminal: the ERP follows",
            db("crm.db")
        );
    }
}

fn prepare_dir(dir: &Path) -> Result<(), crate::exit::CliError> {
    if dir.exists() {
        let ours = dir.join(MARKER).exists();
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !ours && !empty {
            return Err(usage(format!("{} exists and was not made by `dualsync demo`; choose another folder with --dir", dir.display())));
        }
        if ours {
            for f in ["erp.db", "crm.db", "dualsync.toml"] {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(dir.join(format!("{f}{suffix}")));
                }
            }
            let _ = std::fs::remove_dir_all(dir.join(".dualsync"));
        }
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

fn create_app(
    path: &Path,
    schema: &str,
    fill: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<()>,
) -> Result<(), crate::exit::CliError> {
    let mut db = rusqlite::Connection::open(path).map_err(anyhow::Error::from)?;
    db.execute_batch(schema).map_err(anyhow::Error::from)?;
    fill(&mut db).map_err(|e| anyhow::anyhow!("filling {}: {e}", path.display()))?;
    Ok(())
}
