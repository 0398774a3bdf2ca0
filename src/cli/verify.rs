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
        let (plan, _) = super::plan::make(cfg, &runtime, super::plan::Scope::NoGroups)?;
        (None, Some(apply::final_id_map(&plan, &IdMap::new())))
    } else if sr.enabled {
        let (plan, target) = super::plan::make(cfg, &runtime, super::plan::Scope::NoGroups)?;
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
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("the backup holds topics, which `verify` compares in the target cluster")?;
        verify::topics::check(
            cluster,
            &reader,
            &jobs,
            journal.as_ref(),
            args.partition_concurrency,
            runtime.handle(),
        )?
    };

    let groups = match &cluster {
        Ok(cluster) => check_groups(
            cfg,
            &runtime,
            &store,
            &reader,
            &jobs,
            cluster,
            journal.as_ref(),
        )?,
        Err(_) => None,
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
        groups,
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

/// The consumer groups: where the offset map puts each backed-up offset,
/// against what the group has committed in the target. A partition not
/// restored (no offset map for it) is a difference of its own.
fn check_groups(
    cfg: &crate::config::Config,
    runtime: &tokio::runtime::Runtime,
    store: &crate::storage::Store,
    reader: &BackupReader,
    jobs: &[restore::TopicJob],
    cluster: &crate::kafka::Cluster,
    journal: Option<&restore::DataJournal>,
) -> anyhow::Result<Option<verify::groups::GroupsCheck>> {
    use restore::groups;
    let selection = groups::selection(cfg);
    if reader.manifest.consumer_groups.is_empty() || !selection.enabled {
        return Ok(None);
    }
    let wanted = groups::wanted(&selection, &reader.manifest, jobs);
    let key = restore::cluster_key(cluster)?;
    let map = runtime.block_on(
        restore::offsets::OffsetMapStore::new(store.clone(), &reader.manifest.backup_id, &key)
            .load(journal),
    )?;
    let restored =
        |w: &crate::plan::groups::Wanted| map.get(&w.target_topic, w.partition).is_some();
    let (wanted, unrestored): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|w| restored(w));
    let inputs = runtime.block_on(groups::inputs(
        cluster,
        jobs,
        wanted,
        journal,
        &map,
        groups::Source::Restored,
    ))?;
    let (expected, _) = crate::plan::groups::plan(&inputs);
    let set = journal.map(|j| j.groups.clone()).unwrap_or_default();
    let mut check = verify::groups::check(&expected, &inputs.current, &set);
    for w in unrestored {
        check.differences.push(
            verify::Difference::new(
                verify::Area::Groups,
                format!(
                    "consumer group `{}` on `{}` partition {}: the partition's restore is not finished (no offset map), so its offset was not set",
                    w.group, w.target_topic, w.partition
                ),
            )
            .partition(&w.target_topic, w.partition),
        );
    }
    Ok(Some(check))
}
