//! One module per command; each returns the process exit code.

mod bench;
mod bootstrap;
mod check;
mod errors;
mod init;
mod live;
mod migrate;
mod plan;
mod relink;
mod serve;
mod status;
mod sync;

use crate::cli::{Cli, Command};
use crate::exit::CliResult;
use dualsync_engine::Apps;
use dualsync_model::Config;
use dualsync_state::{StateStore, StoreClaim};
use std::sync::Arc;

pub use bench::Kind as BenchKind;
pub use check::check;
pub use sync::sync;

pub fn run(cli: &Cli) -> CliResult {
    match &cli.command {
        Command::Init { force } => init::init(&cli.config, *force),
        Command::Demo(args) => crate::demo::demo(cli, args),
        Command::Check => check(cli, &load(cli)?),
        Command::Plan { maps } => plan::plan(cli, &load(cli)?, maps),
        Command::Sync(args) => sync(cli, &load(cli)?, args),
        Command::Start(args) => live::start(cli, &load(cli)?, args),
        Command::Pause { map } => live::pause(&load(cli)?, map),
        Command::Resume { map } => live::resume(&load(cli)?, map),
        Command::Stop { map } => live::stop(&load(cli)?, map),
        Command::Run(args) => live::run(cli, &load(cli)?, args),
        Command::Serve(args) => serve::serve(&load(cli)?, args),
        Command::Token(command) => serve::token(cli, &load(cli)?, command),
        Command::Conflicts(args) => live::conflicts(cli, &load(cli)?, args),
        Command::Resolve(args) => live::resolve(&load(cli)?, args),
        Command::Status => status::status(cli, &load(cli)?),
        Command::Workers => status::workers(cli, &load(cli)?),
        Command::Errors(args) => errors::errors(cli, &load(cli)?, args),
        Command::Retry(args) => errors::retry(cli, &load(cli)?, args),
        Command::Resync(args) => errors::resync(cli, &load(cli)?, args),
        Command::Relink(args) => relink::relink(cli, &load(cli)?, args),
        Command::Export(args) => migrate::export(cli, &load(cli)?, args),
        Command::Import(args) => migrate::import(cli, &load(cli)?, args),
        Command::BootstrapCompany(args) => bootstrap::bootstrap(cli, &load(cli)?, args),
        Command::Bench(args) => bench::bench(cli, args),
    }
}

pub fn load(cli: &Cli) -> Result<Config, crate::exit::CliError> {
    Ok(Config::load(&cli.config)?)
}

/// The apps and the state store of a config, opened for `command` (`retry`,
/// `resync`), which holds the store until the claim is dropped, as the
/// engine's syncs and live runs do: a second syncing process is refused and
/// told who holds it, and the apps' writes are fenced with the lease.
pub fn open(config: &Config, command: &str) -> Result<(Apps, Arc<StateStore>, StoreClaim), crate::exit::CliError> {
    let apps = Apps::open(config)?;
    let claim = StateStore::claim(&config.state, command)?;
    dualsync_engine::link::verify(config, &apps, config.apps.iter().map(|a| a.name.as_str()))?;
    apps.fence_writes(&claim, config.apps.iter().map(|a| a.name.as_str()))?;
    let store = Arc::new(StateStore::open(&config.state)?);
    Ok((apps, store, claim))
}

/// `90d`, `12h`, `4w` as whole days (hours round up to a day), for `flag`.
pub fn days_in(flag: &str, text: &str) -> Result<u32, crate::exit::CliError> {
    use crate::exit::usage;
    let bad = || usage(format!("{flag} {text:?}: give a number and a unit, like 90d, 12h or 4w"));
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u32 = number.parse().map_err(|_| bad())?;
    let days = match unit {
        "d" => n,
        "w" => n.saturating_mul(7),
        "h" => n.div_ceil(24),
        _ => return Err(bad()),
    };
    if days == 0 || days > 3650 {
        return Err(usage(format!("{flag} {text:?}: between 1 hour and 10 years")));
    }
    Ok(days)
}
