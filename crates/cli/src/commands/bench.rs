pub fn bench(_cli: &crate::cli::Cli, _args: &crate::cli::BenchArgs) -> crate::exit::CliResult {
    Ok(0)
}
