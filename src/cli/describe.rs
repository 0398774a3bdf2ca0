//! `kafka-backup describe --path URL --backup-id ID`: what a backup holds.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::{DescribeArgs, OutputFormat};
use crate::backup::registry::SchemaManifest;
use crate::manifest::{BackupReader, Manifest};
use crate::storage::Location;

/// The description, as `--format json` prints it.
#[derive(Debug, Serialize)]
pub struct Description {
    pub backup_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub source: String,
    pub topics: Vec<TopicDescription>,
    pub records: u64,
    pub stored_bytes: u64,
    pub files: usize,
    pub schema_registry: RegistryDescription,
    /// Consumer groups and their committed offsets, as the manifest holds them.
    pub consumer_groups: std::collections::BTreeMap<String, crate::manifest::GroupBackup>,
    /// An incremental backup's chain, from its first (full) backup to it;
    /// the figures above are the whole chain's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<ChainMember>,
    /// The key an encrypted backup is sealed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::manifest::EncryptionInfo>,
}

/// One backup of a chain, with what it holds itself.
#[derive(Debug, Serialize)]
pub struct ChainMember {
    pub backup_id: String,
    pub finished_at: String,
    pub records: u64,
    pub stored_bytes: u64,
    /// Records deleted from the source between the parent and this backup,
    /// which no member holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Serialize)]
pub struct Gap {
    pub topic: String,
    pub partition: i32,
    /// First and last offset missing.
    pub offsets: [i64; 2],
}

/// The members of a chain as [`Description::chain`] shows them (none for a
/// full backup).
pub fn chain(members: &[Manifest]) -> Vec<ChainMember> {
    if members.len() < 2 {
        return Vec::new();
    }
    members
        .iter()
        .map(|m| ChainMember {
            backup_id: m.backup_id.clone(),
            finished_at: m.finished_at.clone(),
            records: m.topics.values().map(|t| t.record_count()).sum(),
            stored_bytes: m.files.values().map(|f| f.size).sum(),
            gaps: gaps(m),
        })
        .collect()
}

/// The records deleted from the source between an incremental backup's
/// parent and it (its own manifest, not joined).
pub fn gaps(m: &Manifest) -> Vec<Gap> {
    m.topics
        .iter()
        .flat_map(|(topic, t)| {
            t.partitions.iter().filter_map(move |(&partition, p)| {
                let from = p.continues_from?;
                (p.low_watermark > from).then(|| Gap {
                    topic: topic.clone(),
                    partition,
                    offsets: [from, p.low_watermark - 1],
                })
            })
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct TopicDescription {
    pub name: String,
    pub partitions: u32,
    pub records: u64,
    pub stored_bytes: u64,
    pub configs: std::collections::BTreeMap<String, String>,
    pub partition_details: Vec<PartitionDescription>,
}

#[derive(Debug, Serialize)]
pub struct PartitionDescription {
    pub partition: i32,
    pub records: u64,
    pub segments: usize,
    /// First and last offset taken, when any record was.
    pub offsets: Option<[i64; 2]>,
    /// Earliest and latest record timestamp (ms).
    pub timestamps: Option<[i64; 2]>,
    /// First and last offset of records an open transaction kept out of the
    /// backup (`source.allow_open_transactions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_out: Option<[i64; 2]>,
}

/// The seed's `schema_registry` block.
#[derive(Debug, Serialize)]
pub struct RegistryDescription {
    pub enabled: bool,
    pub subjects_count: u64,
    pub schemas_count: u64,
    /// Schema IDs records carry that the registry did not serve
    /// (`enterprise.schema_registry.backup.allow_unknown_ids`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_ids: Vec<i32>,
    pub subjects: Vec<SubjectDescription>,
}

#[derive(Debug, Serialize)]
pub struct SubjectDescription {
    pub name: String,
    pub versions: u64,
    pub latest_id: i64,
}

pub fn run(args: &DescribeArgs) -> anyhow::Result<ExitCode> {
    let mut location = Location::parse(&args.path)?;
    if let Some(file) = &args.key_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the key file `{}`", file.display()))?;
        location = location.with_key(
            crate::crypto::Key::parse(&text, None)
                .map_err(|e| anyhow::anyhow!("`{}`: {e}", file.display()))?,
        );
    }
    let store = location.open()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let description = runtime.block_on(async {
        let reader = BackupReader::open(&store, &args.backup_id).await?;
        if args.verify_files {
            let n = reader.verify_all().await?;
            say!("all {n} files match the manifest");
        }
        let schemas = match &reader.manifest.schema_registry {
            Some(sr) => {
                let bytes = reader.read(&sr.manifest).await?;
                let parsed: SchemaManifest = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "`{}/{}` is not a valid schema manifest",
                        args.backup_id, sr.manifest
                    )
                })?;
                Some(parsed)
            }
            None => None,
        };
        let mut description = describe(&reader.manifest, schemas.as_ref());
        description.chain = chain(&reader.chain);
        anyhow::Ok(description)
    })?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&description)?),
        OutputFormat::Text => print!("{}", render_text(&description)),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn describe(manifest: &Manifest, schemas: Option<&SchemaManifest>) -> Description {
    let topics: Vec<TopicDescription> = manifest
        .topics
        .iter()
        .map(|(name, topic)| {
            let partition_details: Vec<PartitionDescription> = topic
                .partitions
                .iter()
                .map(|(id, p)| {
                    let first = p.segments.first().map(|s| s.meta.first_offset);
                    let last = p.segments.last().map(|s| s.meta.last_offset);
                    let min_ts = p.segments.iter().filter_map(|s| s.meta.min_timestamp).min();
                    let max_ts = p.segments.iter().filter_map(|s| s.meta.max_timestamp).max();
                    PartitionDescription {
                        partition: *id,
                        records: p.record_count,
                        segments: p.segments.len(),
                        offsets: first.zip(last).map(|(a, b)| [a, b]),
                        timestamps: min_ts.zip(max_ts).map(|(a, b)| [a, b]),
                        left_out: p.left_out_from.map(|from| [from, p.high_watermark - 1]),
                    }
                })
                .collect();
            TopicDescription {
                name: name.clone(),
                partitions: topic.partition_count,
                records: topic.record_count(),
                stored_bytes: topic
                    .partitions
                    .values()
                    .flat_map(|p| &p.segments)
                    .map(|s| s.meta.size)
                    .sum(),
                configs: topic.configs.clone(),
                partition_details,
            }
        })
        .collect();
    Description {
        backup_id: manifest.backup_id.clone(),
        started_at: manifest.started_at.clone(),
        finished_at: manifest.finished_at.clone(),
        source: manifest.source.bootstrap_servers.clone(),
        records: topics.iter().map(|t| t.records).sum(),
        stored_bytes: manifest.files.values().map(|f| f.size).sum(),
        files: manifest.files.len(),
        topics,
        consumer_groups: manifest.consumer_groups.clone(),
        chain: Vec::new(),
        encryption: manifest.encryption.clone(),
        schema_registry: RegistryDescription {
            enabled: manifest.schema_registry.is_some(),
            subjects_count: manifest
                .schema_registry
                .as_ref()
                .map_or(0, |r| r.subjects_count),
            schemas_count: manifest
                .schema_registry
                .as_ref()
                .map_or(0, |r| r.schemas_count),
            unknown_ids: manifest
                .schema_registry
                .as_ref()
                .map(|r| r.unknown_ids.clone())
                .unwrap_or_default(),
            subjects: schemas
                .map(|m| {
                    m.subjects
                        .iter()
                        .map(|s| SubjectDescription {
                            name: s.name.clone(),
                            versions: s.versions.len() as u64,
                            latest_id: latest_live_id(&s.versions),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        },
    }
}

/// The ID of the subject's latest live version, as the registry's `latest`
/// means it (soft-deleted versions are not it); -1 when every version is
/// soft-deleted.
fn latest_live_id(versions: &[crate::backup::registry::VersionEntry]) -> i64 {
    versions
        .iter()
        .filter(|v| !v.deleted)
        .max_by_key(|v| v.version)
        .map_or(-1, |v| i64::from(v.id))
}

fn render_text(d: &Description) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "backup     {}", d.backup_id);
    let _ = writeln!(out, "taken      {} .. {}", d.started_at, d.finished_at);
    let _ = writeln!(out, "source     {}", d.source);
    if let Some(e) = &d.encryption {
        let _ = writeln!(
            out,
            "encrypted  {} with key `{}` (fingerprint {})",
            e.cipher, e.key_id, e.key_fingerprint
        );
    }
    if !d.chain.is_empty() {
        let ids: Vec<&str> = d.chain.iter().map(|m| m.backup_id.as_str()).collect();
        let _ = writeln!(
            out,
            "chain      {} (incremental: the figures below are the whole chain's)",
            ids.join(" -> ")
        );
        for m in &d.chain {
            let _ = writeln!(
                out,
                "  {:<30} finished {}  {} records, {} bytes stored",
                m.backup_id, m.finished_at, m.records, m.stored_bytes
            );
            for g in &m.gaps {
                let _ = writeln!(
                    out,
                    "    gap: {} partition {} offsets {}..{} were deleted from the source before this backup; no member holds them",
                    g.topic, g.partition, g.offsets[0], g.offsets[1]
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "contents   {} topics, {} records, {} files, {} bytes stored",
        d.topics.len(),
        d.records,
        d.files,
        d.stored_bytes
    );
    if !d.topics.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<40} {:>9} {:>5} {:>12} {:>12}  offsets",
            "topic", "partition", "segs", "records", ""
        );
        for t in &d.topics {
            for p in &t.partition_details {
                let mut offsets = p
                    .offsets
                    .map_or("-".to_owned(), |[a, b]| format!("{a}..{b}"));
                if let Some([a, b]) = p.left_out {
                    let _ = write!(offsets, "  (left out: {a}..{b}, a transaction still open)");
                }
                let _ = writeln!(
                    out,
                    "{:<40} {:>9} {:>5} {:>12} {:>12}  {offsets}",
                    t.name, p.partition, p.segments, p.records, ""
                );
            }
        }
    }
    let sr = &d.schema_registry;
    let _ = writeln!(
        out,
        "\nschema registry: {}",
        if sr.enabled {
            format!(
                "{} subjects, {} schemas",
                sr.subjects_count, sr.schemas_count
            )
        } else {
            "not backed up".to_owned()
        }
    );
    if !sr.unknown_ids.is_empty() {
        let ids: Vec<String> = sr.unknown_ids.iter().map(i32::to_string).collect();
        let _ = writeln!(
            out,
            "  records carry schema IDs the registry did not serve: {}",
            ids.join(", ")
        );
    }
    for s in &sr.subjects {
        let _ = writeln!(
            out,
            "  {:<50} {:>3} versions  latest id {}",
            s.name, s.versions, s.latest_id
        );
    }
    let _ = writeln!(out, "\nconsumer groups: {}", d.consumer_groups.len());
    for (id, g) in &d.consumer_groups {
        let _ = writeln!(
            out,
            "  {id} ({}, {} member(s) at backup time)",
            g.state, g.members
        );
        for (topic, partitions) in &g.offsets {
            for (p, c) in partitions {
                let _ = writeln!(out, "    {topic}[{p}] committed {}", c.offset);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::registry::VersionEntry;
    use crate::model::SchemaType;

    fn version(version: u32, id: u32, deleted: bool) -> VersionEntry {
        VersionEntry {
            version,
            id,
            schema_type: SchemaType::Avro,
            schema_file: format!("subjects/s/v{version}.avsc"),
            references: Vec::new(),
            deleted,
        }
    }

    #[test]
    fn the_latest_id_is_the_latest_live_versions() {
        let live = [version(1, 10, false), version(2, 20, false)];
        assert_eq!(latest_live_id(&live), 20);
        let newest_deleted = [
            version(1, 10, false),
            version(2, 20, false),
            version(3, 30, true),
        ];
        assert_eq!(latest_live_id(&newest_deleted), 20);
        assert_eq!(latest_live_id(&[version(1, 10, true)]), -1);
        assert_eq!(latest_live_id(&[]), -1);
    }
}
