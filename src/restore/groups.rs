//! Consumer group offsets in the target: what the planner needs of the
//! backup, the offset map and the target cluster ([`inputs`]), the
//! prediction of where a committed offset lands before the data is restored
//! ([`predict`]), and setting them after the data ([`set`]), journalled so
//! that a rerun never moves a group back that its consumers moved on.

use std::collections::{BTreeMap, BTreeSet};

use super::journal::IntentOffset;
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
    // per partition, every committed offset wanted on it, in order
    let mut keys: BTreeMap<(String, i32), BTreeSet<i64>> = BTreeMap::new();
    for w in &wanted {
        keys.entry((w.target_topic.clone(), w.partition))
            .or_default()
            .insert(w.committed);
    }
    for ((topic, partition), committed) in keys {
        let committed: Vec<i64> = committed.into_iter().collect();
        // a map entry counts only for the restore the journal records as
        // done (one left from before the journal was deleted does not)
        let restored = map.get(&topic, partition).filter(|m| {
            journal
                .and_then(|j| j.get(&topic, partition))
                .is_some_and(|e| e.done && e.target_start == m.target_start)
        });
        let landed: Vec<(Translation, Basis)> = match (restored, &source) {
            (Some(restored), _) => committed
                .iter()
                .map(|&c| (restored.translate(c), Basis::Restored))
                .collect(),
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
                predict(reader, job, partition, &committed, start)
                    .await?
                    .into_iter()
                    .map(|t| (t, Basis::Predicted))
                    .collect()
            }
            (None, Source::Restored) => {
                return Err(RestoreError::NoOffsetMap { topic, partition });
            }
        };
        for (c, l) in committed.into_iter().zip(landed) {
            inputs.translated.insert((topic.clone(), partition, c), l);
        }
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

/// Where groups that committed `committed` (ascending) on the backed-up
/// partition go on in the target, before the partition is restored: at
/// `start` (the target partition's end now, where the restore begins) plus
/// the records the restore writes before the first one at or after each
/// committed offset. One pass over the partition, and only the segments that
/// decide it are read: one whose records all come before the smallest
/// offset still open and none of which can be left out is counted from the
/// manifest.
pub async fn predict(
    reader: &BackupReader,
    job: &TopicJob,
    partition: i32,
    committed: &[i64],
    start: i64,
) -> Result<Vec<Translation>, RestoreError> {
    let Some(manifest) = job.manifest.partitions.get(&partition) else {
        return Ok(committed
            .iter()
            .map(|_| Translation {
                target: start,
                how: How::End,
            })
            .collect());
    };
    let t = &job.transform;
    let may_skip_ids = t.policy == crate::config::MissingIdPolicy::Skip && t.map.is_some();
    let mut out = Vec::with_capacity(committed.len());
    let mut before = 0u64;
    // the last record `--to-timestamp` left out
    let mut last_cut: Option<i64> = None;
    for segment in &manifest.segments {
        let Some(&open) = committed.get(out.len()) else {
            break;
        };
        let meta = &segment.meta;
        let all_kept = !may_skip_ids
            && match (t.to_timestamp, meta.max_timestamp) {
                (None, _) | (Some(_), None) => true,
                (Some(limit), Some(max)) => max <= limit,
            };
        if meta.last_offset < open && all_kept {
            before += meta.record_count;
            continue;
        }
        let data = reader.read_stored(&segment.path).await?;
        let segment_err = |source| RestoreError::Segment {
            path: segment.path.clone(),
            topic: job.source.clone(),
            partition,
            source,
        };
        let mut records = SegmentReader::new(data.reader()?).map_err(segment_err)?;
        while let Some(mut record) = records.next_record().map_err(segment_err)? {
            match t.apply(&mut record) {
                Verdict::SkipLater => last_cut = Some(record.offset),
                Verdict::SkipMissing { .. } => {}
                Verdict::Write { .. } | Verdict::Missing { .. } => {
                    // the first restored record at or after each open offset
                    while let Some(&c) = committed.get(out.len()).filter(|&&c| c <= record.offset) {
                        let how = if c < manifest.low_watermark && before == 0 {
                            How::BeforeStart
                        } else {
                            How::Mapped
                        };
                        out.push(Translation {
                            target: start + before as i64,
                            how,
                        });
                    }
                    before += 1;
                }
            }
        }
    }
    // no restored record at or after them: the end of the restored records
    while let Some(&c) = committed.get(out.len()) {
        let cut = last_cut.is_some_and(|l| l >= c);
        out.push(Translation {
            target: start + before as i64,
            how: if cut { How::Cut } else { How::End },
        });
    }
    Ok(out)
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

/// What becomes of one partition of a group when its offsets are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The journal says an earlier run set it: left alone, whatever the
    /// group committed since (its consumers may have read on); `missing`
    /// when no offset is committed there any more (expired).
    SetBefore { missing: bool },
    /// The planned offset is there already: only journalled.
    Already,
    /// An interrupted run was about to commit it (its intent is journalled)
    /// and the group has committed something else since: its consumers read
    /// on from the committed offset. Left alone, journalled.
    ConsumedSince { now: i64 },
    /// Committed now; `from` is what the group had there.
    Commit { from: Option<i64> },
    /// The group committed other offsets since the plan was made, with no
    /// intent of an earlier run to explain it: nobody reviewed moving it.
    Moved {
        planned: Option<i64>,
        now: Option<i64>,
    },
}

/// One partition's facts: the planned offset, what the journal says was set
/// and was about to be set (`intent`: to, from), what is committed now, and
/// what the plan saw there when it was made (`None` without a plan file).
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub want: i64,
    pub set_before: Option<i64>,
    pub intent: Option<(i64, Option<i64>)>,
    pub now: Option<i64>,
    pub planned_now: Option<Option<i64>>,
}

/// Decides one partition (pure).
pub fn decide(f: Facts) -> Decision {
    if f.set_before == Some(f.want) {
        return Decision::SetBefore {
            missing: f.now.is_none(),
        };
    }
    if f.now == Some(f.want) {
        return Decision::Already;
    }
    if let Some((to, from)) = f.intent
        && to == f.want
    {
        return match f.now {
            // the earlier run's commit did not land
            now if now == from => Decision::Commit { from },
            Some(now) => Decision::ConsumedSince { now },
            None => Decision::Commit { from },
        };
    }
    match f.planned_now {
        Some(planned) if planned != f.now => Decision::Moved {
            planned,
            now: f.now,
        },
        _ => Decision::Commit { from: f.now },
    }
}

/// Sets each group's offsets in the target after the data, one commit per
/// group of the partitions [`decide`] says to commit. Before the commit the
/// intent (each partition's offset, and what the group had there) is
/// journalled, after it the offsets themselves: a rerun after a kill at any
/// point commits what did not land, and never moves a partition the group's
/// consumers moved on from. A live group, or one that committed other
/// offsets since `planned` was made (the plan file's view), stops the apply
/// before anything of that group is committed. `log` gets a line per group.
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
        let partitions: Vec<(String, i32)> = g
            .partitions
            .iter()
            .map(|p| (p.target_topic.clone(), p.partition))
            .collect();
        let current = kgroups::committed(cluster, &g.group, &partitions)?;
        let seen = planned.map(|ps| ps.iter().find(|p| p.group == g.group));
        let mut commit = GroupOffsets::new();
        let mut intent = BTreeMap::<String, BTreeMap<i32, IntentOffset>>::new();
        let mut notes = Vec::new();
        let mut moved = Vec::new();
        let show = |o: Option<i64>| o.map_or("none".to_owned(), |o| o.to_string());
        for p in &g.partitions {
            let (topic, partition) = (&p.target_topic, p.partition);
            let at =
                |m: &BTreeMap<String, BTreeMap<i32, i64>>| m.get(topic)?.get(&partition).copied();
            let facts = Facts {
                want: p.target_offset,
                set_before: journal.groups.get(&g.group).and_then(at),
                intent: journal
                    .group_intents
                    .get(&g.group)
                    .and_then(|i| i.get(topic)?.get(&partition))
                    .map(|i| (i.to, i.from)),
                now: current
                    .get(topic)
                    .and_then(|ps| ps.get(&partition))
                    .map(|c| c.offset),
                planned_now: seen.map(|s| {
                    s.and_then(|s| {
                        s.partitions
                            .iter()
                            .find(|q| &q.target_topic == topic && q.partition == partition)
                    })
                    .and_then(|q| q.current)
                }),
            };
            match decide(facts) {
                Decision::SetBefore { missing } => {
                    if missing {
                        notes.push(format!(
                            "{topic}[{partition}]: set by an earlier run, no longer committed (expired after the broker's offsets.retention.minutes?)"
                        ));
                    }
                }
                Decision::Already => {}
                Decision::ConsumedSince { now } => notes.push(format!(
                    "{topic}[{partition}]: at {now}, read on from {} since an interrupted run set it; left there",
                    p.target_offset
                )),
                Decision::Commit { from } => {
                    commit.entry(topic.clone()).or_default().insert(
                        partition,
                        Committed {
                            offset: p.target_offset,
                            metadata: p.metadata.clone(),
                        },
                    );
                    intent.entry(topic.clone()).or_default().insert(
                        partition,
                        IntentOffset {
                            to: p.target_offset,
                            from,
                        },
                    );
                }
                Decision::Moved { planned, now } => moved.push(format!(
                    "{topic}[{partition}]: {} when planned, {} now",
                    show(planned),
                    show(now)
                )),
            }
        }
        if !moved.is_empty() {
            return Err(RestoreError::GroupMoved {
                group: g.group.clone(),
                moved: moved.join(", "),
            });
        }
        if commit.is_empty() {
            outcome.unchanged += 1;
        } else {
            let state = kgroups::state(&consumer, cluster, &g.group)?;
            if state.is_live() {
                return Err(RestoreError::GroupLive {
                    group: g.group.clone(),
                    state: state.state,
                    members: state.members,
                });
            }
            journal.group_intents.insert(g.group.clone(), intent);
            journals.save(&journal).await?;
            pause_for_tests("KB_TEST_PAUSE_BEFORE_GROUP_COMMIT");
            match kgroups::commit(cluster, &g.group, &commit) {
                Err(kgroups::CommitError::Live(reason)) => {
                    return Err(RestoreError::GroupLive {
                        group: g.group.clone(),
                        state: reason,
                        members: 0,
                    });
                }
                Err(kgroups::CommitError::Other(e)) => return Err(e.into()),
                Ok(()) => {}
            }
            pause_for_tests("KB_TEST_PAUSE_AFTER_GROUP_COMMIT");
            let now = kgroups::committed(cluster, &g.group, &partitions)?;
            let landed = commit.iter().all(|(t, ps)| {
                ps.iter().all(|(p, c)| {
                    now.get(t).and_then(|n| n.get(p)).map(|n| n.offset) == Some(c.offset)
                })
            });
            if !landed {
                return Err(RestoreError::GroupNotSet {
                    group: g.group.clone(),
                    wanted: show_offsets(&commit),
                    found: show_offsets(&now),
                });
            }
            outcome.set += 1;
            log(format!(
                "group `{}`: offsets set ({})",
                g.group,
                show_offsets(&commit)
            ));
        }
        for n in &notes {
            log(format!("group `{}`: {n}", g.group));
        }
        journal
            .groups
            .insert(g.group.clone(), plain(&target_offsets(g)));
        journal.group_intents.remove(&g.group);
        journals.save(&journal).await?;
    }
    Ok(outcome)
}

/// What [`set`] did, in groups: committed now, or nothing to commit
/// (already there, set by an earlier run, or read on since).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupsOutcome {
    pub set: usize,
    pub unchanged: usize,
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

/// For the end-to-end tests only (debug builds; a release build has no such
/// hook): with the variable `name` set to a path, the apply creates that file
/// and waits 30 s, so that a test can kill it right there.
fn pause_for_tests(name: &str) {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os(name) {
        let _ = std::fs::write(&path, b"paused\n");
        std::thread::sleep(std::time::Duration::from_secs(30));
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(want: i64, now: Option<i64>) -> Facts {
        Facts {
            want,
            set_before: None,
            intent: None,
            now,
            planned_now: None,
        }
    }

    #[test]
    fn a_partition_is_committed_only_when_nothing_says_its_consumers_moved_it() {
        // first run: committed whatever the group had
        assert_eq!(decide(facts(40, None)), Decision::Commit { from: None });
        assert_eq!(
            decide(facts(40, Some(7))),
            Decision::Commit { from: Some(7) }
        );
        assert_eq!(decide(facts(40, Some(40))), Decision::Already);
        // set by an earlier run: left alone, wherever it is now
        let before = |now| Facts {
            set_before: Some(40),
            ..facts(40, now)
        };
        assert_eq!(
            decide(before(Some(55))),
            Decision::SetBefore { missing: false }
        );
        assert_eq!(
            decide(before(Some(3))),
            Decision::SetBefore { missing: false }
        );
        assert_eq!(decide(before(None)), Decision::SetBefore { missing: true });
        // journalled under other offsets (another plan): decided afresh
        let other = Facts {
            set_before: Some(12),
            ..facts(40, Some(12))
        };
        assert_eq!(decide(other), Decision::Commit { from: Some(12) });
        // killed after the intent: the commit landed or not, or the group read on
        let intent = |now| Facts {
            intent: Some((40, Some(7))),
            ..facts(40, now)
        };
        assert_eq!(decide(intent(Some(7))), Decision::Commit { from: Some(7) });
        assert_eq!(decide(intent(Some(40))), Decision::Already);
        assert_eq!(
            decide(intent(Some(52))),
            Decision::ConsumedSince { now: 52 }
        );
        // with a plan file: moved since the plan, with no intent to explain it
        let planned = |planned_now, now| Facts {
            planned_now: Some(planned_now),
            ..facts(40, now)
        };
        assert_eq!(
            decide(planned(None, Some(52))),
            Decision::Moved {
                planned: None,
                now: Some(52)
            }
        );
        assert_eq!(
            decide(planned(Some(7), Some(7))),
            Decision::Commit { from: Some(7) }
        );
        // an intent explains the move (killed after the commit, read on since)
        let both = Facts {
            intent: Some((40, None)),
            planned_now: Some(None),
            ..facts(40, Some(52))
        };
        assert_eq!(decide(both), Decision::ConsumedSince { now: 52 });
    }

    #[test]
    fn plan_and_restored_offsets_that_differ_are_named() {
        use crate::plan::groups::GroupPartition;
        let g = |offset| GroupPlan {
            group: "g".into(),
            target_state: "Dead".into(),
            target_members: 0,
            partitions: vec![GroupPartition {
                topic: "t".into(),
                target_topic: "t-r".into(),
                partition: 0,
                committed: 40,
                metadata: String::new(),
                target_offset: offset,
                how: How::Mapped,
                basis: Basis::Predicted,
                current: None,
                change: true,
            }],
        };
        assert!(disagreements(&[g(30)], &[g(30)]).is_empty());
        assert_eq!(
            disagreements(&[g(30)], &[g(33)]),
            vec!["group `g` t-r[0]: the plan says offset 30, the restored records put it at 33"]
        );
        assert_eq!(
            disagreements(&[], &[g(33)]),
            vec!["group `g` t-r[0]: the plan says offset none, the restored records put it at 33"]
        );
    }
}

#[cfg(test)]
mod prediction {
    //! `plan` predicts where a committed offset lands before the data is
    //! restored; `apply` refuses the groups when the restored records say
    //! otherwise. So the prediction must be what the restore's offset map
    //! ([`super::super::offsets::Builder`], fed the same verdicts in the same
    //! order) makes of it, over backups with gaps, several segments, records
    //! `--to-timestamp` cuts (timestamps out of order too) and records
    //! `skip` leaves out.
    use std::collections::{BTreeMap, HashMap};

    use object_store::ObjectStoreExt;

    use super::*;
    use crate::config::MissingIdPolicy;
    use crate::manifest::{FileEntry, PartitionManifest, SegmentEntry, TopicManifest};
    use crate::restore::offsets::{Builder, Frame};
    use crate::restore::transform::Transform;
    use crate::segment::{RecordRef, SegmentWriter, TimestampType};

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[tokio::test]
    async fn the_prediction_is_what_the_restore_makes_of_the_same_records() {
        let store = crate::storage::Location::parse("memory:///p")
            .unwrap()
            .open()
            .unwrap();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for case in 0..60 {
            let id = format!("b{case}");
            // records: offsets with gaps, timestamps mostly rising, values
            // framed with ID 1 (mapped) or 2 (not), in segments of a few
            let mut offset = rng.below(30) as i64;
            let low = offset;
            let mut segments = Vec::new();
            let mut files = BTreeMap::new();
            let mut all = Vec::new();
            let mut writer = SegmentWriter::new();
            let mut raws = Vec::new();
            for i in 0..(5 + rng.below(60)) {
                let ts = 1000 + i as i64 * 10 + rng.below(25) as i64;
                let framed_id: u8 = if rng.below(5) == 0 { 2 } else { 1 };
                let value = [0, 0, 0, 0, framed_id, b'x'];
                writer
                    .push(&RecordRef {
                        offset,
                        timestamp: Some(ts),
                        timestamp_type: TimestampType::CreateTime,
                        key: None,
                        value: Some(&value),
                        headers: &[],
                    })
                    .unwrap();
                all.push(offset);
                offset += 1 + if rng.below(3) == 0 {
                    rng.below(4) as i64
                } else {
                    0
                };
                if rng.below(8) == 0 {
                    raws.push(std::mem::take(&mut writer).finish());
                }
            }
            if !writer.is_empty() {
                raws.push(writer.finish());
            }
            for raw in raws {
                let path = format!(
                    "kafka/t/0/{}-{}.seg.zst",
                    raw.first_offset(),
                    raw.last_offset()
                );
                let seg = raw.compress(1).unwrap();
                files.insert(path.clone(), FileEntry::of(&seg.bytes));
                store
                    .object_store()
                    .put(&store.path(&format!("{id}/{path}")), seg.bytes.into())
                    .await
                    .unwrap();
                segments.push(SegmentEntry {
                    path,
                    meta: seg.meta,
                });
            }
            let partition = PartitionManifest {
                low_watermark: low,
                high_watermark: offset,
                last_stable_offset: None,
                left_out_from: None,
                continues_from: None,
                record_count: all.len() as u64,
                segments,
                schema_ids: Default::default(),
            };
            let topic = TopicManifest {
                partition_count: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
                partitions: BTreeMap::from([(0, partition)]),
            };
            let manifest = serde_json::json!({
                "format_version": 3, "tool_version": "t", "backup_id": id,
                "started_at": "", "finished_at": "", "source": {"bootstrap_servers": ""},
                "topics": {"t": topic}, "files": files,
            });
            store
                .object_store()
                .put(
                    &store.path(&format!("{id}/manifest.json")),
                    serde_json::to_vec(&manifest).unwrap().into(),
                )
                .await
                .unwrap();
            let reader = BackupReader::open(&store, &id).await.unwrap();

            let transform = Transform {
                map: (case % 2 == 0).then(|| HashMap::from([(1, 7)])),
                policy: if case % 3 == 0 {
                    MissingIdPolicy::Skip
                } else {
                    MissingIdPolicy::Passthrough
                },
                to_timestamp: (case % 4 != 0).then(|| 1000 + rng.below(700) as i64),
                rewrite_key: false,
                rewrite_value: true,
            };
            let job = TopicJob {
                source: "t".into(),
                target: "t-r".into(),
                manifest: reader.manifest.topics["t"].clone(),
                transform: transform.clone(),
                fields: None,
            };
            // what the restore makes of the records
            let mut builder = Builder::default();
            let mut position = 0u64;
            for segment in &reader.manifest.topics["t"].partitions[&0].segments {
                let data = reader.read(&segment.path).await.unwrap();
                let mut records = SegmentReader::new(&data[..]).unwrap();
                while let Some(mut r) = records.next_record().unwrap() {
                    let v = transform.apply(&mut r);
                    position += u64::from(v.writes());
                    builder.record(r.offset, v, position);
                }
            }
            let start = rng.below(50) as i64;
            let map = builder.finish(Frame {
                source_topic: "t".into(),
                source_start: low,
                source_end: offset,
                target_start: start,
                foreign: Vec::new(),
                to_timestamp: transform.to_timestamp,
            });
            let committed: Vec<i64> = (0..offset + 2).collect();
            let predicted = predict(&reader, &job, 0, &committed, start).await.unwrap();
            for (c, p) in committed.iter().zip(&predicted) {
                assert_eq!(*p, map.translate(*c), "case {case}, committed {c}: {map:?}");
            }
        }
    }
}
