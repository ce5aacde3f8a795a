//! The command-line contract (see docs/cli.md).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "dualsync", version, about = "Keeps the tables of two business applications in step: initial sync, then live sync.")]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "DUALSYNC_CONFIG", default_value = "dualsync.toml")]
    pub config: PathBuf,
    /// How reports are printed.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// More detail (per company rows in reports).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Only errors and the final summary.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a commented starter dualsync.toml.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Create two sample apps (ERP and CRM) with overlapping, conflicting and hard data, then check and sync them.
    Demo(DemoArgs),
    /// Check the config, connectivity, tables, columns and type compatibility. Writes nothing.
    Check,
    /// The guidance matrix from the real data: per map and company, rows, approach, problems, and how long a sync takes. Writes nothing.
    Plan {
        /// Only this map (repeat for several).
        #[arg(long = "map")]
        maps: Vec<String>,
    },
    /// Sync every map (or the selected ones): a stopped map is diffed whole (initial sync), a started one reconciles its captured changes.
    Sync(SyncArgs),
    /// Install change capture on a map's tables, run its initial sync, and set it running.
    Start(StartArgs),
    /// Stop applying a map's changes; they wait in the change tables.
    Pause { map: String },
    /// Apply a paused map's changes again (what waited first, in order).
    Resume { map: String },
    /// Remove a map's change capture; it no longer takes part in live sync.
    Stop { map: String },
    /// Live sync of every running map until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Live sync (as `run`) plus the operators' HTTP service: REST API, metrics, health checks.
    Serve(ServeArgs),
    /// API tokens for `serve`: create, list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The conflict queue: keys changed on both apps (open ones; --all for settled ones too).
    Conflicts(ConflictsArgs),
    /// Settle a queued conflict: the named app's row wins whole.
    Resolve(ResolveArgs),
    /// Maps, their live state and lag, their last run per company, and open error and conflict counts.
    Status,
    /// The processes that hold the state store: PID, host, command, since, heartbeat, lease expiry, epoch, takeovers.
    Workers,
    /// The error log: every failed row.
    Errors(ErrorsArgs),
    /// Re-read failed rows from their source app now and apply them.
    Retry(RetryArgs),
    /// Reconcile one key of a map now, whatever its state.
    Resync(ResyncArgs),
    /// Confirm that an app's database, refused as moved (restored, copied, or another environment's), is the one to sync from now on.
    Relink(RelinkArgs),
    /// Write one app's rows of a map to an RFC 4180 CSV file.
    Export(ExportArgs),
    /// Load a CSV file into one app's table of a map (new keys inserted, existing ones updated).
    Import(ImportArgs),
    /// Give the rows of one app that have no company a company, so that they take part.
    BootstrapCompany(BootstrapArgs),
    /// The built-in benchmark: synthetic rows, dualsync vs the databases' own bulk copy.
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(long)]
    pub map: String,
    #[arg(long)]
    pub app: String,
    #[arg(long)]
    pub out: std::path::PathBuf,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[arg(long)]
    pub map: String,
    #[arg(long)]
    pub app: String,
    #[arg(long = "in")]
    pub input: std::path::PathBuf,
    /// Refuse the whole file if any line is malformed (nothing is written).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Debug)]
pub struct BootstrapArgs {
    #[arg(long)]
    pub map: String,
    /// The app whose rows get the company.
    #[arg(long)]
    pub app: String,
    /// The company value to give them.
    #[arg(long)]
    pub company: String,
    /// Only rows that also match this filter (the config's filter language).
    #[arg(long = "where")]
    pub where_: Option<String>,
    /// Only count the rows that would change.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder for the sample apps and config.
    #[arg(long, default_value = "dualsync-demo")]
    pub dir: PathBuf,
    /// Customers in the ERP (other tables scale with it).
    #[arg(long, default_value_t = 2000)]
    pub rows: usize,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Only this map (repeat for several).
    #[arg(long = "map")]
    pub maps: Vec<String>,
    /// Only this company (repeat for several).
    #[arg(long = "company")]
    pub companies: Vec<String>,
    /// Diff everything again, even on started maps (which otherwise reconcile only their captured changes).
    #[arg(long)]
    pub full: bool,
    /// Confirm deletes that the mass-delete guard stops (more than the map's max_delete_percent of a partition's rows, or all of them).
    #[arg(long)]
    pub allow_deletes: bool,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    pub map: String,
    /// Capture from now on without an initial sync (the apps are already in step).
    #[arg(long)]
    pub skip_initial: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// How often to look for changes in apps that do not notify (PostgreSQL notifies).
    #[arg(long, default_value_t = 10)]
    pub poll_ms: u64,
    /// Changes read per app and round.
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The address the HTTP service listens on (loopback unless --insecure-listen).
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: std::net::SocketAddr,
    /// Listen on a non-loopback address without TLS (only behind a proxy that terminates TLS, or on a trusted network).
    #[arg(long)]
    pub insecure_listen: bool,
    /// Serve HTTPS: the server's certificate chain, PEM (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key, PEM.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Log lines as text for people, or JSON for log shippers (to standard error; RUST_LOG filters).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Unknown tokens one client address may present per minute; past that it gets 429 until the minute ends.
    #[arg(long, default_value_t = 10)]
    pub auth_failures_per_minute: u32,
    /// How often each map's backlog and throughput are sampled for its chart (the last 360 samples are kept).
    #[arg(long, default_value_t = 10)]
    pub history_every_seconds: u64,
    #[command(flatten)]
    pub live: RunArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token: it is printed once, and only its SHA-256 is stored.
    Create {
        /// A name to know it by (who or what uses it).
        #[arg(long)]
        name: String,
        /// viewer reads; operator also acts on maps, errors and conflicts; admin also manages tokens.
        #[arg(long)]
        role: String,
        /// When it expires: days (90d), hours (12h) or weeks (4w). Never, if not given.
        #[arg(long)]
        expires: Option<String>,
    },
    /// The tokens, their roles and when they were last used (never their secrets).
    List,
    /// Revoke a token at once.
    Revoke { name: String },
}

#[derive(Args, Debug)]
pub struct ConflictsArgs {
    #[arg(long)]
    pub map: Option<String>,
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    pub id: i64,
    /// The app whose row wins (its absence deletes the other app's row).
    #[arg(long)]
    pub take: String,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ErrorsArgs {
    #[command(subcommand)]
    pub action: Option<ErrorsCommand>,
    #[arg(long)]
    pub map: Option<String>,
    /// Only the errors of this run.
    #[arg(long)]
    pub run: Option<i64>,
    /// Also the errors that were since resolved.
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand, Debug)]
pub enum ErrorsCommand {
    /// Delete errors last seen before a given age: all of them, or with --resolved the settled ones only.
    Purge {
        /// Their age: days (30d) or weeks (4w).
        #[arg(long)]
        older_than: String,
        /// Only errors no longer open (resolved or skipped); open ones are work still to do.
        #[arg(long)]
        resolved: bool,
        /// Only this map's errors.
        #[arg(long)]
        map: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct RetryArgs {
    #[arg(long)]
    pub map: Option<String>,
    /// Only this error id (repeat for several).
    #[arg(long = "error")]
    pub errors: Vec<i64>,
}

#[derive(Args, Debug)]
pub struct RelinkArgs {
    /// The app whose database the url now reaches.
    #[arg(long)]
    pub app: String,
}

#[derive(Args, Debug)]
pub struct ResyncArgs {
    #[arg(long)]
    pub map: String,
    /// The key: a plain value, or a JSON array for a key of several columns.
    #[arg(long)]
    pub key: String,
    /// The company, for a map partitioned by company.
    #[arg(long)]
    pub company: Option<String>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Rows to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// oneway: all rows in one app, the other empty. both: all rows on both sides, 10% of them differing or on one side only.
    #[arg(long, value_enum, default_value_t = BenchMode::Oneway)]
    pub mode: BenchMode,
    /// Working folder (a temporary one by default, deleted afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The table: plain (a synthetic items table) or customers (a realistic ERP customers table:
    /// 15 columns with decimals, booleans, timestamps and hard text, key restarting per company).
    #[arg(long, value_enum, default_value_t = BenchProfile::Plain)]
    pub profile: BenchProfile,
    /// Companies the rows are spread over (default 1; 8 with --profile customers).
    #[arg(long)]
    pub companies: Option<u32>,
    /// The kind of the app that holds the rows.
    #[arg(long, value_enum, default_value_t = crate::commands::BenchKind::Sqlite)]
    pub source: crate::commands::BenchKind,
    /// The kind of the empty app the rows are synced into.
    #[arg(long, value_enum, default_value_t = crate::commands::BenchKind::Sqlite)]
    pub target: crate::commands::BenchKind,
    /// PostgreSQL server for postgres apps (the bench creates and drops its databases there);
    /// a query (`?sslmode=disable`) is the apps' TLS settings.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres: String,
    /// MySQL/MariaDB server for mariadb apps; a query (`?ssl-mode=DISABLED`) is the apps' TLS settings.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    pub mysql: String,
    /// The map's threading: single (ordered, one writer) or multi.
    #[arg(long, default_value = "multi")]
    pub threading: String,
    /// The map's workers (the config's default: the machine's cores, at most 4).
    #[arg(long, default_value_t = dualsync_model::config::default_workers())]
    pub workers: usize,
    /// Lookups per row (0: the plain profile). Each refers to a map of 1,000 rows per company.
    #[arg(long, default_value_t = 0)]
    pub lookups: usize,
    /// Live sync instead: capture's cost, the sustained rate over --rows captured updates, and latency at --rate for --seconds.
    #[arg(long)]
    pub live: bool,
    /// With --live: how the source app's changes are captured: trigger, log, or both (each on databases of its own).
    #[arg(long, default_value = "both", value_parser = ["trigger", "log", "both"])]
    pub capture: String,
    /// Changes per second the --live writer commits (one per transaction).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// How long the --live writer writes.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// With --live: measure the sustained rate and latency again with `dualsync serve` applying
    /// (its API and /metrics read every second meanwhile), against `run` in the same run.
    #[arg(long)]
    pub serve: bool,
    /// A CSV import of --rows rows into app a (--source kind) with its map stopped, then started (b: --target kind).
    #[arg(long)]
    pub import: bool,
    /// Instead of the one-way sync: the same sync run by each of these numbers of processes sharing a
    /// PostgreSQL state store (such as 1,2,4), and the takeover time of one killed mid-way.
    #[arg(long, value_delimiter = ',', alias = "workers-processes")]
    pub processes: Vec<usize>,
    /// Instead: an OData service's root whose empty `Item` set the bench writes and reads, against a
    /// plain HTTP client on the same service (`bash crates/testkit/odata/bench.sh` serves one).
    #[arg(long)]
    pub odata: Option<String>,
    /// With --odata: the page sizes the reads are measured at.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub page_sizes: Vec<usize>,
    /// With --odata: operations per changeset, for both writers.
    #[arg(long, default_value_t = 100)]
    pub changeset: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    Oneway,
    Both,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchProfile {
    Plain,
    Customers,
}
