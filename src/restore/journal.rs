//! The data half of the apply journal: `<backup_id>/restore/<cluster>.json`,
//! one per target cluster (named by its cluster ID), whatever plan ran the
//! registry half: a partition restored once
//! is done for every later apply of the same backup into the same cluster.
//!
//! A sharded apply (`--shard i/N`, [`super::shard`]) writes its own file,
//! `<cluster>.shard-i-of-N.json`, since the file is written whole and
//! concurrent shards would overwrite each other's. Reading gives the union of
//! every file of the cluster (the unsharded one and every shard's): the
//! shards take disjoint partitions, so a partition in two files is an error
//! naming both. A run writes only what is its own: the partitions it
//! restores, and the consumer groups it set ([`DataJournal::own`]).
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

use super::shard::Shard;
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
    pub groups: BTreeMap<String, GroupOffsets>,
    /// Consumer groups whose offsets an apply was about to commit (saved
    /// before the commit, removed once the offsets are journalled in
    /// `groups`): per target topic and partition, the offset and what the
    /// group had there, so that a rerun tells a commit that did not land
    /// from consumers that read on since.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_intents: BTreeMap<String, GroupIntents>,
    /// What of it was read from the cluster's other files (not saved into
    /// this run's).
    #[serde(skip)]
    pub others: Others,
}

/// A consumer group's journalled offsets: target topic, then partition.
pub type GroupOffsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// What an apply was about to commit for a group: target topic, then partition.
pub type GroupIntents = BTreeMap<String, BTreeMap<i32, IntentOffset>>;

/// One partition of a group an apply was about to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentOffset {
    pub to: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
}

/// The entries of a joined journal that other files hold
/// ([`DataJournal::union`]): another shard's, or the unsharded run's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Others {
    /// Target topic and partition, to the file (as shown) holding its entry.
    pub partitions: BTreeMap<(String, i32), String>,
    /// The consumer groups' offsets as the other files journal them.
    pub groups: BTreeMap<String, GroupOffsets>,
    /// The consumer groups' commit intents as the other files journal them.
    pub group_intents: BTreeMap<String, GroupIntents>,
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
            others: Others::default(),
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

    /// Records `progress` of a partition this run restores (it is saved
    /// into this run's file from now on).
    pub fn set(&mut self, topic: &str, partition: i32, progress: PartitionProgress) {
        self.others
            .partitions
            .remove(&(topic.to_owned(), partition));
        self.partitions
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, progress);
    }

    /// The file (as shown) holding the entry of `topic` partition
    /// `partition`, when it is another file than the one this run writes.
    pub fn held_elsewhere(&self, topic: &str, partition: i32) -> Option<&str> {
        self.others
            .partitions
            .get(&(topic.to_owned(), partition))
            .map(String::as_str)
    }

    /// Joins the journals of one cluster's files: `own` (the file this run
    /// writes, shown as `own_path`) and `others`, each with the file it was
    /// read from as shown. A partition in two files is an error naming
    /// both; so is a consumer group offset two files journal differently
    /// (two shards that finished at once both journal the same offsets).
    /// `None` when there is no file.
    pub fn union(
        own: Option<DataJournal>,
        own_path: &str,
        others: Vec<(String, DataJournal)>,
    ) -> Result<Option<Self>, DataJournalError> {
        let Some(mut union) = own
            .clone()
            .or_else(|| others.first().map(|(_, j)| DataJournal::new(&j.cluster)))
        else {
            return Ok(None);
        };
        union.others = Others::default();
        let mut held: BTreeMap<(String, i32), String> = BTreeMap::new();
        let mut journalled: BTreeMap<(String, String, i32), (String, i64)> = BTreeMap::new();
        if let Some(own) = &own {
            for (topic, partitions) in &own.partitions {
                for &p in partitions.keys() {
                    held.insert((topic.clone(), p), own_path.to_owned());
                }
            }
            for (group, topics) in &own.groups {
                for (topic, partitions) in topics {
                    for (&p, &offset) in partitions {
                        journalled.insert(
                            (group.clone(), topic.clone(), p),
                            (own_path.to_owned(), offset),
                        );
                    }
                }
            }
        }
        for (path, journal) in others {
            for (topic, partitions) in journal.partitions {
                for (p, progress) in partitions {
                    let key = (topic.clone(), p);
                    if let Some(first) = held.get(&key) {
                        return Err(DataJournalError::Overlap {
                            what: "restore journals",
                            topic,
                            partition: p,
                            first: first.clone(),
                            second: path,
                        });
                    }
                    held.insert(key.clone(), path.clone());
                    union.others.partitions.insert(key, path.clone());
                    union
                        .partitions
                        .entry(topic.clone())
                        .or_default()
                        .insert(p, progress);
                }
            }
            for (digest, map) in journal.maps {
                union.maps.entry(digest).or_insert(map);
            }
            for (group, topics) in journal.groups {
                for (topic, partitions) in topics {
                    for (p, offset) in partitions {
                        let key = (group.clone(), topic.clone(), p);
                        if let Some((first, was)) = journalled.get(&key)
                            && *was != offset
                        {
                            return Err(DataJournalError::GroupsDisagree {
                                group,
                                topic,
                                partition: p,
                                first: first.clone(),
                                first_offset: *was,
                                second: path,
                                second_offset: offset,
                            });
                        }
                        journalled.insert(key, (path.clone(), offset));
                        for groups in [&mut union.groups, &mut union.others.groups] {
                            groups
                                .entry(group.clone())
                                .or_default()
                                .entry(topic.clone())
                                .or_default()
                                .insert(p, offset);
                        }
                    }
                }
            }
            // intents are what a run was about to commit: the same offsets
            // for every run of a restore; the first file's is kept
            for (group, topics) in journal.group_intents {
                for (topic, partitions) in topics {
                    for (p, intent) in partitions {
                        for intents in [&mut union.group_intents, &mut union.others.group_intents] {
                            intents
                                .entry(group.clone())
                                .or_default()
                                .entry(topic.clone())
                                .or_default()
                                .entry(p)
                                .or_insert(intent);
                        }
                    }
                }
            }
        }
        Ok(Some(union))
    }

    /// What this run's file holds of the joined journal: the partitions no
    /// other file holds, the ID maps they name, and the consumer groups
    /// whose offsets (and commit intents) the other files do not journal as
    /// they are here.
    pub fn own(&self) -> DataJournal {
        let mut own = DataJournal::new(&self.cluster);
        for (topic, partitions) in &self.partitions {
            for (&p, progress) in partitions {
                if self.held_elsewhere(topic, p).is_some() {
                    continue;
                }
                if let Some(digest) = &progress.shape.map
                    && let Some(map) = self.maps.get(digest)
                {
                    own.maps.insert(digest.clone(), map.clone());
                }
                own.partitions
                    .entry(topic.clone())
                    .or_default()
                    .insert(p, progress.clone());
            }
        }
        for (group, offsets) in &self.groups {
            if self.others.groups.get(group) != Some(offsets) {
                own.groups.insert(group.clone(), offsets.clone());
            }
        }
        for (group, intents) in &self.group_intents {
            if self.others.group_intents.get(group) != Some(intents) {
                own.group_intents.insert(group.clone(), intents.clone());
            }
        }
        own
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
    #[error("cannot list the restore's files in `{path}`")]
    List {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error(
        "`{topic}` partition {partition} is in two {what}, `{first}` and `{second}`: two runs recorded restoring it\nhint: the shards of one restore take disjoint partitions, so one of the files is left from another restore of it (its journal deleted and the partition restored again by a run with another `--shard`, or a file copied); keep the file of the run whose records the target holds and move the other out of the folder"
    )]
    Overlap {
        what: &'static str,
        topic: String,
        partition: i32,
        first: String,
        second: String,
    },
    #[error(
        "consumer group `{group}`: `{first}` journals offset {first_offset} for `{topic}` partition {partition}, `{second}` journals {second_offset}\nhint: the runs of one restore set a group to the same offsets, so one of the files is left from another restore; keep the file of the run whose offsets the group has in the target and move the other out of the folder"
    )]
    GroupsDisagree {
        group: String,
        topic: String,
        partition: i32,
        first: String,
        first_offset: i64,
        second: String,
        second_offset: i64,
    },
}

/// What a file of a cluster's restore holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The restore journal ([`DataJournal`]).
    Journal,
    /// The offset map ([`super::offsets::OffsetMap`]).
    Offsets,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Journal => "json",
            Kind::Offsets => "offsets.json",
        }
    }
}

/// The files of one cluster's restore of one backup, in
/// `<backup_id>/restore/`: `<cluster>.json` and `<cluster>.offsets.json`
/// written by an apply without `--shard`, `<cluster>.shard-i-of-N.json` and
/// `<cluster>.shard-i-of-N.offsets.json` by shard `i` of `N`.
#[derive(Clone)]
pub(crate) struct RestoreFiles {
    store: Store,
    folder: String,
    /// The cluster's [`file_name`].
    base: String,
    /// Whose files this run writes.
    shard: Option<Shard>,
}

impl RestoreFiles {
    pub(crate) fn new(store: Store, backup_id: &str, cluster: &str) -> Self {
        Self {
            store,
            folder: format!("{backup_id}/restore"),
            base: file_name(cluster),
            shard: None,
        }
    }

    pub(crate) fn for_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// The name of the file of `kind` that `shard` writes.
    fn name(&self, shard: Option<Shard>, kind: Kind) -> String {
        match shard {
            None => format!("{}.{}", self.base, kind.suffix()),
            Some(s) => format!("{}.{}.{}", self.base, s.tag(), kind.suffix()),
        }
    }

    /// The run a file name of `kind` belongs to (`Some(None)`: unsharded),
    /// `None` when it is no file of this cluster's of that kind.
    fn writer(&self, name: &str, kind: Kind) -> Option<Option<Shard>> {
        let rest = name.strip_prefix(&self.base)?.strip_prefix('.')?;
        if rest == kind.suffix() {
            return Some(None);
        }
        let tag = rest.strip_suffix(kind.suffix())?.strip_suffix('.')?;
        Shard::from_tag(tag).map(Some)
    }

    /// The file of `kind` this run writes, as shown to people.
    pub(crate) fn own_display(&self, kind: Kind) -> String {
        self.display(&self.name(self.shard, kind))
    }

    fn display(&self, name: &str) -> String {
        format!(
            "{}/{}/{name}",
            self.store.to_string().trim_end_matches('/'),
            self.folder
        )
    }

    /// Every file of `kind` of the cluster: this run's (`None` when there
    /// is none yet) and the others, each as shown with its bytes; the
    /// unsharded one first, then by shard count and index.
    pub(crate) async fn read_all(
        &self,
        kind: Kind,
    ) -> Result<(Option<Bytes>, Vec<(String, Bytes)>), DataJournalError> {
        let prefix = self.store.path(&self.folder);
        let listed = self
            .store
            .object_store()
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|source| DataJournalError::List {
                path: format!("{}/", self.display("").trim_end_matches('/')),
                source,
            })?;
        let mut writers: Vec<Option<Shard>> = listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename())
            .filter_map(|name| self.writer(name, kind))
            .filter(|w| *w != self.shard)
            .collect();
        writers.sort_by_key(|w| w.map(|s| (s.count, s.index)));
        let own = self.read(&self.name(self.shard, kind)).await?;
        let mut others = Vec::new();
        for writer in writers {
            let name = self.name(writer, kind);
            // a file deleted since the listing is no file
            if let Some(bytes) = self.read(&name).await? {
                others.push((self.display(&name), bytes));
            }
        }
        Ok((own, others))
    }

    async fn read(&self, name: &str) -> Result<Option<Bytes>, DataJournalError> {
        let path = self.store.path(&format!("{}/{name}", self.folder));
        match self.store.object_store().get(&path).await {
            Ok(got) => got.bytes().await.map(Some),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
        .map_err(|source| DataJournalError::Read {
            path: self.display(name),
            source,
        })
    }

    /// Replaces this run's file of `kind` (object stores replace an object
    /// atomically).
    pub(crate) async fn write(&self, kind: Kind, bytes: Vec<u8>) -> Result<(), DataJournalError> {
        let name = self.name(self.shard, kind);
        self.store
            .object_store()
            .put(
                &self.store.path(&format!("{}/{name}", self.folder)),
                PutPayload::from(Bytes::from(bytes)),
            )
            .await
            .map(|_| ())
            .map_err(|source| DataJournalError::Write {
                path: self.display(&name),
                source,
            })
    }
}

/// How to run the apply that writes the restore file `shown`: `with
/// \`--shard i/N\``, or `without \`--shard\``.
pub fn writer_hint(shown: &str) -> String {
    let name = shown.rsplit('/').next().unwrap_or(shown);
    let shard = name.split('.').find_map(Shard::from_tag);
    match shard {
        Some(s) => format!("with `--shard {s}`"),
        None => "without `--shard`".to_owned(),
    }
}

/// Where the data journal of restoring one backup into one cluster lives.
#[derive(Clone)]
pub struct DataJournalStore {
    files: RestoreFiles,
}

impl DataJournalStore {
    /// The journal of restoring `backup_id` into the cluster `cluster`, as
    /// an apply without `--shard` writes it.
    pub fn new(store: Store, backup_id: &str, cluster: &str) -> Self {
        Self {
            files: RestoreFiles::new(store, backup_id, cluster),
        }
    }

    /// The same journal, written by `shard` into its own file.
    pub fn for_shard(self, shard: Option<Shard>) -> Self {
        Self {
            files: self.files.for_shard(shard),
        }
    }

    /// The file this run writes.
    pub fn display(&self) -> String {
        self.files.own_display(Kind::Journal)
    }

    /// Every file's journal joined ([`DataJournal::union`]), `None` when no
    /// data of this backup was restored into the cluster yet.
    pub async fn load(&self) -> Result<Option<DataJournal>, DataJournalError> {
        let (own, others) = self.files.read_all(Kind::Journal).await?;
        let own_path = self.display();
        let own = own.map(|b| parse(&own_path, &b)).transpose()?;
        let others = others
            .into_iter()
            .map(|(path, b)| parse(&path, &b).map(|j| (path, j)))
            .collect::<Result<Vec<_>, _>>()?;
        DataJournal::union(own, &own_path, others)
    }

    /// Writes this run's part of `journal` ([`DataJournal::own`]) to its file.
    pub async fn save(&self, journal: &DataJournal) -> Result<(), DataJournalError> {
        let mut bytes = serde_json::to_vec_pretty(&journal.own()).expect("a journal serializes");
        bytes.push(b'\n');
        self.files.write(Kind::Journal, bytes).await
    }
}

/// One file's journal, checked for its format.
fn parse(path: &str, bytes: &[u8]) -> Result<DataJournal, DataJournalError> {
    let journal: DataJournal =
        serde_json::from_slice(bytes).map_err(|e| DataJournalError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if journal.format != DATA_JOURNAL_FORMAT {
        return Err(DataJournalError::Invalid {
            path: path.to_owned(),
            reason: format!(
                "format `{}`, expected `{DATA_JOURNAL_FORMAT}`",
                journal.format
            ),
        });
    }
    Ok(journal)
}

#[cfg(test)]
mod tests {
    use super::super::offsets::{OffsetMap, OffsetMapStore, PartitionOffsets};
    use super::*;
    use crate::storage::Location;

    fn progress(source: &str, done: bool, map: Option<&str>) -> PartitionProgress {
        PartitionProgress {
            source_topic: source.into(),
            target_start: 0,
            done,
            written: 3,
            next_offset: 3,
            source_offset: Some(2),
            skipped: 0,
            to_timestamp: None,
            shape: Shape {
                map: map.map(str::to_owned),
                missing_id_policy: MissingIdPolicy::Fail,
                rewrite_key: false,
                rewrite_value: map.is_some(),
            },
            foreign: Vec::new(),
        }
    }

    /// A journal holding `t` partitions `partitions`, rewritten through
    /// the map `{1: 1 + map_to}` when `map_to` is set.
    fn journal(partitions: &[i32], map_to: Option<i32>) -> DataJournal {
        let mut j = DataJournal::new("127.0.0.1:9092");
        let digest = map_to.map(|to| {
            let map: BTreeMap<i32, i32> = [(1, 1 + to)].into();
            let digest = map_digest(&map);
            j.maps.insert(digest.clone(), map);
            digest
        });
        for &p in partitions {
            j.set("t", p, progress("s", p % 2 == 0, digest.as_deref()));
        }
        j
    }

    fn offsets(group_offset: &[(i32, i64)]) -> GroupOffsets {
        [("t".to_owned(), group_offset.iter().copied().collect())].into()
    }

    #[test]
    fn the_union_holds_every_file_and_a_run_writes_back_only_its_own() {
        let mut own = journal(&[1, 4], Some(10));
        own.groups.insert("g".into(), offsets(&[(1, 3), (4, 3)]));
        let mut shard0 = journal(&[0, 3], Some(20));
        shard0.groups.insert("g".into(), offsets(&[(1, 3), (4, 3)]));
        shard0.groups.insert("h".into(), offsets(&[(0, 1)]));
        let intent = |to| -> GroupIntents {
            [(
                "t".to_owned(),
                [(0, IntentOffset { to, from: None })].into(),
            )]
            .into()
        };
        shard0.group_intents.insert("i".into(), intent(4));
        let unsharded = journal(&[2], None);
        let union = DataJournal::union(
            Some(own.clone()),
            "own.json",
            vec![("s0.json".into(), shard0), ("u.json".into(), unsharded)],
        )
        .unwrap()
        .unwrap();
        let held: Vec<i32> = union.partitions["t"].keys().copied().collect();
        assert_eq!(held, [0, 1, 2, 3, 4]);
        assert_eq!(union.maps.len(), 2);
        assert_eq!(union.held_elsewhere("t", 0), Some("s0.json"));
        assert_eq!(union.held_elsewhere("t", 2), Some("u.json"));
        assert_eq!(union.held_elsewhere("t", 1), None);
        assert_eq!(union.groups.len(), 2);
        assert_eq!(union.group_intents.get("i"), Some(&intent(4)));

        // written back: its own partitions and map; `g`, which shard 0
        // journals the same, and `h`, shard 0's alone, are not copied
        let mut written = union.own();
        written.groups.clear();
        own.groups.clear();
        assert_eq!(written, own);
        assert!(union.own().groups.is_empty());
        assert!(union.own().group_intents.is_empty());

        // a group this run sets is its own; a partition it begins too
        let mut union = union;
        union.groups.insert("h".into(), offsets(&[(0, 1), (5, 2)]));
        union.set("t", 5, progress("s", false, None));
        union.group_intents.insert("j".into(), intent(5));
        let written = union.own();
        assert_eq!(written.groups.keys().collect::<Vec<_>>(), ["h"]);
        assert_eq!(written.group_intents.keys().collect::<Vec<_>>(), ["j"]);
        assert_eq!(
            written.partitions["t"].keys().copied().collect::<Vec<_>>(),
            [1, 4, 5]
        );

        // no file at all: no journal; another file alone: its entries
        assert_eq!(DataJournal::union(None, "own.json", vec![]).unwrap(), None);
        let only = DataJournal::union(
            None,
            "own.json",
            vec![("u.json".into(), journal(&[2], None))],
        )
        .unwrap()
        .unwrap();
        assert_eq!(only.held_elsewhere("t", 2), Some("u.json"));
        assert!(only.own().partitions.is_empty());
    }

    #[test]
    fn a_partition_or_a_group_offset_two_files_disagree_on_is_an_error_naming_both() {
        let err = DataJournal::union(
            Some(journal(&[1], None)),
            "b1/restore/c.shard-1-of-3.json",
            vec![
                ("b1/restore/c.json".into(), journal(&[0, 2], None)),
                ("b1/restore/c.shard-2-of-3.json".into(), journal(&[2], None)),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string().lines().next().unwrap(),
            "`t` partition 2 is in two restore journals, `b1/restore/c.json` and `b1/restore/c.shard-2-of-3.json`: two runs recorded restoring it"
        );
        assert!(err.to_string().contains("\nhint: "), "{err}");
        // this run's own file against another
        let err = DataJournal::union(
            Some(journal(&[1], None)),
            "own.json",
            vec![("other.json".into(), journal(&[1], None))],
        )
        .unwrap_err();
        assert!(
            matches!(&err, DataJournalError::Overlap { first, second, partition: 1, .. } if first == "own.json" && second == "other.json"),
            "{err}"
        );

        let mut a = journal(&[0], None);
        a.groups.insert("g".into(), offsets(&[(0, 3), (1, 5)]));
        let mut b = journal(&[1], None);
        b.groups.insert("g".into(), offsets(&[(0, 3), (1, 6)]));
        let err =
            DataJournal::union(Some(a.clone()), "a.json", vec![("b.json".into(), b)]).unwrap_err();
        assert_eq!(
            err.to_string().lines().next().unwrap(),
            "consumer group `g`: `a.json` journals offset 5 for `t` partition 1, `b.json` journals 6"
        );
        // the same offsets in two files (two shards finishing at once), or
        // offsets of other partitions, join
        let mut c = journal(&[1], None);
        c.groups.insert("g".into(), offsets(&[(1, 5), (2, 9)]));
        let union = DataJournal::union(Some(a), "a.json", vec![("c.json".into(), c)])
            .unwrap()
            .unwrap();
        assert_eq!(union.groups["g"], offsets(&[(0, 3), (1, 5), (2, 9)]));
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Location::parse(dir.path().to_str().unwrap())
            .unwrap()
            .open()
            .unwrap();
        (dir, store)
    }

    fn shard(index: u32, count: u32) -> Option<Shard> {
        Some(Shard { index, count })
    }

    #[tokio::test]
    async fn shards_write_their_own_files_and_every_reader_sees_them_all() {
        let (dir, store) = store();
        let at = |s| DataJournalStore::new(store.clone(), "b1", "cluster-x").for_shard(s);
        // nothing restored yet (no folder either)
        assert_eq!(at(None).load().await.unwrap(), None);

        // shard 0 and shard 1 of 2 save at once, each from what it loaded
        let mut first = at(shard(0, 2))
            .load()
            .await
            .unwrap()
            .unwrap_or_else(|| DataJournal::new("s"));
        let mut second = at(shard(1, 2))
            .load()
            .await
            .unwrap()
            .unwrap_or_else(|| DataJournal::new("s"));
        first.set("t", 0, progress("s", true, None));
        second.set("t", 1, progress("s", false, None));
        at(shard(0, 2)).save(&first).await.unwrap();
        at(shard(1, 2)).save(&second).await.unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("b1/restore"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let base = file_name("cluster-x");
        assert_eq!(
            names,
            [
                format!("{base}.shard-0-of-2.json"),
                format!("{base}.shard-1-of-2.json")
            ]
        );
        // a reader without `--shard` sees both; so does each shard, and
        // saving again writes only its own
        let union = at(None).load().await.unwrap().unwrap();
        assert_eq!(union.partitions["t"].len(), 2);
        let mut again = at(shard(1, 2)).load().await.unwrap().unwrap();
        assert_eq!(
            again.held_elsewhere("t", 0),
            Some(at(shard(0, 2)).display().as_str())
        );
        again.set("t", 1, progress("s", true, None));
        at(shard(1, 2)).save(&again).await.unwrap();
        let own: DataJournal = serde_json::from_slice(
            &std::fs::read(
                dir.path()
                    .join(format!("b1/restore/{base}.shard-1-of-2.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(own.partitions["t"].keys().copied().collect::<Vec<_>>(), [1]);
        assert!(
            at(None).load().await.unwrap().unwrap().partitions["t"]
                .values()
                .all(|p| p.done)
        );

        // another cluster's files and files of other kinds are no part of it
        let other = DataJournalStore::new(store.clone(), "b1", "cluster-y");
        assert_eq!(other.load().await.unwrap(), None);
        let maps = OffsetMapStore::new(store.clone(), "b1", "cluster-x").for_shard(shard(0, 2));
        assert!(maps.load(Some(&union)).await.unwrap().partitions.is_empty());

        // a shard of another count writing a partition the others hold:
        // every reader refuses, naming both files
        let mut stray = DataJournal::new("s");
        stray.set("t", 1, progress("s", true, None));
        at(shard(2, 3)).save(&stray).await.unwrap();
        let err = at(None).load().await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("{base}.shard-1-of-2.json`"))
                && err.contains(&format!("{base}.shard-2-of-3.json`")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn offset_maps_join_the_same_way_keeping_what_the_journal_records() {
        let (_dir, store) = store();
        let at = |s| OffsetMapStore::new(store.clone(), "b1", "cluster-x").for_shard(s);
        let entry = |start| PartitionOffsets {
            source_topic: "s".into(),
            source_start: 0,
            source_end: 3,
            target_start: start,
            target_end: start + 3,
            runs: vec![],
            left_out: vec![],
            foreign: vec![],
            to_timestamp: None,
        };
        // the journal: partitions 0 and 1 of `t` restored from target offset 0
        let mut journal = DataJournal::new("s");
        for p in [0, 1] {
            journal.set(
                "t",
                p,
                PartitionProgress {
                    target_start: 0,
                    ..progress("s", true, None)
                },
            );
        }
        let j = Some(&journal);
        let mut a = at(shard(0, 2)).load(j).await.unwrap();
        a.set("t", 0, entry(0));
        at(shard(0, 2)).save(&a).await.unwrap();
        let mut b = at(shard(1, 2)).load(j).await.unwrap();
        assert_eq!(b.others.len(), 1);
        b.set("t", 1, entry(0));
        at(shard(1, 2)).save(&b).await.unwrap();
        let all: OffsetMap = at(None).load(j).await.unwrap();
        assert_eq!(all.get("t", 0), Some(&entry(0)));
        assert_eq!(all.get("t", 1), Some(&entry(0)));
        assert!(all.own().partitions.is_empty());
        // without a journal nothing is restored
        assert!(at(None).load(None).await.unwrap().partitions.is_empty());

        // partition 1 restored again from offset 7 (its journal deleted
        // meanwhile) by an apply without --shard: shard 1's entry is stale
        let mut again = journal.clone();
        again.set(
            "t",
            1,
            PartitionProgress {
                target_start: 7,
                next_offset: 10,
                ..progress("s", true, None)
            },
        );
        let mut unsharded = at(None).load(Some(&again)).await.unwrap();
        assert_eq!(unsharded.get("t", 1), None);
        unsharded.set("t", 1, entry(7));
        at(None).save(&unsharded).await.unwrap();
        assert_eq!(
            at(None).load(Some(&again)).await.unwrap().get("t", 1),
            Some(&entry(7))
        );

        // two files with an entry the journal records: an error naming both
        let mut stray = OffsetMap::new();
        stray.set("t", 0, entry(0));
        at(shard(2, 3)).save(&stray).await.unwrap();
        let err = at(None).load(j).await.unwrap_err();
        assert!(
            matches!(&err, DataJournalError::Overlap { what: "offset maps", partition: 0, first, second, .. }
                if first.ends_with(".shard-0-of-2.offsets.json") && second.ends_with(".shard-2-of-3.offsets.json")),
            "{err}"
        );
    }

    #[test]
    fn the_writer_of_a_file_is_named_for_hints() {
        assert_eq!(
            writer_hint("s3://b/p/b1/restore/cluster-x-0123.shard-2-of-5.json"),
            "with `--shard 2/5`"
        );
        assert_eq!(
            writer_hint("/data/b1/restore/cluster-x-0123.json"),
            "without `--shard`"
        );
    }
}
