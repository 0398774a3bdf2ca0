//! Consumer group offsets in the target: what the planner needs of the
//! backup, the offset map and the target cluster ([`inputs`]), the
//! prediction of where a committed offset lands before the data is restored
//! ([`predict`]), and setting them after the data ([`set`]), journalled so
//! that a rerun never moves a group back that its consumers moved on.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, GroupSelection};
use crate::kafka::groups::{self as kgroups, Committed, GroupOffsets};
use crate::kafka::{self, Cluster};
use crate::manifest::{BackupReader, Manifest};
use crate::plan::groups::{Basis, GroupPlan, Inputs, Wanted};
use crate::segment::SegmentReader;

use super::journal::DataJournal;
use super::offsets::{How, OffsetMap, Translation};
use super::transform::Verdict;
use super::{DataJournalStore, RestoreError, TopicJob};

/// `target.consumer_groups` of the configuration.
pub fn selection(cfg: &Config) -> GroupSelection {
    cfg.target
        .as_ref()
        .map(|t| t.consumer_groups.clone())
        .unwrap_or_default()
}

/// Every selected backed-up group's offset on a partition `jobs` restore.
pub fn wanted(selection: &GroupSelection, manifest: &Manifest, jobs: &[TopicJob]) -> Vec<Wanted> {
    let mut out = Vec::new();
    for (group, backup) in &manifest.consumer_groups {
        if !selection.is_selected(group) {
            continue;
        }
        for job in jobs {
            let Some(partitions) = backup.offsets.get(&job.source) else {
                continue;
            };
            for (&partition, committed) in partitions {
                if !job.manifest.partitions.contains_key(&partition) {
                    continue;
                }
                out.push(Wanted {
                    group: group.clone(),
                    topic: job.source.clone(),
                    target_topic: job.target.clone(),
                    partition,
                    committed: committed.offset,
                    metadata: committed.metadata.clone(),
                });
            }
        }
    }
    out
}

/// How the target offsets are found.
pub enum Source<'a> {
    /// From the offset map alone: every partition is restored (`apply`
    /// after the data, `verify`).
    Restored,
    /// From the offset map where a partition is restored, predicted from
    /// the backup otherwise (`plan`).
    Predicted { reader: &'a BackupReader },
}

/// What the planner needs: the wanted offsets, where each lands, and the
/// target's groups.
pub async fn inputs(
    cluster: &Cluster,
    jobs: &[TopicJob],
    wanted: Vec<Wanted>,
    journal: Option<&DataJournal>,
    map: &OffsetMap,
    source: Source<'_>,
) -> Result<Inputs, RestoreError> {
    let mut inputs = Inputs::default();
    let consumer = cluster.metadata_consumer()?;
    // the target's topics, for where a restore not begun yet starts
    let layout = match source {
        Source::Predicted { .. } => Some(kafka::layout(&consumer, cluster)?),
        Source::Restored => None,
    };
    let keys: BTreeSet<(String, i32, i64)> = wanted
        .iter()
        .map(|w| (w.target_topic.clone(), w.partition, w.committed))
        .collect();
    for (topic, partition, committed) in keys {
        // a map entry counts only for the restore the journal records as
        // done (one left from before the journal was deleted does not)
        let restored = map.get(&topic, partition).filter(|m| {
            journal
                .and_then(|j| j.get(&topic, partition))
                .is_some_and(|e| e.done && e.target_start == m.target_start)
        });
        let landed = match (restored, &source) {
            (Some(restored), _) => (restored.translate(committed), Basis::Restored),
            (None, Source::Predicted { reader }) => {
                let job = jobs
                    .iter()
                    .find(|j| j.target == topic)
                    .expect("every wanted offset is on a job's topic");
                let exists = layout
                    .as_ref()
                    .and_then(|l| l.topics.get(&topic))
                    .is_some_and(|&count| (partition as usize) < count);
                let start = match journal.and_then(|j| j.get(&topic, partition)) {
                    Some(progress) => progress.target_start,
                    // the restore creates it: it starts at 0
                    None if !exists => 0,
                    None => kafka::watermarks(&consumer, &topic, partition)?.1,
                };
                let t = predict(reader, job, partition, committed, start).await?;
                (t, Basis::Predicted)
            }
            (None, Source::Restored) => {
                return Err(RestoreError::NoOffsetMap { topic, partition });
            }
        };
        inputs
            .translated
            .insert((topic, partition, committed), landed);
    }
    let groups: BTreeSet<&str> = wanted.iter().map(|w| w.group.as_str()).collect();
    for group in groups {
        let partitions: Vec<(String, i32)> = wanted
            .iter()
            .filter(|w| w.group == group)
            .map(|w| (w.target_topic.clone(), w.partition))
            .collect();
        inputs
            .target_state
            .insert(group.to_owned(), kgroups::state(&consumer, cluster, group)?);
        inputs.current.insert(
            group.to_owned(),
            kgroups::committed(cluster, group, &partitions)?,
        );
    }
    inputs.wanted = wanted;
    Ok(inputs)
}

/// Where a group that committed `committed` on the backed-up partition goes
/// on in the target, before the partition is restored: at `start` (the
/// target partition's end now, where the restore begins) plus the records
/// the restore writes before the first one at or after `committed`. Only the
/// segments that decide it are read: one whose records all come before
/// `committed` and none of which can be left out is counted from the
/// manifest.
pub async fn predict(
    reader: &BackupReader,
    job: &TopicJob,
    partition: i32,
    committed: i64,
    start: i64,
) -> Result<Translation, RestoreError> {
    let Some(manifest) = job.manifest.partitions.get(&partition) else {
        return Ok(Translation {
            target: start,
            how: How::End,
        });
    };
    let t = &job.transform;
    let may_skip_ids = t.policy == crate::config::MissingIdPolicy::Skip && t.map.is_some();
    let mut before = 0u64;
    let mut cut = false;
    for segment in &manifest.segments {
        let meta = &segment.meta;
        let all_kept = !may_skip_ids
            && match (t.to_timestamp, meta.max_timestamp) {
                (None, _) | (Some(_), None) => true,
                (Some(limit), Some(max)) => max <= limit,
            };
        if meta.last_offset < committed && all_kept {
            before += meta.record_count;
            continue;
        }
        let data = reader.read(&segment.path).await?;
        let segment_err = |source| RestoreError::Segment {
            path: segment.path.clone(),
            topic: job.source.clone(),
            partition,
            source,
        };
        let mut records = SegmentReader::new(&data[..]).map_err(segment_err)?;
        while let Some(mut record) = records.next_record().map_err(segment_err)? {
            let verdict = t.apply(&mut record);
            let written = !matches!(verdict, Verdict::SkipLater | Verdict::SkipMissing { .. });
            if record.offset < committed {
                before += u64::from(written);
            } else if written {
                let how = if committed < manifest.low_watermark && before == 0 {
                    How::BeforeStart
                } else {
                    How::Mapped
                };
                return Ok(Translation {
                    target: start + before as i64,
                    how,
                });
            } else if verdict == Verdict::SkipLater {
                cut = true;
            }
        }
    }
    Ok(Translation {
        target: start + before as i64,
        how: if cut { How::Cut } else { How::End },
    })
}

/// The group offsets `planned` (the plan's) and `found` (worked out from
/// the offset map after the data) disagree on, one line each.
pub fn disagreements(planned: &[GroupPlan], found: &[GroupPlan]) -> Vec<String> {
    let index = |groups: &[GroupPlan]| -> BTreeMap<(String, String, i32), i64> {
        groups
            .iter()
            .flat_map(|g| {
                g.partitions.iter().map(|p| {
                    (
                        (g.group.clone(), p.target_topic.clone(), p.partition),
                        p.target_offset,
                    )
                })
            })
            .collect()
    };
    let (planned, found) = (index(planned), index(found));
    let keys: BTreeSet<&(String, String, i32)> = planned.keys().chain(found.keys()).collect();
    keys.into_iter()
        .filter_map(|key @ (group, topic, partition)| {
            let show = |o: Option<&i64>| o.map_or("none".to_owned(), |o| o.to_string());
            let (p, f) = (planned.get(key), found.get(key));
            (p != f).then(|| {
                format!(
                    "group `{group}` {topic}[{partition}]: the plan says offset {}, the restored records put it at {}",
                    show(p),
                    show(f)
                )
            })
        })
        .collect()
}

/// Sets each group's offsets in the target, one commit per group, after
/// the data: a group set by an earlier run with the same offsets is left
/// alone (its consumers may have moved on since), one whose offsets are
/// there already is only journalled, a live one stops the apply, and so
/// does one that committed other offsets since `planned` was made (a group
/// is never moved from offsets nobody reviewed: a kill between a commit and
/// its journal entry, then consumers reading on, would look like that).
/// Each group is journalled once committed. `log` gets a line per group.
pub async fn set(
    cluster: &Cluster,
    groups: &[GroupPlan],
    planned: Option<&[GroupPlan]>,
    journals: &DataJournalStore,
    log: &(dyn Fn(String) + Sync),
) -> Result<GroupsOutcome, RestoreError> {
    let mut outcome = GroupsOutcome::default();
    if groups.is_empty() {
        return Ok(outcome);
    }
    let mut journal = journals
        .load()
        .await?
        .unwrap_or_else(|| DataJournal::new(&cluster.servers));
    let consumer = cluster.metadata_consumer()?;
    for g in groups {
        let offsets = target_offsets(g);
        if journal.groups.get(&g.group) == Some(&plain(&offsets)) {
            log(format!(
                "group `{}`: its offsets were set by an earlier run; left as they are now",
                g.group
            ));
            outcome.before += 1;
            continue;
        }
        let partitions: Vec<(String, i32)> = g
            .partitions
            .iter()
            .map(|p| (p.target_topic.clone(), p.partition))
            .collect();
        let current = kgroups::committed(cluster, &g.group, &partitions)?;
        if plain(&current) != plain(&offsets) {
            let state = kgroups::state(&consumer, cluster, &g.group)?;
            if state.is_live() {
                return Err(RestoreError::GroupLive {
                    group: g.group.clone(),
                    state: state.state,
                    members: state.members,
                });
            }
            if let Some(moved) = moved_since(planned, g, &current) {
                return Err(RestoreError::GroupMoved {
                    group: g.group.clone(),
                    moved,
                });
            }
            pause_for_tests();
            kgroups::commit(cluster, &g.group, &offsets)?;
            let now = kgroups::committed(cluster, &g.group, &partitions)?;
            if plain(&now) != plain(&offsets) {
                return Err(RestoreError::GroupNotSet {
                    group: g.group.clone(),
                    wanted: show_offsets(&offsets),
                    found: show_offsets(&now),
                });
            }
            outcome.set += 1;
            log(format!(
                "group `{}`: offsets set ({})",
                g.group,
                show_offsets(&offsets)
            ));
        } else {
            outcome.unchanged += 1;
            log(format!(
                "group `{}`: its offsets were there already ({})",
                g.group,
                show_offsets(&offsets)
            ));
        }
        journal.groups.insert(g.group.clone(), plain(&offsets));
        journals.save(&journal).await?;
    }
    Ok(outcome)
}

/// The partitions of `g` whose committed offset in the target is not what
/// the plan saw when it was made, one `topic[partition]: was -> now` each;
/// `None` when they all are (or there is no plan to compare with).
fn moved_since(
    planned: Option<&[GroupPlan]>,
    g: &GroupPlan,
    current: &GroupOffsets,
) -> Option<String> {
    let seen = planned?.iter().find(|p| p.group == g.group)?;
    let show = |o: Option<i64>| o.map_or("none".to_owned(), |o| o.to_string());
    let moved: Vec<String> = seen
        .partitions
        .iter()
        .filter_map(|p| {
            let now = current
                .get(&p.target_topic)
                .and_then(|ps| ps.get(&p.partition))
                .map(|c| c.offset);
            (now != p.current).then(|| {
                format!(
                    "{}[{}]: {} when planned, {} now",
                    p.target_topic,
                    p.partition,
                    show(p.current),
                    show(now)
                )
            })
        })
        .collect();
    (!moved.is_empty()).then(|| moved.join(", "))
}

/// What [`set`] did, in groups.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupsOutcome {
    pub set: usize,
    pub unchanged: usize,
    pub before: usize,
}

/// A group's planned offsets, by target topic, with their metadata.
pub fn target_offsets(g: &GroupPlan) -> GroupOffsets {
    let mut out = GroupOffsets::new();
    for p in &g.partitions {
        out.entry(p.target_topic.clone()).or_default().insert(
            p.partition,
            Committed {
                offset: p.target_offset,
                metadata: p.metadata.clone(),
            },
        );
    }
    out
}

/// Offsets without their metadata, as the journal keeps them.
pub fn plain(offsets: &GroupOffsets) -> BTreeMap<String, BTreeMap<i32, i64>> {
    offsets
        .iter()
        .map(|(t, ps)| (t.clone(), ps.iter().map(|(&p, c)| (p, c.offset)).collect()))
        .collect()
}

fn show_offsets(offsets: &GroupOffsets) -> String {
    let mut parts = Vec::new();
    for (topic, ps) in offsets {
        for (p, c) in ps {
            parts.push(format!("{topic}[{p}]={}", c.offset));
        }
    }
    parts.join(", ")
}

/// For the end-to-end tests only: with `KB_TEST_PAUSE_BEFORE_GROUP_COMMIT`
/// set to a path, the apply creates that file and waits 30 s before
/// committing a group's offsets, so that a test can kill it there.
fn pause_for_tests() {
    if let Some(path) = std::env::var_os("KB_TEST_PAUSE_BEFORE_GROUP_COMMIT") {
        let _ = std::fs::write(&path, b"paused\n");
        std::thread::sleep(std::time::Duration::from_secs(30));
    }
}
