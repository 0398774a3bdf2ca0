//! The data half of the apply journal: `<backup_id>/restore/<cluster>.json`,
//! one per target cluster (named by its cluster ID), whatever plan ran the
//! registry half: a partition restored once
//! is done for every later apply of the same backup into the same cluster.
//!
//! For each restored partition it keeps where the target partition stood
//! when the restore first touched it (`target_start`, its high watermark
//! then), saved before the first record is produced, and then, as records
//! are acknowledged, how many of the restore's records are confirmed in the
//! target and at which offset the next one lands (`written`,
//! `next_offset`). A rerun reads back whatever the target holds after
//! `next_offset` and compares it with the records it would write next
//! ([`super::resume`]): what matches was written by the interrupted run,
//! anything else is another client's and stops the restore.
//!
//! It also keeps, per partition, what shapes the bytes the restore writes
//! ([`Shape`]: the ID map, the missing-ID policy, the fields rewritten; the source topic and
//! `--to-timestamp`), so that a rerun with other settings is refused rather
//! than writing the rest of a partition differently from its beginning.

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::config::MissingIdPolicy;
use crate::storage::Store;

/// `format` of every data journal this version writes.
pub const DATA_JOURNAL_FORMAT: &str = "kafka-backup/restore-journal/v2";

/// Restore progress of one plan's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataJournal {
    pub format: String,
    /// The target cluster's bootstrap servers when the journal was made (the
    /// file name holds its cluster ID).
    pub cluster: String,
    /// The ID maps records were rewritten through, by [`map_digest`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub maps: BTreeMap<String, BTreeMap<i32, i32>>,
    /// Target topic, then partition.
    pub partitions: BTreeMap<String, BTreeMap<i32, PartitionProgress>>,
    /// Consumer groups whose offsets the apply set, with the offsets (target
    /// topic, partition): a rerun leaves them alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, BTreeMap<String, BTreeMap<i32, i64>>>,
    /// Consumer groups whose offsets an apply was about to commit (saved
    /// before the commit, removed once the offsets are journalled in
    /// `groups`): per target topic and partition, the offset and what the
    /// group had there, so that a rerun tells a commit that did not land
    /// from consumers that read on since.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_intents: BTreeMap<String, BTreeMap<String, BTreeMap<i32, IntentOffset>>>,
}

/// One partition of a group an apply was about to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentOffset {
    pub to: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
}

/// One target partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionProgress {
    /// The backed-up topic it is restored from.
    pub source_topic: String,
    /// The target partition's high watermark before the restore wrote to it.
    pub target_start: i64,
    /// Every record is written and the count checked.
    pub done: bool,
    /// Records of the restore confirmed in the target: acknowledged, each
    /// at the offset right after the one before.
    pub written: u64,
    /// The target offset where the restore's next record lands: right after
    /// the last confirmed one (`target_start` before the first).
    pub next_offset: i64,
    /// The backup offset of the last confirmed record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_offset: Option<i64>,
    /// Records left out (missing ID under `skip`, after `--to-timestamp`),
    /// known when done.
    pub skipped: u64,
    /// The `--to-timestamp` the restore runs with: a rerun must use the same
    /// (it decides which records are written), and `verify` takes it from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_timestamp: Option<i64>,
    /// What else shapes the written bytes.
    pub shape: Shape,
    /// Target offsets `[from, to)` of records other clients wrote into the
    /// partition while it was restored, which `--append` wrote after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign: Vec<[i64; 2]>,
}

/// What, besides the backup and `--to-timestamp`, decides the bytes a
/// restore writes into a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// The ID map records are rewritten through ([`map_digest`], a key of
    /// [`DataJournal::maps`]); `None`: written as backed up.
    pub map: Option<String>,
    /// The missing-ID policy of the topic.
    pub missing_id_policy: MissingIdPolicy,
    /// Whether keys and values had their schema IDs rewritten.
    pub rewrite_key: bool,
    pub rewrite_value: bool,
}

/// A short, stable name of an ID map: SHA-256 over its sorted entries.
pub fn map_digest(map: &BTreeMap<i32, i32>) -> String {
    let mut text = String::new();
    for (s, t) in map {
        text.push_str(&format!("{s}:{t}\n"));
    }
    crate::segment::sha256_hex(text.as_bytes())[..16].to_owned()
}

impl DataJournal {
    pub fn new(cluster: &str) -> Self {
        Self {
            format: DATA_JOURNAL_FORMAT.to_owned(),
            cluster: cluster.to_owned(),
            maps: BTreeMap::new(),
            partitions: BTreeMap::new(),
            groups: BTreeMap::new(),
            group_intents: BTreeMap::new(),
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<&PartitionProgress> {
        self.partitions.get(topic)?.get(&partition)
    }

    /// The `--to-timestamp` every recorded partition was restored with, when
    /// they agree (`None` when none was, or they differ).
    pub fn to_timestamp(&self) -> Option<i64> {
        let mut all = self.partitions.values().flat_map(|p| p.values());
        let first = all.next()?.to_timestamp;
        all.all(|p| p.to_timestamp == first)
            .then_some(first)
            .flatten()
    }

    pub fn set(&mut self, topic: &str, partition: i32, progress: PartitionProgress) {
        self.partitions
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, progress);
    }
}

/// A file name for a key (a cluster ID, a registry URL): kept readable when
/// it is plain, with a short hash of the exact key so that two keys never
/// share a file.
pub(crate) fn file_name(cluster: &str) -> String {
    let plain: String = cluster
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let hash = crate::segment::sha256_hex(cluster.as_bytes());
    format!("{plain}-{}", &hash[..12])
}

/// Why the data journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DataJournalError {
    #[error("cannot read the restore journal `{path}`")]
    Read {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("the restore journal `{path}` is not readable: {reason}")]
    Invalid { path: String, reason: String },
    #[error("cannot write the restore journal `{path}`")]
    Write {
        path: String,
        #[source]
        source: object_store::Error,
    },
}

/// Where one plan's data journal lives.
#[derive(Clone)]
pub struct DataJournalStore {
    store: Store,
    relative: String,
}

impl DataJournalStore {
    /// The journal of restoring `backup_id` into the cluster `cluster`.
    pub fn new(store: Store, backup_id: &str, cluster: &str) -> Self {
        Self {
            store,
            relative: format!("{backup_id}/restore/{}.json", file_name(cluster)),
        }
    }

    pub fn display(&self) -> String {
        format!(
            "{}/{}",
            self.store.to_string().trim_end_matches('/'),
            self.relative
        )
    }

    /// The journal, `None` when no data of this plan was restored yet.
    pub async fn load(&self) -> Result<Option<DataJournal>, DataJournalError> {
        let path = self.store.path(&self.relative);
        let bytes = match self.store.object_store().get(&path).await {
            Ok(got) => got.bytes().await,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => Err(e),
        }
        .map_err(|source| DataJournalError::Read {
            path: self.display(),
            source,
        })?;
        let journal: DataJournal =
            serde_json::from_slice(&bytes).map_err(|e| DataJournalError::Invalid {
                path: self.display(),
                reason: e.to_string(),
            })?;
        if journal.format != DATA_JOURNAL_FORMAT {
            return Err(DataJournalError::Invalid {
                path: self.display(),
                reason: format!(
                    "format `{}`, expected `{DATA_JOURNAL_FORMAT}`",
                    journal.format
                ),
            });
        }
        Ok(Some(journal))
    }

    /// Writes the whole journal (object stores replace an object atomically).
    pub async fn save(&self, journal: &DataJournal) -> Result<(), DataJournalError> {
        let mut bytes = serde_json::to_vec_pretty(journal).expect("a journal serializes");
        bytes.push(b'\n');
        self.store
            .object_store()
            .put(
                &self.store.path(&self.relative),
                PutPayload::from(Bytes::from(bytes)),
            )
            .await
            .map(|_| ())
            .map_err(|source| DataJournalError::Write {
                path: self.display(),
                source,
            })
    }
}
