//! `kafka-backup backup -c FILE`: a new backup of topics and registry state.

use std::process::ExitCode;

use anyhow::Context;

use super::BackupArgs;
use crate::backup::{self, BackupOptions};

pub fn run(args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(&args.config, "backup", crate::config::Mode::Backup)?;
    let options = BackupOptions {
        progress: crate::progress::enabled(),
        segment_bytes: args.segment_bytes.max(1),
        partition_concurrency: args.partition_concurrency.max(1),
        zstd_level: args.zstd_level,
        allow_empty: args.allow_empty,
        force_unlock: args.force_unlock,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let manifest = runtime.block_on(backup::run(&loaded.config, &options))?;
    let records: u64 = manifest.topics.values().map(|t| t.record_count()).sum();
    let bytes: u64 = manifest.files.values().map(|f| f.size).sum();
    eprintln!(
        "backup `{}` done: {} topics, {records} records, {} files, {bytes} bytes stored",
        manifest.backup_id,
        manifest.topics.len(),
        manifest.files.len()
    );
    Ok(ExitCode::SUCCESS)
}
