//! `dualsync`: the command line. Thin: parse, load config, call the engine,
//! report, and exit with 0 (synced), 3 (rows failed, all logged), 2 (config or
//! usage), or 1 (anything else).

mod cli;
mod commands;
mod demo;
mod exit;
mod output;
mod progress;

use clap::Parser;

/// Rows are allocated by reader threads and freed by writer threads; glibc malloc
/// handles that cross-thread pattern poorly (a third of the CPU of a sync went to it).
/// mimalloc's v2 line: v3 kept 1.6-2.7 times the resident memory for the same sync
/// (1M-row customers bench), at the same speed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    configure_sqlite();
    let args = cli::Cli::parse();
    let code = match commands::run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.error);
            for cause in e.error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            e.code
        }
    };
    std::process::exit(code);
}

/// SQLite keeps global memory statistics behind one process-wide mutex, which
/// the reader, writer and recorder threads of a sync would all contend for.
/// Must run before the first connection opens.
fn configure_sqlite() {
    // SAFETY: called once, before any SQLite connection exists.
    unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
    }
}
