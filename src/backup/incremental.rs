//! Incremental backups: `incremental_from: <backup_id>` (or `latest`) makes a
//! backup that holds only the records after its parent's, per partition, and
//! names the parent with the SHA-256 of its manifest. Readers join the chain
//! (`manifest::join`), so `plan`, `apply` and `verify` see one whole backup.
//!
//! Where each partition starts: at the parent's end (the chain joined: the
//! last member's high watermark, or where it left an open transaction out);
//! a partition the parent did not have starts at its low watermark. A low
//! watermark past the parent's end means records were deleted from the
//! source in between: the backup starts at the low watermark and records
//! the gap (`continues_from` below `low_watermark`). A high watermark below
//! the parent's end means the offsets went back (the topic was created
//! again): no incremental backup can follow that, and the backup stops.

use std::collections::BTreeMap;

use crate::config::{Config, TopicSelection};
use crate::manifest::{
    self, BackupReader, Manifest, ParentRef, SelectionRecord, TopicManifest, partition_end,
};
use crate::storage::Store;

use super::BackupError;

/// `incremental_from: latest`.
pub const LATEST: &str = "latest";

/// The backup an incremental one continues.
#[derive(Debug, Clone)]
pub struct Parent {
    pub reference: ParentRef,
    /// The parent's chain joined into one manifest.
    pub joined: Manifest,
}

impl Parent {
    /// Where the parent's records of a partition end, if it has the partition.
    pub fn end(&self, topic: &str, partition: i32) -> Option<i64> {
        self.joined
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(&partition))
            .map(partition_end)
    }

    /// `topics` (this backup's partitions) joined after the parent's: what
    /// the whole chain holds, for the IDs its records carry.
    pub fn joined_topics(
        &self,
        backup_id: &str,
        topics: &BTreeMap<String, TopicManifest>,
        files: &BTreeMap<String, manifest::FileEntry>,
    ) -> Result<BTreeMap<String, TopicManifest>, BackupError> {
        let child = Manifest {
            backup_id: backup_id.to_owned(),
            topics: topics.clone(),
            files: files.clone(),
            parent: Some(self.reference.clone()),
            ..self.joined.clone()
        };
        manifest::join(&[self.joined.clone(), child])
            .map(|(joined, _)| joined.topics)
            .map_err(|reason| BackupError::Incremental { reason })
    }
}

/// The selection as the manifest records it.
pub fn selection_record(selection: &TopicSelection) -> SelectionRecord {
    SelectionRecord {
        include: selection
            .include
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        exclude: selection
            .exclude
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        include_internal: selection.include_internal,
    }
}

/// The parent `config.incremental_from` names, read and checked with its
/// whole chain; `None` for a full backup.
pub async fn parent(
    config: &Config,
    store: &Store,
    backup_id: &str,
) -> Result<Option<Parent>, BackupError> {
    let Some(from) = &config.incremental_from else {
        return Ok(None);
    };
    let err = |reason: String| BackupError::Incremental { reason };
    let id = match from.as_str() {
        LATEST => {
            let selection = config
                .source
                .as_ref()
                .map(|s| selection_record(&s.topics))
                .ok_or_else(|| err("`incremental_from` needs a `source` to back up".into()))?;
            latest(store, backup_id, &selection).await?
        }
        id if id == backup_id => {
            return Err(err(format!(
                "`incremental_from` names this backup itself (`{id}`)"
            )));
        }
        id => id.to_owned(),
    };
    let reader = BackupReader::open(store, &id).await.map_err(|e| {
        err(format!(
            "the parent `{id}` cannot be read: {e}\nhint: `kafka-backup list` shows the finished backups of `{store}`"
        ))
    })?;
    if reader.manifest.format_version < 2 {
        return Err(err(format!(
            "the parent `{id}` is a format {} backup, which does not say where open transactions left records out; take a full backup",
            reader.manifest.format_version
        )));
    }
    Ok(Some(Parent {
        reference: ParentRef {
            backup_id: id,
            manifest_sha256: reader.manifest_sha256,
        },
        joined: reader.manifest,
    }))
}

/// Checks, just before this backup publishes its manifest, that its parent
/// is still the one it continues: a `prune` (or a hand) that deleted or
/// replaced it meanwhile would leave a child no one can read.
pub async fn still_there(store: &Store, parent: &Parent) -> Result<(), BackupError> {
    let id = &parent.reference.backup_id;
    match manifest::read_manifest(store, id).await {
        Ok((_, sha)) if sha == parent.reference.manifest_sha256 => Ok(()),
        Ok(_) => Err(BackupError::Incremental {
            reason: format!(
                "the parent `{id}` was replaced while this backup ran; no manifest was written\nhint: run the backup again"
            ),
        }),
        Err(e) => Err(BackupError::Incremental {
            reason: format!(
                "the parent `{id}` cannot be read any more ({e}): it was deleted while this backup ran (a `prune`?); no manifest was written\nhint: run the backup again: it continues the newest backup there is"
            ),
        }),
    }
}

/// The newest finished backup of `store` taken with `selection` (by its
/// finish time, then its ID), this one aside.
async fn latest(
    store: &Store,
    backup_id: &str,
    selection: &SelectionRecord,
) -> Result<String, BackupError> {
    let ids = manifest::finished_backups(store)
        .await
        .map_err(|source| BackupError::Storage {
            path: store.to_string(),
            source,
        })?;
    let mut best: Option<(String, String)> = None;
    for id in ids.into_iter().filter(|id| id != backup_id) {
        let (m, _) = match manifest::read_head(store, &id).await {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(
                    backup = id,
                    "not a candidate for `incremental_from: latest`: {e}"
                );
                continue;
            }
        };
        if m.selection.as_ref() != Some(selection) {
            continue;
        }
        let key = (m.finished_at.clone(), id.clone());
        if best.as_ref().is_none_or(|b| key > *b) {
            best = Some(key);
        }
    }
    best.map(|(_, id)| id).ok_or_else(|| BackupError::Incremental {
        reason: format!(
            "`incremental_from: latest` found no finished backup in `{store}` taken with this topic selection (include {:?}, exclude {:?})\nhint: take a full backup first (without `incremental_from`); later ones continue it",
            selection.include, selection.exclude
        ),
    })
}

/// Where this backup starts a partition whose watermarks are `low` and
/// `high`: `(first offset to take, continues_from)`.
pub fn start(
    parent: Option<&Parent>,
    topic: &str,
    partition: i32,
    low: i64,
    high: i64,
) -> Result<(i64, Option<i64>), BackupError> {
    let Some(p) = parent else {
        return Ok((low, None));
    };
    let Some(end) = p.end(topic, partition) else {
        return Ok((low, None));
    };
    if high < end {
        return Err(BackupError::Incremental {
            reason: format!(
                "`{topic}` partition {partition} ends at offset {high}, before the end of the parent `{}` ({end}): the topic was deleted and created again, or lost records\nhint: take a full backup (without `incremental_from`)",
                p.reference.backup_id
            ),
        });
    }
    if low > end {
        tracing::warn!(
            topic,
            partition,
            parent = p.reference.backup_id,
            "records {end}..{} were deleted from the source since the parent: no backup holds them (recorded as a gap)",
            low - 1
        );
    }
    Ok((low.max(end), Some(end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(end: i64, left_out_from: Option<i64>) -> Parent {
        let mut joined = crate::manifest::tests::member("b1", 0, end, None, &[]);
        let partition = joined.topics.get_mut("t").unwrap().partitions.get_mut(&0);
        partition.unwrap().left_out_from = left_out_from;
        Parent {
            reference: ParentRef {
                backup_id: "b1".into(),
                manifest_sha256: "00".into(),
            },
            joined,
        }
    }

    #[test]
    fn a_partition_starts_where_the_parent_ended_or_at_its_start() {
        let p = parent(100, None);
        assert_eq!(start(None, "t", 0, 5, 200).unwrap(), (5, None));
        assert_eq!(start(Some(&p), "t", 0, 5, 200).unwrap(), (100, Some(100)));
        // nothing new
        assert_eq!(start(Some(&p), "t", 0, 5, 100).unwrap(), (100, Some(100)));
        // a partition the parent did not have, a topic it did not have
        assert_eq!(start(Some(&p), "t", 1, 0, 50).unwrap(), (0, None));
        assert_eq!(start(Some(&p), "u", 0, 7, 50).unwrap(), (7, None));
        // deleted past the parent's end: a gap, recorded by continues_from < low
        assert_eq!(start(Some(&p), "t", 0, 150, 200).unwrap(), (150, Some(100)));
        // records of a transaction the parent left out are taken now
        let open = parent(100, Some(90));
        assert_eq!(start(Some(&open), "t", 0, 0, 120).unwrap(), (90, Some(90)));
    }

    #[test]
    fn offsets_that_went_back_stop_the_backup() {
        let p = parent(100, None);
        let e = start(Some(&p), "t", 0, 0, 99).unwrap_err().to_string();
        assert!(e.contains("created again"), "{e}");
    }
}
