//! Where the restore of one partition goes on, and whether it may, decided
//! from its journal entry and what the target holds now. Pure: no I/O.
//!
//! The journal says how many of the restore's records are confirmed in the
//! target and where its next one lands (`next_offset`). Records past that
//! point were written either by the interrupted run (acknowledged after the
//! journal was last saved) or by another client: the restore reads them
//! back and tells them apart by content ([`super::target`]); this module
//! says which offsets to read, and refuses what no reading can repair.

use std::collections::BTreeMap;

use super::journal::{DataJournal, PartitionProgress, Shape};
use crate::config::MissingIdPolicy;

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

/// Why a partition cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The partition ends before records the restore confirmed (deleted
    /// and recreated, or truncated).
    Truncated { high: i64, next_offset: i64 },
    /// Records after the confirmed ones were deleted (retention, delete
    /// records): they can no longer be read back and compared.
    Unreadable { low: i64, next_offset: i64 },
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
}
