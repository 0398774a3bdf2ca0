//! `kafka-backup offsets -c FILE`: where the restored records of the
//! configuration's backup landed in its target cluster, per partition: the
//! runs of backup offsets and the target offsets they became, what was left
//! out and why, and the records of other clients in between. For consumers
//! that keep their offsets outside Kafka.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;

use super::{OffsetsArgs, OutputFormat};
use crate::restore::offsets::{LeftOutWhy, OffsetMap, OffsetMapStore};
use crate::restore::{self};
use crate::storage::Location;

pub fn run(args: &OffsetsArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(&args.config, "offsets", crate::config::Mode::Restore)?;
    let cfg = &loaded.config;
    let backup_id = super::backup_id(cfg, "offsets", "the backup whose restore to show")?;
    let store = Location::from_config(cfg.storage.as_ref())?.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let cluster = restore::target_cluster(cfg)?;
    let key = restore::cluster_key(&cluster)?;
    let maps = OffsetMapStore::new(store.clone(), &backup_id, &key);
    let journal =
        runtime.block_on(restore::DataJournalStore::new(store, &backup_id, &key).load())?;
    // only what the restore journal says is restored, from where it began
    let mut map = runtime.block_on(maps.load(journal.as_ref()))?;
    if let Some(topic) = &args.topic {
        map.partitions.retain(|t, _| t == topic);
    }
    if map.partitions.is_empty() {
        say!(
            "no restored partition{} in `{}`",
            args.topic
                .as_ref()
                .map(|t| format!(" of `{t}`"))
                .unwrap_or_default(),
            maps.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    match args.format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&map).expect("an offset map serializes");
            text.push('\n');
            print!("{text}");
        }
        OutputFormat::Text => print!("{}", text(&map)),
    }
    Ok(ExitCode::SUCCESS)
}

/// One block per partition: its frame, then one line per run, stretch left
/// out and foreign stretch.
pub fn text(map: &OffsetMap) -> String {
    let mut out = String::new();
    for (topic, partitions) in &map.partitions {
        for (partition, p) in partitions {
            let _ = writeln!(
                out,
                "{topic}[{partition}] <- {}[{partition}]: backup offsets {}..{} -> target offsets {}..{}, {} record(s) in {} run(s)",
                p.source_topic,
                p.source_start,
                p.source_end,
                p.target_start,
                p.target_end,
                p.records(),
                p.runs.len()
            );
            for r in &p.runs {
                let n = r.count as i64;
                let _ = writeln!(
                    out,
                    "  {}..{} -> {}..{} ({} record(s))",
                    r.source,
                    r.source + n,
                    r.target,
                    r.target + n,
                    r.count
                );
            }
            for l in &p.left_out {
                let why = match l.why {
                    LeftOutWhy::ToTimestamp => "after --to-timestamp",
                    LeftOutWhy::MissingId => "schema ID not in the map, `missing_id_policy: skip`",
                };
                let _ = writeln!(
                    out,
                    "  left out: backup offsets {}..={} ({} record(s), {why})",
                    l.from, l.to, l.records
                );
            }
            for [from, to] in &p.foreign {
                let _ = writeln!(
                    out,
                    "  not restored: target offsets {from}..{to} (another client's records)"
                );
            }
        }
    }
    out
}
