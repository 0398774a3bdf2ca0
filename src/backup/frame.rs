//! `frame.json`: what every worker of a group backup (`backup --group`)
//! backs up. The first worker to arrive reads the end offsets (and, just
//! before, the consumer groups' offsets), then the registry, exactly as a
//! single run does, and publishes them create-only; every other worker reads
//! them, so that all of them aim at the same ends. The frame also fixes how
//! segments are cut and compressed: a segment is then a pure function of the
//! records and where its chain started, and two workers that ever write the
//! same partition write the same files.
//!
//! A worker whose configuration would back up something else (other topics,
//! another cluster, another registry selection) is refused, naming each key
//! that differs with both values ([`differences`]).

use std::collections::BTreeMap;

use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::manifest::GroupBackup;
use crate::model::RegistrySnapshot;
use crate::registry::SelectionReport;
use crate::storage::Store;

/// The frame's file name inside the backup folder.
pub const FRAME_FILE: &str = "frame.json";
/// `format` of every frame this version writes.
pub const FRAME_FORMAT: &str = "kafka-backup/frame/v1";

/// What every worker of one group backup shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    pub format: String,
    pub backup_id: String,
    /// The consumer group the workers join.
    pub group_id: String,
    /// RFC 3339: when the first worker began (the manifest's `started_at`).
    pub started_at: String,
    pub tool_version: String,
    /// The worker that wrote the frame.
    pub framed_by: Worker,
    /// The configuration keys that decide what is backed up, as the first
    /// worker had them; every worker must have the same.
    pub config: BTreeMap<String, String>,
    /// Segments are cut after this many bytes of keys, values and headers
    /// and compressed at this zstd level, whatever a worker was started with.
    pub segment_bytes: u64,
    pub zstd_level: i32,
    /// The cluster read (`source.bootstrap_servers`, as the manifest has it).
    pub servers: String,
    pub topics: BTreeMap<String, FrameTopic>,
    /// The selected consumer groups' offsets, read just before the ends.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consumer_groups: BTreeMap<String, GroupBackup>,
    /// The registry snapshot, read just after the ends; absent when the
    /// registry is not backed up. Written into `schema-registry/` by the
    /// worker that publishes the manifest, with the versions the records'
    /// schema IDs pull in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<FrameRegistry>,
}

/// A process taking part in a group backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Worker {
    pub host: String,
    pub pid: u32,
}

impl Worker {
    /// This process.
    pub fn me() -> Self {
        Self {
            host: crate::lease::host_name(),
            pid: std::process::id(),
        }
    }
}

impl std::fmt::Display for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host `{}` process {}", self.host, self.pid)
    }
}

/// One topic as the first worker found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameTopic {
    pub partition_count: u32,
    pub replication_factor: u32,
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<i32, Ends>,
}

/// Where a partition starts and ends for this backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ends {
    pub low: i64,
    pub high: i64,
    pub last_stable: i64,
}

/// The registry as the first worker read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameRegistry {
    pub snapshot: RegistrySnapshot,
    pub report: SelectionReport,
}

impl Frame {
    /// Every partition of the frame, in order.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, i32, &Ends)> {
        self.topics.iter().flat_map(|(name, t)| {
            t.partitions
                .iter()
                .map(move |(&p, ends)| (name.as_str(), p, ends))
        })
    }

    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// The ends of one partition, when the frame has it.
    pub fn ends(&self, topic: &str, partition: i32) -> Option<&Ends> {
        self.topics.get(topic)?.partitions.get(&partition)
    }
}

/// The configuration keys that decide what a backup takes and how it ends,
/// with their values as text. Workers of one backup must agree on all of
/// them; credentials, timeouts and concurrency may differ.
pub fn config_keys(config: &Config, group_id: &str) -> BTreeMap<String, String> {
    fn text<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).expect("configuration values serialize")
    }
    let mut out = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        out.insert(key.to_owned(), value);
    };
    put("--group", text(&group_id));
    if let Some(source) = &config.source {
        let servers: Vec<&str> = source
            .bootstrap_servers
            .iter()
            .flat_map(|s| s.as_str().split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        put("source.bootstrap_servers", text(&servers));
        put("source.topics.include", text(&source.topics.include));
        put("source.topics.exclude", text(&source.topics.exclude));
        put(
            "source.topics.include_internal",
            text(&source.topics.include_internal),
        );
        put(
            "source.consumer_groups.enabled",
            text(&source.consumer_groups.enabled),
        );
        put(
            "source.consumer_groups.include",
            text(&source.consumer_groups.include),
        );
        put(
            "source.consumer_groups.exclude",
            text(&source.consumer_groups.exclude),
        );
        put(
            "source.open_transaction_wait_secs",
            text(&source.open_transaction_wait_secs),
        );
        put(
            "source.allow_open_transactions",
            text(&source.allow_open_transactions),
        );
    }
    let sr = &config.enterprise.schema_registry;
    put("enterprise.schema_registry.enabled", text(&sr.enabled));
    if sr.enabled {
        let key = |k: &str| format!("enterprise.schema_registry.{k}");
        put(
            &key("url"),
            text(&sr.url.as_ref().map(|u| u.as_str().trim_end_matches('/'))),
        );
        put(&key("backup.subjects"), text(&sr.backup.subjects));
        put(&key("backup.exclude"), text(&sr.backup.exclude));
        put(
            &key("backup.include_soft_deleted"),
            text(&sr.backup.include_soft_deleted),
        );
        put(
            &key("backup.include_versions"),
            text(&sr.backup.include_versions),
        );
        put(
            &key("backup.include_references"),
            text(&sr.backup.include_references),
        );
        put(
            &key("backup.allow_unknown_ids"),
            text(&sr.backup.allow_unknown_ids),
        );
        put(&key("schema_types"), text(&sr.schema_types));
        put(
            &key("protobuf.include_dependencies"),
            text(&sr.protobuf.include_dependencies),
        );
    }
    out
}

/// One key on which a worker and the frame disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub key: String,
    /// The frame's value (`None`: the frame does not have the key).
    pub frame: Option<String>,
    /// This worker's value.
    pub worker: Option<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".into());
        write!(
            f,
            "`{}`: the frame has {}, this worker {}",
            self.key,
            shown(&self.frame),
            shown(&self.worker)
        )
    }
}

/// Every key whose value differs between the frame and a worker, by key.
pub fn differences(
    frame: &BTreeMap<String, String>,
    worker: &BTreeMap<String, String>,
) -> Vec<Difference> {
    let keys: std::collections::BTreeSet<&String> = frame.keys().chain(worker.keys()).collect();
    keys.into_iter()
        .filter(|k| frame.get(*k) != worker.get(*k))
        .map(|k| Difference {
            key: k.clone(),
            frame: frame.get(k).cloned(),
            worker: worker.get(k).cloned(),
        })
        .collect()
}

/// The frame of `backup_id`, when one was published.
pub async fn read(store: &Store, backup_id: &str) -> Result<Option<Frame>, super::BackupError> {
    let shown = format!("{backup_id}/{FRAME_FILE}");
    match store.object_store().get(&store.path(&shown)).await {
        Ok(got) => {
            let bytes = got
                .bytes()
                .await
                .map_err(|source| super::BackupError::Storage {
                    path: shown.clone(),
                    source,
                })?;
            let frame: Frame =
                serde_json::from_slice(&bytes).map_err(|e| super::BackupError::BadFile {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
            if frame.format != FRAME_FORMAT {
                return Err(super::BackupError::BadFile {
                    path: shown,
                    reason: format!(
                        "format `{}` is not `{FRAME_FORMAT}`: written by another version of kafka-backup",
                        frame.format
                    ),
                });
            }
            Ok(Some(frame))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(super::BackupError::Storage {
            path: shown,
            source,
        }),
    }
}

/// Publishes `frame` create-only; `false` when another worker's was there first.
pub async fn create(store: &Store, frame: &Frame) -> Result<bool, super::BackupError> {
    let shown = format!("{}/{FRAME_FILE}", frame.backup_id);
    let bytes = serde_json::to_vec_pretty(frame).expect("a frame serializes");
    super::create_only(store, &shown, bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn differences_name_each_key_with_both_values() {
        let frame = keys(&[
            ("source.topics.include", r#"["orders-*"]"#),
            ("source.topics.exclude", "[]"),
            ("enterprise.schema_registry.enabled", "false"),
        ]);
        let worker = keys(&[
            ("source.topics.include", r#"["payments-*"]"#),
            ("source.topics.exclude", "[]"),
            ("enterprise.schema_registry.enabled", "true"),
            ("enterprise.schema_registry.url", r#""http://sr:8081""#),
        ]);
        let shown: Vec<String> = differences(&frame, &worker)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            vec![
                "`enterprise.schema_registry.enabled`: the frame has false, this worker true",
                r#"`enterprise.schema_registry.url`: the frame has (not set), this worker "http://sr:8081""#,
                r#"`source.topics.include`: the frame has ["orders-*"], this worker ["payments-*"]"#,
            ]
        );
        assert!(differences(&frame, &frame).is_empty());
    }

    #[test]
    fn the_keys_ignore_credentials_and_tuning_but_not_the_selection() {
        let load = |yaml: &str| {
            crate::config::parse(
                yaml,
                crate::config::Format::Yaml,
                "c.yaml",
                Box::new(|_| None),
            )
            .unwrap()
            .config
        };
        let base = "backup_id: b\nsource:\n  bootstrap_servers: [\"k1:9092, k2:9092\"]\n  topics:\n    include: [\"orders-*\"]\n";
        let a = config_keys(&load(base), "g");
        let b = config_keys(
            &load(&format!(
                "{base}  properties:\n    sasl.password: secret\n  open_transaction_wait_secs: 60\n"
            )),
            "g",
        );
        assert_eq!(a, b, "credentials and defaults do not count");
        assert_eq!(a["source.bootstrap_servers"], r#"["k1:9092","k2:9092"]"#);
        let other = config_keys(&load(&base.replace("orders-*", "payments-*")), "g");
        assert_eq!(
            differences(&a, &other)
                .iter()
                .map(|d| d.key.as_str())
                .collect::<Vec<_>>(),
            vec!["source.topics.include"]
        );
        let other_group = config_keys(&load(base), "h");
        assert_eq!(differences(&a, &other_group)[0].key, "--group");
    }
}
