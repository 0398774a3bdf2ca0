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
    cli::init_logging(&cli);
    cli::run(cli)
}
