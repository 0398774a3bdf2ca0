//! `manifest.json`: the table of contents of one backup, written last so that
//! a backup exists only once everything it lists is stored. Every other file
//! of the backup is listed with its size and SHA-256, and readers check them.

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::segment::{SegmentMeta, sha256_hex};
use crate::storage::Store;

/// Version of the manifest layout; readers refuse a newer one. 2 added the
/// partitions' `last_stable_offset`, `left_out_from` and `schema_ids`, and
/// the registry part's `unknown_ids`; a version 1 manifest reads with those
/// empty. 3 added `consumer_groups`; older manifests read with none.
pub const FORMAT_VERSION: u32 = 3;
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub tool_version: String,
    pub backup_id: String,
    /// RFC 3339 times the backup started and finished.
    pub started_at: String,
    pub finished_at: String,
    pub source: SourceInfo,
    pub topics: BTreeMap<String, TopicManifest>,
    /// Present when the registry was backed up (`schema-registry/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<RegistryManifestRef>,
    /// The consumer groups with committed offsets on the backed-up topics,
    /// read just before the partitions' watermarks, by group ID.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consumer_groups: BTreeMap<String, GroupBackup>,
    /// Every file of the backup but this one, by path relative to the backup folder.
    pub files: BTreeMap<String, FileEntry>,
}

/// One consumer group at backup time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupBackup {
    /// Its state then (`Empty`, `Stable`, ...) and how many members it had.
    pub state: String,
    pub members: u32,
    /// Backed-up topic, then partition, to the committed offset (the next
    /// record the group reads) and its metadata.
    pub offsets: crate::kafka::groups::GroupOffsets,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    pub bootstrap_servers: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicManifest {
    pub partition_count: u32,
    pub replication_factor: u32,
    /// Configs set on the topic (not broker defaults), for recreating it.
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<i32, PartitionManifest>,
}

impl TopicManifest {
    /// Records backed up, over every partition.
    pub fn record_count(&self) -> u64 {
        self.partitions.values().map(|p| p.record_count).sum()
    }

    /// The schema IDs the topic's records carry, over every partition.
    pub fn schema_ids(&self) -> RecordIds {
        let mut out = RecordIds::default();
        for p in self.partitions.values() {
            out.merge(&p.schema_ids);
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionManifest {
    /// Watermarks read before anything else (before the registry snapshot):
    /// the records in `[low, high)` are the ones the backup aims at.
    /// `high_watermark` is the `read_uncommitted` end offset (records of open
    /// transactions included).
    pub low_watermark: i64,
    pub high_watermark: i64,
    /// The `read_committed` end offset read at the same time: where records
    /// of a transaction still open at the start of the backup begin. Equal to
    /// `high_watermark` when none was open. Absent in format 1 manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stable_offset: Option<i64>,
    /// Set only when a transaction was still open after the configured wait
    /// and `source.allow_open_transactions` let the backup finish: records
    /// from this offset up to `high_watermark` were not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_out_from: Option<i64>,
    pub record_count: u64,
    pub segments: Vec<SegmentEntry>,
    /// What the keys and values of the backed-up records carry in their
    /// first five bytes (Confluent wire format framing and schema IDs).
    #[serde(default)]
    pub schema_ids: RecordIds,
}

/// The Confluent framing seen in the two fields of a set of records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordIds {
    pub key: FieldIds,
    pub value: FieldIds,
}

impl RecordIds {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &RecordIds) {
        self.key.merge(&other.key);
        self.value.merge(&other.value);
    }

    /// The field by its name in reports (`key` or `value`).
    pub fn fields(&self) -> [(Field, &FieldIds); 2] {
        [(Field::Key, &self.key), (Field::Value, &self.value)]
    }
}

/// Key or value of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Key,
    Value,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Key => "key",
            Field::Value => "value",
        })
    }
}

/// What the records' key (or value) carries: counted over every backed-up
/// record, from the first five bytes of the field only.
///
/// A field is *framed* when its first byte is `0x00` and it has at least five
/// bytes; its *schema ID* is then the big-endian `i32` in bytes 1..5. Framing
/// is a guess from bytes alone: a raw key that happens to start with `0x00`
/// (an 8-byte epoch-ms key, 1 in 256 random keys) counts as framed too, which
/// is why `framed == non_null` and every ID registered are both needed before
/// a field can be called schema-serialized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldIds {
    /// Records whose field is not null (empty counts as not null).
    pub non_null: u64,
    /// Records whose field is framed (`0x00` then at least four more bytes).
    pub framed: u64,
    /// Schema ID of each framed field to the number of records carrying it;
    /// the counts add up to `framed`.
    pub ids: BTreeMap<i32, u64>,
}

impl FieldIds {
    /// Counts one record's field. The hot path of a backup: no allocation
    /// unless the ID is new to this partition.
    #[inline]
    pub fn observe(&mut self, field: Option<&[u8]>) {
        let Some(bytes) = field else { return };
        self.non_null += 1;
        if let [0, a, b, c, d, ..] = *bytes {
            self.framed += 1;
            *self
                .ids
                .entry(i32::from_be_bytes([a, b, c, d]))
                .or_insert(0) += 1;
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &FieldIds) {
        self.non_null += other.non_null;
        self.framed += other.framed;
        for (id, n) in &other.ids {
            *self.ids.entry(*id).or_insert(0) += n;
        }
    }

    /// Every non-null field is framed (and there is at least one).
    pub fn all_framed(&self) -> bool {
        self.non_null > 0 && self.framed == self.non_null
    }

    /// Records whose field is not null but not framed either.
    pub fn unframed(&self) -> u64 {
        self.non_null - self.framed
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentEntry {
    pub path: String,
    #[serde(flatten)]
    pub meta: SegmentMeta,
}

/// Where the registry part is, and what it holds in short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryManifestRef {
    /// The schema manifest (seed layout), relative to the backup folder.
    pub manifest: String,
    pub subjects_count: u64,
    pub schemas_count: u64,
    /// Schema IDs carried by backed-up records that the registry did not
    /// serve, kept only because `enterprise.schema_registry.backup.allow_unknown_ids`
    /// is set (the partitions' `schema_ids` say where). Restoring those
    /// records meets the restore's `missing_id_policy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_ids: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub size: u64,
    pub sha256: String,
}

impl FileEntry {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }
}

/// Why a backup cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(
        "backup `{backup_id}` not found in `{location}` (no `{backup_id}/manifest.json`)\nhint: an interrupted backup has no manifest; run the backup again"
    )]
    NotFound { backup_id: String, location: String },
    #[error("cannot read `{path}`: {source}")]
    Storage {
        path: String,
        source: object_store::Error,
    },
    #[error("`{path}` is not a valid manifest: {reason}")]
    BadManifest { path: String, reason: String },
    #[error("`{path}` does not match the manifest: {reason}")]
    Mismatch { path: String, reason: String },
    #[error("`{path}` is listed in the manifest but missing from storage")]
    Missing { path: String },
}

/// Reads one backup's files through the manifest, checking each file it hands out.
pub struct BackupReader {
    store: Store,
    backup_id: String,
    pub manifest: Manifest,
}

impl BackupReader {
    pub async fn open(store: &Store, backup_id: &str) -> Result<Self, ReadError> {
        let path = store.path(&format!("{backup_id}/{MANIFEST_FILE}"));
        let shown = format!("{backup_id}/{MANIFEST_FILE}");
        let bytes = match store.object_store().get(&path).await {
            Ok(got) => got.bytes().await.map_err(|source| ReadError::Storage {
                path: shown.clone(),
                source,
            })?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ReadError::NotFound {
                    backup_id: backup_id.to_owned(),
                    location: store.to_string(),
                });
            }
            Err(source) => {
                return Err(ReadError::Storage {
                    path: shown,
                    source,
                });
            }
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ReadError::BadManifest {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(ReadError::BadManifest {
                path: shown,
                reason: format!(
                    "format version {} is newer than this tool reads ({FORMAT_VERSION}): upgrade kafka-backup",
                    manifest.format_version
                ),
            });
        }
        if manifest.backup_id != backup_id {
            return Err(ReadError::BadManifest {
                path: shown,
                reason: format!("it names backup `{}`", manifest.backup_id),
            });
        }
        Ok(Self {
            store: store.clone(),
            backup_id: backup_id.to_owned(),
            manifest,
        })
    }

    /// The bytes of a file of the backup, checked against the manifest.
    pub async fn read(&self, relative: &str) -> Result<Bytes, ReadError> {
        let shown = format!("{}/{relative}", self.backup_id);
        let entry = self
            .manifest
            .files
            .get(relative)
            .ok_or_else(|| ReadError::Mismatch {
                path: shown.clone(),
                reason: "the file is not listed in the manifest".into(),
            })?;
        let path = self.store.path(&shown);
        let bytes = match self.store.object_store().get(&path).await {
            Ok(got) => got.bytes().await.map_err(|source| ReadError::Storage {
                path: shown.clone(),
                source,
            })?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ReadError::Missing { path: shown });
            }
            Err(source) => {
                return Err(ReadError::Storage {
                    path: shown,
                    source,
                });
            }
        };
        if bytes.len() as u64 != entry.size {
            return Err(ReadError::Mismatch {
                path: shown,
                reason: format!(
                    "size is {} bytes, the manifest says {}",
                    bytes.len(),
                    entry.size
                ),
            });
        }
        let actual = sha256_hex(&bytes);
        if actual != entry.sha256 {
            return Err(ReadError::Mismatch {
                path: shown,
                reason: format!("sha256 is `{actual}`, the manifest says `{}`", entry.sha256),
            });
        }
        Ok(bytes)
    }

    /// Checks every file the manifest lists; the first bad one is the error.
    pub async fn verify_all(&self) -> Result<u64, ReadError> {
        let mut n = 0;
        for path in self.manifest.files.keys() {
            self.read(path).await?;
            n += 1;
        }
        Ok(n)
    }
}

/// Writes `bytes` at `relative` under the backup folder and records it.
pub async fn put_file(
    store: &Store,
    backup_id: &str,
    relative: &str,
    bytes: Bytes,
    files: &mut BTreeMap<String, FileEntry>,
) -> Result<(), object_store::Error> {
    let entry = FileEntry::of(&bytes);
    store
        .object_store()
        .put(
            &store.path(&format!("{backup_id}/{relative}")),
            PutPayload::from(bytes),
        )
        .await?;
    files.insert(relative.to_owned(), entry);
    Ok(())
}
