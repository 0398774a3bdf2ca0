//! `kafka-backup backup -c FILE`: a new backup of topics and registry state.

use std::process::ExitCode;

use anyhow::Context;

use super::BackupArgs;
use crate::backup::group::GroupOptions;
use crate::backup::{self, BackupOptions};
use crate::manifest::Manifest;

pub fn run(args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(&args.config, "backup", crate::config::Mode::Backup)?;
    let options = BackupOptions {
        progress: crate::progress::enabled(),
        segment_bytes: args.segment_bytes.max(1),
        partition_concurrency: args.partition_concurrency.max(1),
        zstd_level: args.zstd_level,
        allow_empty: args.allow_empty,
        force_unlock: args.force_unlock,
        stop_on_signal: true,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let Some(group_id) = &args.group else {
        let manifest = match runtime.block_on(backup::run(&loaded.config, &options)) {
            Ok(manifest) => manifest,
            Err(e @ backup::BackupError::Stopped { code, .. }) => {
                say!("error: {e}");
                // the partitions' blocking tasks are not waited for: what
                // they store is cleared by the next run
                std::process::exit(code.into());
            }
            Err(e) => return Err(e.into()),
        };
        let continues = manifest
            .parent
            .as_ref()
            .map(|p| format!(" (incremental, after `{}`)", p.backup_id))
            .unwrap_or_default();
        say!(
            "backup `{}` done{continues}: {}",
            manifest.backup_id,
            totals(&manifest)
        );
        for gap in super::describe::gaps(&manifest) {
            say!(
                "warning: `{}` partition {}: offsets {}..{} were deleted from the source since the parent; no backup holds them (recorded in the manifest)",
                gap.topic,
                gap.partition,
                gap.offsets[0],
                gap.offsets[1]
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let interrupt = crate::interrupt::Interrupt::install(&runtime)
        .context("listening for SIGINT and SIGTERM")?;
    let group = GroupOptions {
        group_id: Some(group_id.clone()).filter(|g| !g.is_empty()),
        wait: args.group_wait.map(std::time::Duration::from_secs),
        interrupt: Some(interrupt),
    };
    // one progress bar per worker would only interleave: workers log instead
    let options = BackupOptions {
        progress: false,
        ..options
    };
    let outcome = match runtime.block_on(backup::group::run(&loaded.config, &options, &group)) {
        Ok(outcome) => outcome,
        Err(e @ backup::BackupError::Interrupted { code, .. }) => {
            say!("{e}");
            return Ok(ExitCode::from(code));
        }
        Err(e) => return Err(e.into()),
    };
    let manifest = &outcome.manifest;
    let who = if outcome.published_here {
        "published by this worker"
    } else {
        "published by another worker"
    };
    say!(
        "backup `{}` done ({who}; {} partition(s) completed here): {}",
        manifest.backup_id,
        outcome.completed_here,
        totals(manifest)
    );
    Ok(ExitCode::SUCCESS)
}

fn totals(manifest: &Manifest) -> String {
    let records: u64 = manifest.topics.values().map(|t| t.record_count()).sum();
    let bytes: u64 = manifest.files.values().map(|f| f.size).sum();
    format!(
        "{} topics, {records} records, {} files, {bytes} bytes stored",
        manifest.topics.len(),
        manifest.files.len()
    )
}
