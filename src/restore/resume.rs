//! Where the restore of one partition goes on, and whether it may, decided
//! from its journal entry and what the target holds now. Pure: no I/O.
//!
//! The journal says how many of the restore's records are confirmed in the
//! target and where its next one lands (`next_offset`). Records past that
//! point were written either by the interrupted run (acknowledged after the
//! journal was last saved) or by another client: the restore reads them
//! back and tells them apart by content ([`super::target`]); this module
//! says which offsets to read, and refuses what no reading can repair.
//!
//! Per partition, before anything is written: [`recorded`] checks its
//! journal entry against this run's settings; a partition without one
//! [`begin`]s at its high watermark, a restored one is checked to be
//! [`still_done`], a partly restored one goes on where [`start`] says once
//! its worker reads the watermarks (it may begin long after the others, and
//! records written meanwhile are read back too). A topic the journal holds
//! entries of and the target lacks was [`deleted`].

use std::collections::BTreeMap;

use super::journal::{DataJournal, PartitionProgress, Shape};
use crate::config::MissingIdPolicy;

/// What the journal holds of a target partition, found to agree with the
/// settings of this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded<'j> {
    /// Nothing: the restore has not written to it ([`begin`]).
    Nothing,
    /// Partly restored: it goes on where [`start`] says.
    Partly(&'j PartitionProgress),
    /// Restored completely, if its records are [`still_done`].
    Done(&'j PartitionProgress),
}

/// What the journal holds of `topic` partition `partition`, refused when it
/// was (partly) restored with settings that would write other records: a
/// partition's records are all written the same way, whether it is done or
/// not (a done one would be reported restored as this run asks, untrue).
pub fn recorded<'j>(
    journal: &'j DataJournal,
    topic: &str,
    partition: i32,
    now: &Settings<'_>,
) -> Result<Recorded<'j>, Refusal> {
    let Some(progress) = journal.get(topic, partition) else {
        return Ok(Recorded::Nothing);
    };
    let done = progress.done;
    if progress.to_timestamp != now.to_timestamp {
        return Err(Refusal::ToTimestampChanged {
            done,
            was: progress.to_timestamp,
            now: now.to_timestamp,
        });
    }
    if let Some(what) = shape_change(journal, progress, now) {
        return Err(Refusal::ShapeChanged { done, what });
    }
    Ok(if done {
        Recorded::Done(progress)
    } else {
        Recorded::Partly(progress)
    })
}

/// The journal entry of a partition the restore has not written to, given
/// its low and high watermarks now: its records go after what it holds.
/// Records there already are another client's, refused unless appending.
/// Registers the ID map of `now` in `journal`.
pub fn begin(
    journal: &mut DataJournal,
    now: &Settings<'_>,
    append: bool,
    low: i64,
    high: i64,
) -> Result<PartitionProgress, Refusal> {
    if high > low && !append {
        return Err(Refusal::NotEmpty {
            records: high - low,
        });
    }
    Ok(PartitionProgress {
        source_topic: now.source_topic.to_owned(),
        target_start: high,
        done: false,
        written: 0,
        next_offset: high,
        source_offset: None,
        skipped: 0,
        to_timestamp: now.to_timestamp,
        shape: shape(journal, now),
        foreign: Vec::new(),
    })
}

/// Whether a partition the journal calls done still is, given its high
/// watermark now: done means every record is there, and a partition that
/// ends before the restore's last record (truncated, deleted and
/// recreated, or a broker that lost acknowledged records) is not.
/// Records other clients wrote after it do not matter.
pub fn still_done(progress: &PartitionProgress, high: i64) -> Result<(), Refusal> {
    if high < progress.next_offset {
        return Err(Refusal::Truncated {
            high,
            next_offset: progress.next_offset,
        });
    }
    Ok(())
}

/// The first of `missing`, target topics about to be created, that the
/// journal holds entries of: the restore wrote to it before, and it was
/// deleted since, so its entries no longer describe it.
pub fn deleted<'t>(
    journal: &DataJournal,
    missing: impl IntoIterator<Item = &'t str>,
) -> Option<&'t str> {
    missing
        .into_iter()
        .find(|topic| journal.partitions.contains_key(*topic))
}

/// How a partition with a journal entry goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continue {
    /// Records of the restore already confirmed in the target: skipped.
    pub written: u64,
    /// The target's records in `[read_from, high)` are read back and
    /// compared with the restore's next records.
    pub read_from: i64,
    /// The high watermark now: where the first record this run sends lands.
    pub high: i64,
}

impl Continue {
    /// Whether the target holds records after the confirmed ones, to be
    /// read back before anything is sent.
    pub fn has_tail(&self) -> bool {
        self.read_from < self.high
    }

    /// Whether the restore's record at `position` (its place, from 1, among
    /// the records the restore writes into the partition) is a confirmed
    /// one, skipped.
    pub fn confirmed(&self, position: u64) -> bool {
        position <= self.written
    }

    /// Where the records this run sends land: the one at `position` at
    /// `base + position`, given the position of the first one sent, which
    /// lands at the high watermark (after the tail).
    pub fn base(&self, first_sent: u64) -> i64 {
        self.high - first_sent as i64
    }

    /// The high watermark once this run's `sent` records have landed.
    pub fn expected_high(&self, sent: u64) -> i64 {
        self.high + sent as i64
    }

    /// Of the `total` records the restore writes into the partition, those
    /// written by earlier runs: the confirmed ones and the `matched` ones
    /// found in the tail.
    pub fn by_earlier_runs(&self, total: u64, matched: u64) -> u64 {
        self.written.min(total) + matched
    }
}

/// Why a partition cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The partition ends before records the restore confirmed (deleted
    /// and recreated, or truncated).
    Truncated { high: i64, next_offset: i64 },
    /// Records after the confirmed ones were deleted (retention, delete
    /// records): they can no longer be read back and compared.
    Unreadable { low: i64, next_offset: i64 },
    /// The partition was (partly, unless `done`) restored with another
    /// `--to-timestamp`.
    ToTimestampChanged {
        done: bool,
        was: Option<i64>,
        now: Option<i64>,
    },
    /// The partition was (partly, unless `done`) restored with other
    /// settings that shape its records ([`shape_change`]).
    ShapeChanged { done: bool, what: String },
    /// The restore has not written to the partition and it holds
    /// `records` already, without `--append`.
    NotEmpty { records: i64 },
}

/// The offsets from `expected` to `offset`, where the target's next record
/// was read: they hold no record (a transaction marker, an aborted
/// record). `None` when the record is where it was expected.
pub fn gap(expected: i64, offset: i64) -> Option<[i64; 2]> {
    (offset > expected).then_some([expected, offset])
}

/// Adds the target offsets `range` to `foreign`, the ranges of other
/// clients' records in offset order: joined to the last one when they
/// touch, so that a run of them is one range.
pub fn add_foreign(foreign: &mut Vec<[i64; 2]>, range: [i64; 2]) {
    match foreign.last_mut() {
        Some(last) if last[1] == range[0] => last[1] = range[1],
        _ => foreign.push(range),
    }
}

/// Where a partition that is not done goes on, given its low and high
/// watermarks now.
pub fn start(progress: &PartitionProgress, low: i64, high: i64) -> Result<Continue, Refusal> {
    let next_offset = progress.next_offset;
    if high < next_offset {
        return Err(Refusal::Truncated { high, next_offset });
    }
    if high > next_offset && low > next_offset {
        return Err(Refusal::Unreadable { low, next_offset });
    }
    Ok(Continue {
        written: progress.written,
        read_from: next_offset,
        high,
    })
}

/// What a partition is restored with now, to compare with its journal entry.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub source_topic: &'a str,
    /// Leave out records with a timestamp after this (`--to-timestamp`).
    pub to_timestamp: Option<i64>,
    pub missing_id_policy: MissingIdPolicy,
    /// The record ID map, `None` when IDs are not rewritten.
    pub map: Option<&'a BTreeMap<i32, i32>>,
    /// Whether keys and values have their schema IDs rewritten.
    pub rewrite_key: bool,
    pub rewrite_value: bool,
}

/// How the settings of this run differ from those a partition was (partly)
/// restored with in a way that changes the bytes it writes; `None` when the
/// records would come out the same.
///
/// A partition restored under `missing_id_policy: fail` wrote only records
/// whose IDs were all in its map, so a map that keeps every one of those
/// entries (adding the ID it stopped at, say) and any policy write those
/// records the same. Under `passthrough` or `skip`, records with IDs the map
/// lacked were written unchanged or left out, so map and policy must stay.
pub fn shape_change(
    journal: &DataJournal,
    was: &PartitionProgress,
    now: &Settings<'_>,
) -> Option<String> {
    if was.source_topic != now.source_topic {
        return Some(format!(
            "it was restored from `{}`, this run restores `{}` into it",
            was.source_topic, now.source_topic
        ));
    }
    for (field, was_on, now_on) in [
        ("keys", was.shape.rewrite_key, now.rewrite_key),
        ("values", was.shape.rewrite_value, now.rewrite_value),
    ] {
        if was_on != now_on && now.map.is_some() {
            return Some(if was_on {
                format!(
                    "the schema IDs of its {field} were rewritten, this run writes them as backed up"
                )
            } else {
                format!("its {field} were written as backed up, this run rewrites their schema IDs")
            });
        }
    }
    let old_map = match &was.shape.map {
        None => None,
        Some(digest) => match journal.maps.get(digest) {
            Some(map) => Some(map),
            None => return Some(format!("the journal lacks its ID map `{digest}`")),
        },
    };
    match (old_map, now.map) {
        (None, None) => None,
        (None, Some(_)) => Some(
            "its records were written with the IDs as backed up, this run rewrites them".into(),
        ),
        (Some(_), None) => {
            Some("its records' IDs were rewritten, this run writes them as backed up".into())
        }
        (Some(old), Some(new)) => {
            if let Some((id, to)) = old.iter().find(|(id, to)| new.get(id) != Some(to)) {
                return Some(match new.get(id) {
                    Some(now) => {
                        format!("schema ID {id} was rewritten to {to}, now it maps to {now}")
                    }
                    None => {
                        format!("schema ID {id} was rewritten to {to}, now the ID map lacks it")
                    }
                });
            }
            let policy = was.shape.missing_id_policy;
            if policy == MissingIdPolicy::Fail {
                return None;
            }
            if let Some((id, to)) = new.iter().find(|(id, _)| !old.contains_key(id)) {
                return Some(format!(
                    "schema ID {id} was missing from the ID map (`missing_id_policy: {}`), now it maps to {to}",
                    policy_name(policy)
                ));
            }
            (policy != now.missing_id_policy).then(|| {
                format!(
                    "it was restored with `missing_id_policy: {}`, this run has `{}`",
                    policy_name(policy),
                    policy_name(now.missing_id_policy)
                )
            })
        }
    }
}

fn policy_name(p: MissingIdPolicy) -> &'static str {
    match p {
        MissingIdPolicy::Fail => "fail",
        MissingIdPolicy::Passthrough => "passthrough",
        MissingIdPolicy::Skip => "skip",
    }
}

/// The [`Shape`] of `settings`, registering its map in `journal`.
pub fn shape(journal: &mut DataJournal, settings: &Settings<'_>) -> Shape {
    let map = settings.map.map(|m| {
        let digest = super::journal::map_digest(m);
        journal
            .maps
            .entry(digest.clone())
            .or_insert_with(|| m.clone());
        digest
    });
    Shape {
        map,
        missing_id_policy: settings.missing_id_policy,
        rewrite_key: settings.rewrite_key,
        rewrite_value: settings.rewrite_value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(written: u64, next_offset: i64) -> PartitionProgress {
        PartitionProgress {
            source_topic: "orders".into(),
            target_start: 100,
            done: false,
            written,
            next_offset,
            source_offset: None,
            skipped: 0,
            to_timestamp: None,
            shape: Shape {
                map: None,
                missing_id_policy: MissingIdPolicy::Fail,
                rewrite_key: true,
                rewrite_value: true,
            },
            foreign: vec![],
        }
    }

    #[test]
    fn fresh_partial_and_untouched_tails() {
        // nothing written since the journal was saved
        assert_eq!(
            start(&progress(0, 100), 0, 100),
            Ok(Continue {
                written: 0,
                read_from: 100,
                high: 100
            })
        );
        // records after the confirmed ones are read back, whoever wrote them
        assert_eq!(
            start(&progress(40, 140), 0, 175),
            Ok(Continue {
                written: 40,
                read_from: 140,
                high: 175
            })
        );
        // records before the confirmed ones deleted by retention do not matter
        assert_eq!(
            start(&progress(40, 140), 120, 140),
            Ok(Continue {
                written: 40,
                read_from: 140,
                high: 140
            })
        );
    }

    #[test]
    fn truncated_and_unreadable_tails_are_refused() {
        assert_eq!(
            start(&progress(40, 140), 0, 139),
            Err(Refusal::Truncated {
                high: 139,
                next_offset: 140
            })
        );
        // the partition was recreated: empty, at 0
        assert_eq!(
            start(&progress(40, 140), 0, 0),
            Err(Refusal::Truncated {
                high: 0,
                next_offset: 140
            })
        );
        assert_eq!(
            start(&progress(40, 140), 150, 160),
            Err(Refusal::Unreadable {
                low: 150,
                next_offset: 140
            })
        );
    }

    fn journal_with(
        map: Option<BTreeMap<i32, i32>>,
        policy: MissingIdPolicy,
    ) -> (DataJournal, PartitionProgress) {
        let mut journal = DataJournal::new("c");
        let mut p = progress(10, 110);
        p.shape = shape(
            &mut journal,
            &Settings {
                source_topic: "orders",
                to_timestamp: None,
                missing_id_policy: policy,
                map: map.as_ref(),
                rewrite_key: true,
                rewrite_value: true,
            },
        );
        (journal, p)
    }

    fn settings<'a>(map: Option<&'a BTreeMap<i32, i32>>, policy: MissingIdPolicy) -> Settings<'a> {
        Settings {
            source_topic: "orders",
            to_timestamp: None,
            missing_id_policy: policy,
            map,
            rewrite_key: true,
            rewrite_value: true,
        }
    }

    #[test]
    fn the_same_settings_write_the_same_records() {
        let map: BTreeMap<i32, i32> = [(1, 1), (5, 2)].into();
        for policy in [
            MissingIdPolicy::Fail,
            MissingIdPolicy::Passthrough,
            MissingIdPolicy::Skip,
        ] {
            let (j, p) = journal_with(Some(map.clone()), policy);
            assert_eq!(shape_change(&j, &p, &settings(Some(&map), policy)), None);
        }
        let (j, p) = journal_with(None, MissingIdPolicy::Fail);
        assert_eq!(
            shape_change(&j, &p, &settings(None, MissingIdPolicy::Fail)),
            None
        );
    }

    #[test]
    fn after_fail_a_wider_map_and_another_policy_are_safe() {
        let map: BTreeMap<i32, i32> = [(1, 1), (5, 2)].into();
        let wider: BTreeMap<i32, i32> = [(1, 1), (5, 2), (7, 3)].into();
        let (j, p) = journal_with(Some(map), MissingIdPolicy::Fail);
        assert_eq!(
            shape_change(&j, &p, &settings(Some(&wider), MissingIdPolicy::Skip)),
            None
        );
    }

    #[test]
    fn a_changed_mapping_source_or_rewrite_is_named() {
        let map: BTreeMap<i32, i32> = [(1, 1), (5, 2)].into();
        let moved: BTreeMap<i32, i32> = [(1, 1), (5, 3)].into();
        let narrower: BTreeMap<i32, i32> = [(1, 1)].into();
        let (j, p) = journal_with(Some(map.clone()), MissingIdPolicy::Fail);
        assert_eq!(
            shape_change(&j, &p, &settings(Some(&moved), MissingIdPolicy::Fail)).unwrap(),
            "schema ID 5 was rewritten to 2, now it maps to 3"
        );
        assert_eq!(
            shape_change(&j, &p, &settings(Some(&narrower), MissingIdPolicy::Fail)).unwrap(),
            "schema ID 5 was rewritten to 2, now the ID map lacks it"
        );
        assert!(
            shape_change(&j, &p, &settings(None, MissingIdPolicy::Fail))
                .unwrap()
                .contains("as backed up")
        );
        let mut keys = settings(Some(&map), MissingIdPolicy::Fail);
        keys.rewrite_key = false;
        assert_eq!(
            shape_change(&j, &p, &keys).unwrap(),
            "the schema IDs of its keys were rewritten, this run writes them as backed up"
        );
        let mut other = settings(Some(&map), MissingIdPolicy::Fail);
        other.source_topic = "payments";
        assert!(
            shape_change(&j, &p, &other)
                .unwrap()
                .contains("restored from `orders`")
        );
    }

    #[test]
    fn after_passthrough_or_skip_map_and_policy_must_stay() {
        let map: BTreeMap<i32, i32> = [(1, 1), (5, 2)].into();
        let wider: BTreeMap<i32, i32> = [(1, 1), (5, 2), (7, 3)].into();
        let (j, p) = journal_with(Some(map.clone()), MissingIdPolicy::Passthrough);
        assert_eq!(
            shape_change(
                &j,
                &p,
                &settings(Some(&wider), MissingIdPolicy::Passthrough)
            )
            .unwrap(),
            "schema ID 7 was missing from the ID map (`missing_id_policy: passthrough`), now it maps to 3"
        );
        assert_eq!(
            shape_change(&j, &p, &settings(Some(&map), MissingIdPolicy::Skip)).unwrap(),
            "it was restored with `missing_id_policy: passthrough`, this run has `skip`"
        );
    }

    /// A journal whose only entry is `orders` partition 0, `progress`.
    fn journal_of(progress: PartitionProgress) -> DataJournal {
        let mut journal = DataJournal::new("c");
        journal.set("orders", 0, progress);
        journal
    }

    fn done(written: u64, next_offset: i64) -> PartitionProgress {
        PartitionProgress {
            done: true,
            ..progress(written, next_offset)
        }
    }

    #[test]
    fn a_new_partition_begins_at_its_high_watermark() {
        let map: BTreeMap<i32, i32> = [(1, 101)].into();
        let mut now = settings(Some(&map), MissingIdPolicy::Skip);
        now.to_timestamp = Some(1_700_000_000_000);
        let mut journal = DataJournal::new("c");
        assert_eq!(recorded(&journal, "orders", 0, &now), Ok(Recorded::Nothing));
        let begun = begin(&mut journal, &now, false, 0, 0).unwrap();
        let digest = super::super::journal::map_digest(&map);
        assert_eq!(
            begun,
            PartitionProgress {
                source_topic: "orders".into(),
                target_start: 0,
                done: false,
                written: 0,
                next_offset: 0,
                source_offset: None,
                skipped: 0,
                to_timestamp: Some(1_700_000_000_000),
                shape: Shape {
                    map: Some(digest.clone()),
                    missing_id_policy: MissingIdPolicy::Skip,
                    rewrite_key: true,
                    rewrite_value: true,
                },
                foreign: vec![],
            }
        );
        assert_eq!(journal.maps.get(&digest), Some(&map));
        // its worker finds nothing to read back
        let start = start(&begun, 0, 0).unwrap();
        assert!(!start.has_tail());
        assert!(!start.confirmed(1));
        // a partition emptied by retention begins where its offsets are
        let begun = begin(&mut journal, &now, false, 120, 120).unwrap();
        assert_eq!((begun.target_start, begun.next_offset), (120, 120));
    }

    #[test]
    fn a_new_partition_that_holds_records_is_refused_unless_appending() {
        let now = settings(None, MissingIdPolicy::Fail);
        let mut journal = DataJournal::new("c");
        assert_eq!(
            begin(&mut journal, &now, false, 3, 8),
            Err(Refusal::NotEmpty { records: 5 })
        );
        let appended = begin(&mut journal, &now, true, 3, 8).unwrap();
        assert_eq!((appended.target_start, appended.next_offset), (8, 8));
        assert_eq!(appended.shape.map, None);
        assert!(journal.maps.is_empty());
    }

    #[test]
    fn a_partly_restored_partition_goes_on_from_its_entry() {
        let journal = journal_of(progress(40, 140));
        assert_eq!(
            recorded(
                &journal,
                "orders",
                0,
                &settings(None, MissingIdPolicy::Fail)
            ),
            Ok(Recorded::Partly(&progress(40, 140)))
        );
        // another partition of the topic has no entry
        assert_eq!(
            recorded(
                &journal,
                "orders",
                1,
                &settings(None, MissingIdPolicy::Fail)
            ),
            Ok(Recorded::Nothing)
        );
    }

    #[test]
    fn a_restored_partition_is_done_while_its_records_are_there() {
        let journal = journal_of(done(40, 140));
        let Ok(Recorded::Done(progress)) = recorded(
            &journal,
            "orders",
            0,
            &settings(None, MissingIdPolicy::Fail),
        ) else {
            panic!("expected done");
        };
        assert_eq!(still_done(progress, 140), Ok(()));
        // records other clients wrote after the restore's do not matter
        assert_eq!(still_done(progress, 175), Ok(()));
    }

    #[test]
    fn a_restored_partition_that_lost_records_is_refused() {
        let progress = done(40, 140);
        assert_eq!(
            still_done(&progress, 139),
            Err(Refusal::Truncated {
                high: 139,
                next_offset: 140
            })
        );
        // deleted and recreated: empty, at 0
        assert_eq!(
            still_done(&progress, 0),
            Err(Refusal::Truncated {
                high: 0,
                next_offset: 140
            })
        );
    }

    #[test]
    fn another_to_timestamp_is_refused_done_or_not() {
        let mut now = settings(None, MissingIdPolicy::Fail);
        now.to_timestamp = Some(5);
        for entry in [progress(40, 140), done(40, 140)] {
            let done = entry.done;
            assert_eq!(
                recorded(&journal_of(entry), "orders", 0, &now),
                Err(Refusal::ToTimestampChanged {
                    done,
                    was: None,
                    now: Some(5)
                })
            );
        }
    }

    #[test]
    fn other_settings_are_refused_done_or_not() {
        let map: BTreeMap<i32, i32> = [(1, 101)].into();
        let now = settings(Some(&map), MissingIdPolicy::Fail);
        for entry in [progress(40, 140), done(40, 140)] {
            let done = entry.done;
            assert_eq!(
                recorded(&journal_of(entry), "orders", 0, &now),
                Err(Refusal::ShapeChanged {
                    done,
                    what:
                        "its records were written with the IDs as backed up, this run rewrites them"
                            .into()
                })
            );
        }
    }

    #[test]
    fn a_topic_restored_to_before_and_missing_now_was_deleted() {
        let journal = journal_of(progress(40, 140));
        assert_eq!(
            deleted(&journal, ["clicks", "orders", "payments"]),
            Some("orders")
        );
        assert_eq!(deleted(&journal, ["clicks", "payments"]), None);
        assert_eq!(deleted(&DataJournal::new("c"), ["orders"]), None);
    }

    #[test]
    fn the_interrupted_runs_records_in_the_tail_are_skipped_and_the_rest_land_after_it() {
        // 40 records confirmed up to offset 140; the interrupted run had 35
        // more acknowledged, at 140..175
        let at = start(&progress(40, 140), 0, 175).unwrap();
        assert!(at.has_tail());
        assert!(at.confirmed(40));
        assert!(!at.confirmed(41));
        // records 41..=75 are found in the tail; 76 is the first sent and
        // lands at the high watermark, the rest after it
        let base = at.base(76);
        assert_eq!(base + 76, 175);
        assert_eq!(base + 100, 199);
        assert_eq!(at.expected_high(25), 200);
        assert_eq!(at.by_earlier_runs(100, 35), 75);
    }

    #[test]
    fn records_another_client_wrote_after_the_tail_move_what_follows() {
        // the interrupted run's 5 records at 140..145, another client's 10
        // after them: the restore's next record lands after all of them
        let at = start(&progress(40, 140), 0, 155).unwrap();
        let base = at.base(46);
        assert_eq!(base + 46, 155);
        assert_eq!(at.expected_high(4), 159);
        assert_eq!(at.by_earlier_runs(50, 5), 45);
    }

    #[test]
    fn a_tail_holding_every_remaining_record_sends_nothing() {
        let at = start(&progress(40, 140), 0, 145).unwrap();
        assert_eq!(at.expected_high(0), 145);
        assert_eq!(at.by_earlier_runs(45, 5), 45);
        // a journal that confirmed more records than the restore writes
        // (none would be) counts no more than it writes
        assert_eq!(at.by_earlier_runs(30, 0), 30);
    }

    #[test]
    fn offsets_without_records_and_runs_of_foreign_records_make_ranges() {
        assert_eq!(gap(140, 140), None);
        assert_eq!(gap(140, 143), Some([140, 143]));
        let mut foreign = vec![];
        add_foreign(&mut foreign, [140, 143]);
        add_foreign(&mut foreign, [143, 144]);
        assert_eq!(foreign, [[140, 144]]);
        add_foreign(&mut foreign, [150, 151]);
        add_foreign(&mut foreign, [151, 152]);
        assert_eq!(foreign, [[140, 144], [150, 152]]);
        // a rerun goes on with the ranges the journal kept
        let mut kept = vec![[10, 12]];
        add_foreign(&mut kept, [140, 141]);
        assert_eq!(kept, [[10, 12], [140, 141]]);
    }
}
