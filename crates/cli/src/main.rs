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

fn main() {
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
