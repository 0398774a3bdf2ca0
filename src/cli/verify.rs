//! `kafka-backup verify -c CONFIG`: after a restore, the target registry and
//! topics against the backup. Prints a table (or JSON); exit 0 when the
//! target matches, 1 on any difference or error.

use std::process::ExitCode;

use anyhow::Context;

use super::{OutputFormat, VerifyArgs};
use crate::apply::{self, IdMap};
use crate::gather;
use crate::manifest::BackupReader;
use crate::registry::HttpRegistry;
use crate::restore::{self, DataJournalStore};
use crate::storage::Location;
use crate::verify::{self, Report, report};

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(&args.config, "verify", crate::config::Mode::Restore)?;
    let cfg = &loaded.config;
    let backup_id = super::backup_id(cfg, "verify", "the backup to compare the target with")?;
    let store = Location::from_config(cfg.storage.as_ref())?.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;

    // the registry: the restore planned again against the live target
    let sr = &cfg.enterprise.schema_registry;
    let (registry, id_map) = if sr.enabled && !sr.restore.enabled {
        // the restore left the registry alone: only the record IDs, through
        // the IDs the target holds for identical schemas
        let (plan, _) = super::plan::make(cfg, &runtime, false)?;
        (None, Some(apply::final_id_map(&plan, &IdMap::new())))
    } else if sr.enabled {
        let (plan, target) = super::plan::make(cfg, &runtime, false)?;
        let (backup, _) = runtime.block_on(gather::backup_snapshot(cfg))?;
        let client = HttpRegistry::new(sr)?;
        let served = runtime
            .block_on(verify::registry::fetch_served(
                &client,
                &plan,
                sr.max_concurrency,
            ))
            .context("reading the target's schemas by ID")?;
        let check = verify::registry::check(&backup, &target, &plan, &served)?;
        (Some(check), Some(apply::final_id_map(&plan, &IdMap::new())))
    } else {
        (None, None)
    };

    // the topics, through the same transform the restore used
    let reader = runtime.block_on(BackupReader::open(&store, &backup_id))?;
    let cluster = restore::target_cluster(cfg);
    let journal = match &cluster {
        Ok(cluster) => runtime.block_on(
            DataJournalStore::new(store.clone(), &backup_id, &restore::cluster_key(cluster)?)
                .load(),
        )?,
        Err(_) => None,
    };
    // without --to-timestamp: the one the restore ran with, from its journal
    let to_timestamp = args
        .to_timestamp
        .or_else(|| journal.as_ref().and_then(|j| j.to_timestamp()));
    let evidence = runtime.block_on(restore::Evidence::read(&reader))?;
    let jobs = restore::jobs(
        cfg,
        &reader.manifest,
        id_map.as_ref(),
        to_timestamp,
        &evidence,
    )?;
    let duplicates = restore::duplicate_targets(&jobs);
    if !duplicates.is_empty() {
        anyhow::bail!(
            "`target.topic_mapping` sends several backed-up topics to {}",
            duplicates.join(", ")
        );
    }
    let topics = if jobs.is_empty() {
        verify::TopicsCheck::default()
    } else {
        let cluster = cluster
            .context("the backup holds topics, which `verify` compares in the target cluster")?;
        verify::topics::check(
            &cluster,
            &reader,
            &jobs,
            journal.as_ref(),
            args.partition_concurrency,
            runtime.handle(),
        )?
    };

    let registry_not_checked = match (sr.enabled, sr.restore.enabled) {
        (false, _) => Some(verify::NotChecked::RegistryOff),
        (true, false) => Some(verify::NotChecked::RestoreOff),
        (true, true) => None,
    };
    let report = Report {
        registry,
        registry_not_checked,
        topics,
    };
    match args.format {
        OutputFormat::Text => print!("{}", report::text(&report)),
        OutputFormat::Json => print!("{}", report::json(&report)),
    }
    Ok(if report.matches() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
