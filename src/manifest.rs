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
/// empty. 3 added `consumer_groups`; older manifests read with none. 4
/// added incremental backups: `parent`, `selection` and the partitions'
/// `continues_from` (a tool that reads 3 must not take a chain member's
/// records for a whole backup). 5 is an encrypted backup's: the manifest's
/// body sealed inside an envelope ([`Envelope`]) that a tool reading 4 cannot
/// read. A backup without encryption is still written as 4.
pub const FORMAT_VERSION: u32 = 5;
/// The format of a backup written without encryption.
pub const PLAIN_FORMAT_VERSION: u32 = 4;
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
    /// The backup this one continues (an incremental backup): its records
    /// are those after the parent's, and a reader joins the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    /// The topic selection the backup was taken with, for
    /// `incremental_from: latest` to find a backup of the same topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionRecord>,
    /// Set when every other file of the backup is sealed (`crate::crypto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
}

/// Which key an encrypted backup was sealed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionInfo {
    /// `aes-256-gcm-stream-64k`.
    pub cipher: String,
    /// The key's name (`storage.encryption.key_id`, or its fingerprint).
    pub key_id: String,
    pub key_fingerprint: String,
}

/// What an encrypted backup's `manifest.json` shows without the key: what
/// `list`, `prune` and `incremental_from: latest` need. The manifest itself
/// is `sealed` (base64 of its JSON sealed for `<backup_id>/manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub format_version: u32,
    pub tool_version: String,
    pub backup_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub source: SourceInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionRecord>,
    pub encryption: EncryptionInfo,
    pub summary: Summary,
    pub sealed: String,
}

/// A backup's size in short, in its envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub topics: usize,
    pub records: u64,
    pub files: usize,
    pub bytes: u64,
}

impl Summary {
    pub fn of(m: &Manifest) -> Self {
        Self {
            topics: m.topics.len(),
            records: m.topics.values().map(TopicManifest::record_count).sum(),
            files: m.files.len(),
            bytes: m.files.values().map(|f| f.size).sum(),
        }
    }
}

/// What every backup's `manifest.json` tells without a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub backup_id: String,
    pub finished_at: String,
    pub source: SourceInfo,
    pub parent: Option<ParentRef>,
    pub selection: Option<SelectionRecord>,
    pub encryption: Option<EncryptionInfo>,
    pub summary: Summary,
}

/// The bytes of `manifest.json` for `m`: the manifest itself, or, when it
/// is encrypted, its envelope with the manifest sealed by `store`'s key.
pub fn manifest_bytes(store: &Store, m: &Manifest) -> Vec<u8> {
    let json = serde_json::to_vec_pretty(m).expect("a manifest always serializes");
    let Some(encryption) = &m.encryption else {
        return json;
    };
    use base64::Engine;
    let sealed = store.seal(&format!("{}/{MANIFEST_FILE}", m.backup_id), json);
    let envelope = Envelope {
        format_version: m.format_version,
        tool_version: m.tool_version.clone(),
        backup_id: m.backup_id.clone(),
        started_at: m.started_at.clone(),
        finished_at: m.finished_at.clone(),
        source: m.source.clone(),
        parent: m.parent.clone(),
        selection: m.selection.clone(),
        encryption: encryption.clone(),
        summary: Summary::of(m),
        sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
    };
    serde_json::to_vec_pretty(&envelope).expect("an envelope always serializes")
}

/// The parent of an incremental backup, pinned by its manifest's bytes: a
/// parent changed, replaced or reordered after the child was taken is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentRef {
    pub backup_id: String,
    /// SHA-256 of the parent's `manifest.json` as stored.
    pub manifest_sha256: String,
}

/// `source.topics` as written in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionRecord {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    #[serde(default)]
    pub include_internal: bool,
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
    /// In an incremental backup: where the parent's records of this
    /// partition end, the offset this backup's begin at. Records between it
    /// and a `low_watermark` past it were deleted from the source in between
    /// (a gap no member holds). Absent for a partition the parent did not have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues_from: Option<i64>,
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
    #[error("backup `{backup_id}` cannot be read as a chain of incremental backups: {reason}")]
    Chain { backup_id: String, reason: String },
    #[error(
        "backup `{backup_id}` is encrypted with key `{key_id}` (fingerprint {fingerprint}): {reason}\nhint: set `storage.encryption.key` (or `key_file`) to that key (`describe --key-file FILE` without a configuration); nothing was read or written"
    )]
    Key {
        backup_id: String,
        key_id: String,
        fingerprint: String,
        reason: String,
    },
}

/// The longest chain of incremental backups a reader follows.
pub const MAX_CHAIN: usize = 10_000;

/// Reads one backup's files through the manifest, checking each file it
/// hands out. An incremental backup reads as one whole backup: its manifest
/// joined with its ancestors' ([`join`]), each file read from the member
/// that holds it.
pub struct BackupReader {
    store: Store,
    backup_id: String,
    /// The backup's manifest, joined with its ancestors' when it has any.
    pub manifest: Manifest,
    /// SHA-256 of the backup's own `manifest.json` as stored (what a child
    /// pins it by).
    pub manifest_sha256: String,
    /// Each member's own manifest, from the first (full) backup of the
    /// chain to this one; one for a full backup.
    pub chain: Vec<Manifest>,
    /// The member holding each file of the joined manifest that is not this
    /// backup's own.
    owners: BTreeMap<String, String>,
}

impl BackupReader {
    pub async fn open(store: &Store, backup_id: &str) -> Result<Self, ReadError> {
        // from this backup up to the first full one, each pinned by its child
        let mut chain: Vec<(Manifest, String)> = Vec::new();
        let mut next = (backup_id.to_owned(), None::<String>);
        loop {
            let (id, pinned) = next;
            let child = chain.last().map(|(m, _)| m.backup_id.clone());
            let chain_err = |reason: String| ReadError::Chain {
                backup_id: backup_id.to_owned(),
                reason,
            };
            if chain.len() >= MAX_CHAIN || chain.iter().any(|(m, _)| m.backup_id == id) {
                return Err(chain_err(format!(
                    "`{}` names `{id}` as its parent, which is already in the chain or past {MAX_CHAIN} members",
                    child.unwrap_or_default()
                )));
            }
            let (manifest, sha) = match read_manifest(store, &id).await {
                Err(ReadError::NotFound { .. }) if child.is_some() => {
                    return Err(chain_err(format!(
                        "its chain needs backup `{id}` (the parent of `{}`), which is not in `{store}`\nhint: a backup a kept one continues must not be deleted; restore from a full backup or an intact chain",
                        child.unwrap_or_default()
                    )));
                }
                other => other?,
            };
            if let Some(pinned) = pinned
                && pinned != sha
            {
                return Err(chain_err(format!(
                    "the manifest of `{id}` is not the one `{}` continues (its SHA-256 is `{sha}`, the child recorded `{pinned}`): the parent was changed or replaced after the child was taken",
                    child.unwrap_or_default()
                )));
            }
            let parent = manifest
                .parent
                .as_ref()
                .map(|p| (p.backup_id.clone(), Some(p.manifest_sha256.clone())));
            chain.push((manifest, sha));
            match parent {
                Some(p) => next = p,
                None => break,
            }
        }
        chain.reverse();
        let manifest_sha256 = chain.last().expect("the backup itself").1.clone();
        let chain: Vec<Manifest> = chain.into_iter().map(|(m, _)| m).collect();
        let (manifest, owners) = join(&chain).map_err(|reason| ReadError::Chain {
            backup_id: backup_id.to_owned(),
            reason,
        })?;
        Ok(Self {
            store: store.clone(),
            backup_id: backup_id.to_owned(),
            manifest,
            manifest_sha256,
            chain,
            owners,
        })
    }

    /// The member holding `relative` and its entry in the joined manifest.
    fn locate(&self, relative: &str) -> Result<(&str, &FileEntry), ReadError> {
        let owner = self.owners.get(relative).unwrap_or(&self.backup_id);
        let entry = self
            .manifest
            .files
            .get(relative)
            .ok_or_else(|| ReadError::Mismatch {
                path: format!("{owner}/{relative}"),
                reason: "the file is not listed in the manifest".into(),
            })?;
        Ok((owner, entry))
    }

    /// The bytes of a file of the backup, checked against the manifest.
    pub async fn read(&self, relative: &str) -> Result<Bytes, ReadError> {
        let (owner, entry) = self.locate(relative)?;
        read_checked(&self.store, owner, relative, entry, self.sealed(owner)).await
    }

    /// A file of the backup as stored, checked against the manifest, to be
    /// read through [`StoredFile::reader`]: an encrypted one is decrypted a
    /// chunk at a time as it is read (segments), not all at once.
    pub async fn read_stored(&self, relative: &str) -> Result<StoredFile, ReadError> {
        let (owner, entry) = self.locate(relative)?;
        let bytes = fetch_checked(&self.store, owner, relative, entry).await?;
        Ok(StoredFile {
            bytes,
            path: format!("{owner}/{relative}"),
            key: if self.sealed(owner) {
                self.store.key().cloned()
            } else {
                None
            },
        })
    }

    /// Whether the member `backup_id` of the chain is encrypted.
    fn sealed(&self, backup_id: &str) -> bool {
        self.chain
            .iter()
            .any(|m| m.backup_id == backup_id && m.encryption.is_some())
    }

    /// Checks every file every member of the chain lists; the first bad one
    /// is the error. Gives the number of files checked.
    pub async fn verify_all(&self) -> Result<u64, ReadError> {
        let mut n = 0;
        for member in &self.chain {
            for (path, entry) in &member.files {
                read_checked(
                    &self.store,
                    &member.backup_id,
                    path,
                    entry,
                    member.encryption.is_some(),
                )
                .await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Reads `<backup_id>/manifest.json` alone (no chain): the manifest (an
/// encrypted one opened with `store`'s key) and the SHA-256 of its bytes.
pub async fn read_manifest(
    store: &Store,
    backup_id: &str,
) -> Result<(Manifest, String), ReadError> {
    let (bytes, shown) = manifest_file(store, backup_id).await?;
    let sha = sha256_hex(&bytes);
    let manifest = match parse_envelope(&bytes, &shown)? {
        Some(envelope) => open_envelope(store, backup_id, &shown, envelope)?,
        None => serde_json::from_slice(&bytes).map_err(|e| ReadError::BadManifest {
            path: shown.clone(),
            reason: e.to_string(),
        })?,
    };
    check_manifest(&manifest, backup_id, &shown)?;
    Ok((manifest, sha))
}

/// Reads what `<backup_id>/manifest.json` tells without a key, and the
/// SHA-256 of its bytes.
pub async fn read_head(store: &Store, backup_id: &str) -> Result<(Head, String), ReadError> {
    let (bytes, shown) = manifest_file(store, backup_id).await?;
    let sha = sha256_hex(&bytes);
    let head = match parse_envelope(&bytes, &shown)? {
        Some(e) => {
            check_version(e.format_version, &shown)?;
            Head {
                backup_id: e.backup_id,
                finished_at: e.finished_at,
                source: e.source,
                parent: e.parent,
                selection: e.selection,
                encryption: Some(e.encryption),
                summary: e.summary,
            }
        }
        None => {
            let m: Manifest =
                serde_json::from_slice(&bytes).map_err(|e| ReadError::BadManifest {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
            check_manifest(&m, backup_id, &shown)?;
            Head {
                summary: Summary::of(&m),
                backup_id: m.backup_id,
                finished_at: m.finished_at,
                source: m.source,
                parent: m.parent,
                selection: m.selection,
                encryption: m.encryption,
            }
        }
    };
    if head.backup_id != backup_id {
        return Err(ReadError::BadManifest {
            path: shown,
            reason: format!("it names backup `{}`", head.backup_id),
        });
    }
    Ok((head, sha))
}

async fn manifest_file(store: &Store, backup_id: &str) -> Result<(Bytes, String), ReadError> {
    let path = store.path(&format!("{backup_id}/{MANIFEST_FILE}"));
    let shown = format!("{backup_id}/{MANIFEST_FILE}");
    match store.object_store().get(&path).await {
        Ok(got) => Ok((
            got.bytes().await.map_err(|source| ReadError::Storage {
                path: shown.clone(),
                source,
            })?,
            shown,
        )),
        Err(object_store::Error::NotFound { .. }) => Err(ReadError::NotFound {
            backup_id: backup_id.to_owned(),
            location: store.to_string(),
        }),
        Err(source) => Err(ReadError::Storage {
            path: shown,
            source,
        }),
    }
}

/// The envelope of an encrypted backup's manifest; `None` for a plain one.
fn parse_envelope(bytes: &[u8], shown: &str) -> Result<Option<Envelope>, ReadError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ReadError::BadManifest {
            path: shown.to_owned(),
            reason: e.to_string(),
        })?;
    if value.get("sealed").is_none() {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| ReadError::BadManifest {
            path: shown.to_owned(),
            reason: e.to_string(),
        })
}

/// The manifest sealed in `envelope`, opened with `store`'s key: refused
/// before anything else is read when there is no key or another one.
fn open_envelope(
    store: &Store,
    backup_id: &str,
    shown: &str,
    envelope: Envelope,
) -> Result<Manifest, ReadError> {
    check_version(envelope.format_version, shown)?;
    let info = &envelope.encryption;
    let key_err = |reason: String| ReadError::Key {
        backup_id: backup_id.to_owned(),
        key_id: info.key_id.clone(),
        fingerprint: info.key_fingerprint.clone(),
        reason,
    };
    let key = store
        .key()
        .ok_or_else(|| key_err("no key is configured (`storage.encryption`)".into()))?;
    if key.fingerprint != info.key_fingerprint {
        return Err(key_err(format!(
            "the configured key is another one (`{}`, fingerprint {})",
            key.id, key.fingerprint
        )));
    }
    if info.cipher != crate::crypto::CIPHER {
        return Err(key_err(format!(
            "its cipher `{}` is not one this tool reads",
            info.cipher
        )));
    }
    use base64::Engine;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&envelope.sealed)
        .map_err(|e| ReadError::BadManifest {
            path: shown.to_owned(),
            reason: format!("`sealed` is not base64: {e}"),
        })?;
    let json = key
        .open(&format!("{backup_id}/{MANIFEST_FILE}"), &sealed)
        .map_err(|e| ReadError::Mismatch {
            path: shown.to_owned(),
            reason: e.to_string(),
        })?;
    let m: Manifest = serde_json::from_slice(&json).map_err(|e| ReadError::BadManifest {
        path: shown.to_owned(),
        reason: e.to_string(),
    })?;
    // what the envelope shows is what the sealed manifest says
    let shows = (
        &envelope.backup_id,
        &envelope.finished_at,
        &envelope.parent,
        &envelope.selection,
        Some(&envelope.encryption),
    );
    let says = (
        &m.backup_id,
        &m.finished_at,
        &m.parent,
        &m.selection,
        m.encryption.as_ref(),
    );
    if shows != says || envelope.summary != Summary::of(&m) {
        return Err(ReadError::Mismatch {
            path: shown.to_owned(),
            reason: "the envelope does not say what the sealed manifest says".into(),
        });
    }
    Ok(m)
}

fn check_version(version: u32, shown: &str) -> Result<(), ReadError> {
    if version > FORMAT_VERSION {
        return Err(ReadError::BadManifest {
            path: shown.to_owned(),
            reason: format!(
                "format version {version} is newer than this tool reads ({FORMAT_VERSION}): upgrade kafka-backup"
            ),
        });
    }
    Ok(())
}

fn check_manifest(m: &Manifest, backup_id: &str, shown: &str) -> Result<(), ReadError> {
    check_version(m.format_version, shown)?;
    if m.backup_id != backup_id {
        return Err(ReadError::BadManifest {
            path: shown.to_owned(),
            reason: format!("it names backup `{}`", m.backup_id),
        });
    }
    Ok(())
}

/// A file as stored (its size and SHA-256 checked against the manifest,
/// which is itself authenticated when the backup is encrypted).
pub struct StoredFile {
    bytes: Bytes,
    /// `<backup_id>/<relative>`.
    path: String,
    key: Option<crate::crypto::Key>,
}

impl StoredFile {
    /// The file's content: the stored bytes, or their plaintext a chunk at
    /// a time.
    pub fn reader(&self) -> Result<Box<dyn std::io::Read + '_>, ReadError> {
        match &self.key {
            None => Ok(Box::new(&self.bytes[..])),
            Some(key) => Ok(Box::new(key.reader(&self.path, &self.bytes).map_err(
                |e| ReadError::Mismatch {
                    path: self.path.clone(),
                    reason: e.to_string(),
                },
            )?)),
        }
    }

    /// The path the file was read from, `<backup_id>/<relative>`.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// The bytes of `<backup_id>/<relative>`, checked against `entry` and
/// opened with `store`'s key when `sealed`.
async fn read_checked(
    store: &Store,
    backup_id: &str,
    relative: &str,
    entry: &FileEntry,
    sealed: bool,
) -> Result<Bytes, ReadError> {
    let shown = format!("{backup_id}/{relative}");
    let bytes = fetch_checked(store, backup_id, relative, entry).await?;
    if !sealed {
        return Ok(bytes);
    }
    // the member's manifest opened with this key: it is there and the same
    let key = store
        .key()
        .expect("a sealed member was opened with the store's key");
    key.open(&shown, &bytes)
        .map(Bytes::from)
        .map_err(|e| ReadError::Mismatch {
            path: shown,
            reason: e.to_string(),
        })
}

/// The stored bytes of `<backup_id>/<relative>`, checked against `entry`.
async fn fetch_checked(
    store: &Store,
    backup_id: &str,
    relative: &str,
    entry: &FileEntry,
) -> Result<Bytes, ReadError> {
    let shown = format!("{backup_id}/{relative}");
    let path = store.path(&shown);
    let bytes = match store.object_store().get(&path).await {
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

/// The backups of `store` with a manifest (finished), by ID.
pub async fn finished_backups(store: &Store) -> Result<Vec<String>, object_store::Error> {
    use futures::TryStreamExt;
    let prefix_parts = store.prefix().parts().count();
    let mut listing = store.object_store().list(Some(store.prefix()));
    let mut out = Vec::new();
    while let Some(meta) = listing.try_next().await? {
        let parts: Vec<_> = meta.location.parts().skip(prefix_parts).collect();
        if let [id, file] = parts.as_slice()
            && file.as_ref() == MANIFEST_FILE
        {
            out.push(id.as_ref().to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Where a partition's records end in `p`: the offset a backup continuing
/// it starts at (records of a transaction left open were not taken).
pub fn partition_end(p: &PartitionManifest) -> i64 {
    p.left_out_from.unwrap_or(p.high_watermark)
}

/// Joins a chain's manifests (first, full backup first) into the manifest of
/// one whole backup as of the last member: the last member's topics, each
/// partition's segments from every member in order, its watermarks from the
/// first and the last, the last member's registry and consumer groups. Gives
/// the joined manifest and, for each file it lists that another member
/// holds, that member. A member that does not continue its parent where the
/// parent ends is an error (the chain was not written by backups of it).
pub fn join(chain: &[Manifest]) -> Result<(Manifest, BTreeMap<String, String>), String> {
    let (last, ancestors) = chain.split_last().ok_or("an empty chain")?;
    let mut joined = last.clone();
    let mut owners = BTreeMap::new();
    if ancestors.is_empty() {
        return Ok((joined, owners));
    }
    for (topic, tm) in &mut joined.topics {
        for (&partition, p) in &mut tm.partitions {
            // this partition through the members, first to last
            let mut acc: Option<(PartitionManifest, Vec<(SegmentEntry, &str)>)> = None;
            for member in chain {
                let Some(mp) = member
                    .topics
                    .get(topic)
                    .and_then(|t| t.partitions.get(&partition))
                else {
                    if acc.is_some() {
                        return Err(format!(
                            "`{}` lacks {topic} partition {partition}, which its parent has and a later member continues",
                            member.backup_id
                        ));
                    }
                    continue;
                };
                let own: Vec<(SegmentEntry, &str)> = mp
                    .segments
                    .iter()
                    .map(|s| (s.clone(), member.backup_id.as_str()))
                    .collect();
                acc = Some(match (acc, mp.continues_from) {
                    (None, None) => (mp.clone(), own),
                    (Some((mut a, mut segments)), Some(from)) if from == partition_end(&a) => {
                        a.high_watermark = mp.high_watermark;
                        a.last_stable_offset = mp.last_stable_offset;
                        a.left_out_from = mp.left_out_from;
                        a.record_count += mp.record_count;
                        a.schema_ids.merge(&mp.schema_ids);
                        segments.extend(own);
                        (a, segments)
                    }
                    (Some((a, _)), from) => {
                        return Err(format!(
                            "`{}` continues {topic} partition {partition} from {}, where its parent's records end at {}",
                            member.backup_id,
                            from.map_or("its start".to_owned(), |f| format!("offset {f}")),
                            partition_end(&a)
                        ));
                    }
                    (None, Some(from)) => {
                        return Err(format!(
                            "`{}` continues {topic} partition {partition} from offset {from}, which no earlier member holds",
                            member.backup_id
                        ));
                    }
                });
            }
            let (a, segments) = acc.expect("the last member has the partition");
            *p = PartitionManifest {
                continues_from: None,
                segments: Vec::with_capacity(segments.len()),
                ..a
            };
            for (segment, owner) in segments {
                if owner != last.backup_id {
                    let entry = chain
                        .iter()
                        .find(|m| m.backup_id == owner)
                        .and_then(|m| m.files.get(&segment.path))
                        .ok_or_else(|| {
                            format!(
                                "`{owner}` lists segment `{}` but not its file",
                                segment.path
                            )
                        })?;
                    if joined
                        .files
                        .insert(segment.path.clone(), entry.clone())
                        .is_some()
                        || owners
                            .insert(segment.path.clone(), owner.to_owned())
                            .is_some()
                    {
                        return Err(format!(
                            "segment `{}` is in two members of the chain",
                            segment.path
                        ));
                    }
                }
                p.segments.push(segment);
            }
        }
    }
    Ok((joined, owners))
}

/// Writes `bytes` at `relative` under the backup folder and records it.
pub async fn put_file(
    store: &Store,
    backup_id: &str,
    relative: &str,
    bytes: Bytes,
    files: &mut BTreeMap<String, FileEntry>,
) -> Result<(), object_store::Error> {
    let path = format!("{backup_id}/{relative}");
    let bytes = Bytes::from(store.seal(&path, bytes.to_vec()));
    let entry = FileEntry::of(&bytes);
    store
        .object_store()
        .put(&store.path(&path), PutPayload::from(bytes))
        .await?;
    files.insert(relative.to_owned(), entry);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A member holding, for partition 0 of `t`, segments of `[first, last]`
    /// offsets, its watermarks `[low, high)` and `continues_from`.
    /// A backup `id` of topic `t` partition 0 from `low` to `high`, with
    /// `segments` (first and last offsets), continuing its parent at
    /// `continues_from`; for the chain tests here and in `backup::incremental`.
    pub(crate) fn member(
        id: &str,
        low: i64,
        high: i64,
        continues_from: Option<i64>,
        segments: &[(i64, i64)],
    ) -> Manifest {
        let mut files = BTreeMap::new();
        let segments: Vec<SegmentEntry> = segments
            .iter()
            .map(|&(first, last)| {
                let path = format!("kafka/t/0/{first:020}-{last:020}.seg.zst");
                files.insert(
                    path.clone(),
                    FileEntry {
                        size: 1,
                        sha256: format!("{id}-{first}"),
                    },
                );
                SegmentEntry {
                    path,
                    meta: SegmentMeta {
                        first_offset: first,
                        last_offset: last,
                        record_count: (last - first + 1) as u64,
                        min_timestamp: None,
                        max_timestamp: None,
                        uncompressed_bytes: 1,
                        size: 1,
                        sha256: format!("{id}-{first}"),
                    },
                }
            })
            .collect();
        files.insert(
            "schema-registry/manifest.json".into(),
            FileEntry {
                size: 1,
                sha256: format!("{id}-registry"),
            },
        );
        Manifest {
            format_version: FORMAT_VERSION,
            tool_version: "t".into(),
            backup_id: id.into(),
            started_at: format!("{id}-start"),
            finished_at: format!("{id}-end"),
            source: SourceInfo {
                bootstrap_servers: "k".into(),
            },
            topics: BTreeMap::from([(
                "t".to_owned(),
                TopicManifest {
                    partition_count: 1,
                    replication_factor: 1,
                    configs: BTreeMap::new(),
                    partitions: BTreeMap::from([(
                        0,
                        PartitionManifest {
                            low_watermark: low,
                            high_watermark: high,
                            last_stable_offset: Some(high),
                            left_out_from: None,
                            continues_from,
                            record_count: segments.iter().map(|s| s.meta.record_count).sum(),
                            segments,
                            schema_ids: RecordIds::default(),
                        },
                    )]),
                },
            )]),
            schema_registry: None,
            consumer_groups: BTreeMap::new(),
            files,
            parent: None,
            selection: None,
            encryption: None,
        }
    }

    #[test]
    fn a_chain_joins_into_one_backup_as_of_its_last_member() {
        let chain = [
            member("b1", 0, 10, None, &[(0, 9)]),
            // 10..14 deleted from the source before b2: a gap
            member("b2", 15, 20, Some(10), &[(15, 19)]),
            // nothing new
            member("b3", 15, 20, Some(20), &[]),
        ];
        let (joined, owners) = join(&chain).unwrap();
        let p = &joined.topics["t"].partitions[&0];
        assert_eq!((p.low_watermark, p.high_watermark), (0, 20));
        assert_eq!(p.continues_from, None);
        assert_eq!(p.record_count, 15);
        let firsts: Vec<i64> = p.segments.iter().map(|s| s.meta.first_offset).collect();
        assert_eq!(firsts, [0, 15]);
        assert_eq!(joined.backup_id, "b3");
        // each segment read from the member that holds it; the registry is the last's
        assert_eq!(
            owners.values().map(String::as_str).collect::<Vec<_>>(),
            ["b1", "b2"]
        );
        assert_eq!(
            joined.files["schema-registry/manifest.json"].sha256,
            "b3-registry"
        );
        assert_eq!(joined.files.len(), 3);
        // a full backup joins to itself
        assert_eq!(
            join(&chain[..1]).unwrap(),
            (chain[0].clone(), BTreeMap::new())
        );
    }

    #[test]
    fn a_member_that_does_not_continue_its_parent_is_refused() {
        let b1 = member("b1", 0, 10, None, &[(0, 9)]);
        // starts at 8: records 8 and 9 twice
        let overlap = member("b2", 0, 20, Some(8), &[(8, 19)]);
        let e = join(&[b1.clone(), overlap]).unwrap_err();
        assert!(
            e.contains("from offset 8, where its parent's records end at 10"),
            "{e}"
        );
        // starts over from the partition's start
        let restart = member("b2", 0, 20, None, &[(0, 19)]);
        let e = join(&[b1.clone(), restart]).unwrap_err();
        assert!(e.contains("from its start"), "{e}");
        // continues a partition no earlier member has
        let mut orphan = member("b2", 0, 20, Some(10), &[(10, 19)]);
        orphan.topics.insert(
            "u".into(),
            TopicManifest {
                partition_count: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
                partitions: BTreeMap::from([(
                    0,
                    PartitionManifest {
                        continues_from: Some(5),
                        ..orphan.topics["t"].partitions[&0].clone()
                    },
                )]),
            },
        );
        let e = join(&[b1.clone(), orphan]).unwrap_err();
        assert!(e.contains("which no earlier member holds"), "{e}");
        // a member in the middle that lost the partition
        let mut hole = member("b2", 0, 10, Some(10), &[]);
        hole.topics.clear();
        let b3 = member("b3", 0, 20, Some(10), &[(10, 19)]);
        let e = join(&[b1, hole, b3]).unwrap_err();
        assert!(e.contains("`b2` lacks t partition 0"), "{e}");
    }

    #[test]
    fn records_an_open_transaction_left_out_are_taken_by_the_next_member() {
        let mut b1 = member("b1", 0, 10, None, &[(0, 6)]);
        b1.topics
            .get_mut("t")
            .unwrap()
            .partitions
            .get_mut(&0)
            .unwrap()
            .left_out_from = Some(7);
        let b2 = member("b2", 0, 20, Some(7), &[(7, 19)]);
        let (joined, _) = join(&[b1, b2]).unwrap();
        let p = &joined.topics["t"].partitions[&0];
        assert_eq!((p.left_out_from, p.record_count), (None, 20));
    }
}
