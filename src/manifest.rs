//! `manifest.json`: the table of contents of one backup, written last so that
//! a backup exists only once everything it lists is stored. Every other file
//! of the backup is listed with its size and SHA-256, and readers check them.

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::segment::{SegmentMeta, sha256_hex};
use crate::storage::Store;

/// Version of the manifest layout; readers refuse a newer one.
pub const FORMAT_VERSION: u32 = 1;
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
    /// Every file of the backup but this one, by path relative to the backup folder.
    pub files: BTreeMap<String, FileEntry>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionManifest {
    /// Watermarks when the backup started; records in `[low, high)` were taken.
    pub low_watermark: i64,
    pub high_watermark: i64,
    pub record_count: u64,
    pub segments: Vec<SegmentEntry>,
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
