//! `dualsync relink --app A`: environment fencing refused A's database as
//! moved; the operator confirms that it is the one to sync from now on.

use crate::cli::{Cli, RelinkArgs};
use crate::exit::{CliResult, OK};
use crate::output::{is_json, print_json};
use dualsync_engine::Apps;
use dualsync_model::Config;
use dualsync_state::StateStore;
use serde_json::json;

pub fn relink(cli: &Cli, config: &Config, args: &RelinkArgs) -> CliResult {
    let apps = Apps::open(config)?;
    // Held while the link changes: no process writes to the app meanwhile.
    let _claim = StateStore::claim(&config.state, "relink")?;
    let done = dualsync_engine::link::relink(config, &apps, &args.app)?;
    if is_json(cli.format) {
        print_json(&json!({ "app": args.app, "database": done.database_id, "was": done.was, "stale_stamps_removed": done.stale_stamps }));
    } else if !cli.quiet {
        println!("app {} is linked to {}", args.app, done.database_id);
        if let Some(was) = &done.was {
            println!("  it was linked to {was}");
        }
        if done.stale_stamps > 0 {
            println!("  removed {} stamp(s) the database carried from the database it was copied from", done.stale_stamps);
        }
    }
    Ok(OK)
}
