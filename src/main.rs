//! The `kafka-backup` binary: parse the command line, set up logging on stderr,
//! run the command.

use std::process::ExitCode;

use clap::Parser;
use kafka_backup::cli::{self, Cli};

// counts the tool's own heap (`heap::report` at `-v`); librdkafka's C
// allocations are not counted
#[global_allocator]
static ALLOC: kafka_backup::heap::Counting = kafka_backup::heap::Counting;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAFKA_BACKUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // colours only on a terminal: a log file (a group worker's, a pod's)
        // reads and greps without escape codes
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    cli::run(cli)
}
