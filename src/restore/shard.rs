//! Sharded restores: `apply --shard i/N` restores the partitions of shard
//! `i` of `N` (0-based), so that `N` processes restore disjoint partitions of
//! one backup at once.
//!
//! Which partitions are a shard's depends only on the backup and the
//! configuration's topic selection, never on the target: every selected
//! (backed-up topic, partition) pair is sorted, and shard `i` takes the
//! pairs at positions `p` with `p % N == i` ([`Shard::assign`]). Each shard
//! keeps its own restore journal and offset map
//! (`<cluster>.shard-i-of-N.json`, `<cluster>.shard-i-of-N.offsets.json`,
//! see [`super::journal`]), and whoever reads them reads every shard's.
//!
//! `--shard N` (or `--shard /N`) takes `i` from `JOB_COMPLETION_INDEX`, the
//! index a Kubernetes Indexed Job gives each of its pods (0-based).

use std::collections::BTreeSet;
use std::fmt;

use super::TopicJob;

/// The environment variable a Kubernetes Indexed Job sets to the pod's index.
pub const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

/// Shard `index` of `count`, 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Why `--shard` was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error(
        "`--shard {spec}` is not a shard: expected `I/N` (shard I of N, 0-based), or `N` alone to take I from `{INDEX_VARIABLE}`\nhint: `--shard 0/3`, `--shard 1/3` and `--shard 2/3` restore a backup in three processes"
    )]
    Malformed { spec: String },
    #[error(
        "`--shard {spec}`: the shard count must be at least 1\nhint: `--shard 0/1` is one process restoring every partition"
    )]
    NoShards { spec: String },
    #[error(
        "`--shard {spec}`: shard {index} does not exist, shards are numbered 0 to {} (0-based)\nhint: a Kubernetes Indexed Job with `completions: {count}` gives indexes 0 to {}",
        .count - 1,
        .count - 1
    )]
    OutOfRange {
        spec: String,
        index: u32,
        count: u32,
    },
    #[error(
        "`--shard {spec}` takes the shard index from `{INDEX_VARIABLE}`, which is not set\nhint: a Kubernetes Indexed Job sets it in each pod; elsewhere say the index: `--shard 0/{count}`"
    )]
    NoIndex { spec: String, count: u32 },
    #[error(
        "`--shard {spec}`: `{INDEX_VARIABLE}` is `{value}`, not a shard index (0, 1, ...)\nhint: say the index instead: `--shard 0/{count}`"
    )]
    BadIndex {
        spec: String,
        value: String,
        count: u32,
    },
}

impl Shard {
    /// `I/N`, or `N` and `/N` with `I` from `index` (the value of
    /// [`INDEX_VARIABLE`], when set).
    pub fn parse(spec: &str, index: Option<&str>) -> Result<Self, ShardError> {
        let malformed = || ShardError::Malformed {
            spec: spec.to_owned(),
        };
        let number = |s: &str| -> Result<u32, ShardError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            s.parse().map_err(|_| malformed())
        };
        let (given, count) = match spec.trim().split_once('/') {
            Some(("", count)) => (None, number(count)?),
            Some((index, count)) => (Some(number(index)?), number(count)?),
            None => (None, number(spec.trim())?),
        };
        if count == 0 {
            return Err(ShardError::NoShards {
                spec: spec.to_owned(),
            });
        }
        let index = match given {
            Some(i) => i,
            None => {
                let value = index.ok_or_else(|| ShardError::NoIndex {
                    spec: spec.to_owned(),
                    count,
                })?;
                value.trim().parse().map_err(|_| ShardError::BadIndex {
                    spec: spec.to_owned(),
                    value: value.to_owned(),
                    count,
                })?
            }
        };
        if index >= count {
            return Err(ShardError::OutOfRange {
                spec: spec.to_owned(),
                index,
                count,
            });
        }
        Ok(Self { index, count })
    }

    /// `shard-i-of-N`: what names this shard's files and lease.
    pub fn tag(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }

    /// The shard a `shard-i-of-N` tag names.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let (index, count) = tag.strip_prefix("shard-")?.split_once("-of-")?;
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !plain(index) || !plain(count) {
            return None;
        }
        let shard = Self {
            index: index.parse().ok()?,
            count: count.parse().ok()?,
        };
        (shard.index < shard.count && shard.tag() == tag).then_some(shard)
    }

    /// The pairs of `pairs` that are this shard's: sorted and without
    /// duplicates, the ones at positions `p` with `p % count == index`.
    pub fn assign<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, i32)>,
    ) -> BTreeSet<(String, i32)> {
        let sorted: BTreeSet<(&str, i32)> = pairs.into_iter().collect();
        sorted
            .into_iter()
            .enumerate()
            .filter(|(p, _)| *p as u64 % u64::from(self.count) == u64::from(self.index))
            .map(|(_, (topic, partition))| (topic.to_owned(), partition))
            .collect()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Every (backed-up topic, partition) pair `jobs` restore.
pub fn pairs(jobs: &[TopicJob]) -> impl Iterator<Item = (&str, i32)> {
    jobs.iter().flat_map(|job| {
        job.manifest
            .partitions
            .keys()
            .map(move |&p| (job.source.as_str(), p))
    })
}

/// `jobs` narrowed to `shard`'s partitions; a topic with none of them is
/// left out (another shard creates it).
pub fn narrow(jobs: &[TopicJob], shard: Shard) -> Vec<TopicJob> {
    let mine = shard.assign(pairs(jobs));
    jobs.iter()
        .filter_map(|job| {
            let mut job = job.clone();
            job.manifest
                .partitions
                .retain(|&p, _| mine.contains(&(job.source.clone(), p)));
            (!job.manifest.partitions.is_empty()).then_some(job)
        })
        .collect()
}

/// What a shard restores, for people: one line per topic with its
/// partitions, after a line with the counts.
pub fn describe(shard: Shard, all: &[TopicJob], mine: &[TopicJob]) -> String {
    let total = pairs(all).count();
    let taken = pairs(mine).count();
    let mut out = format!(
        "Shard {shard}: restores {taken} of the {total} selected partition(s) (the others are the other shards'){}\n",
        if taken == 0 {
            "; none is this shard's"
        } else {
            ":"
        }
    );
    for job in mine {
        let rename = if job.source == job.target {
            String::new()
        } else {
            format!(" -> {}", job.target)
        };
        let list: Vec<String> = job.manifest.partitions.keys().map(i32::to_string).collect();
        out.push_str(&format!(
            "  {}{rename}: partition(s) {}\n",
            job.source,
            list.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(index: u32, count: u32) -> Shard {
        Shard { index, count }
    }

    #[test]
    fn a_shard_is_i_of_n_or_n_with_the_index_from_the_environment() {
        assert_eq!(Shard::parse("1/3", None), Ok(shard(1, 3)));
        assert_eq!(Shard::parse("0/1", Some("7")), Ok(shard(0, 1)));
        assert_eq!(Shard::parse("3", Some("2")), Ok(shard(2, 3)));
        assert_eq!(Shard::parse("/3", Some("0")), Ok(shard(0, 3)));
        assert_eq!(Shard::parse(" 4 ", Some(" 3\n")), Ok(shard(3, 4)));

        let err = |spec: &str, index: Option<&str>| Shard::parse(spec, index).unwrap_err();
        assert_eq!(
            err("3/3", None),
            ShardError::OutOfRange {
                spec: "3/3".into(),
                index: 3,
                count: 3
            }
        );
        assert_eq!(
            err("3", Some("5")).to_string(),
            "`--shard 3`: shard 5 does not exist, shards are numbered 0 to 2 (0-based)\nhint: a Kubernetes Indexed Job with `completions: 3` gives indexes 0 to 2"
        );
        assert_eq!(
            err("3", None).to_string(),
            "`--shard 3` takes the shard index from `JOB_COMPLETION_INDEX`, which is not set\nhint: a Kubernetes Indexed Job sets it in each pod; elsewhere say the index: `--shard 0/3`"
        );
        assert!(matches!(
            err("/3", Some("one")),
            ShardError::BadIndex { .. }
        ));
        assert!(matches!(err("0/0", None), ShardError::NoShards { .. }));
        for bad in ["", "a/3", "1/", "1/3/4", "-1/3", "1.0/3", "+1/3", "1 /3"] {
            assert!(
                matches!(err(bad, Some("0")), ShardError::Malformed { .. }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tags_name_one_shard_and_read_back() {
        assert_eq!(shard(1, 3).tag(), "shard-1-of-3");
        assert_eq!(Shard::from_tag("shard-1-of-3"), Some(shard(1, 3)));
        assert_eq!(Shard::from_tag("shard-12-of-40"), Some(shard(12, 40)));
        for bad in [
            "shard-3-of-3",
            "shard-01-of-3",
            "shard--of-3",
            "shard-1-of-",
            "shard-1-of-3x",
            "offsets",
            "shard-1",
        ] {
            assert_eq!(Shard::from_tag(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_pair_goes_to_exactly_one_shard_in_sorted_order() {
        // given out of order and with a duplicate: sorted by topic name
        // (bytes), then by partition number (10 after 9)
        let pairs = [
            ("orders", 10),
            ("b", 0),
            ("orders", 2),
            ("orders", 9),
            ("A", 1),
            ("orders", 0),
            ("b", 0),
        ];
        let got = |i| {
            shard(i, 3)
                .assign(pairs.iter().copied())
                .into_iter()
                .collect::<Vec<_>>()
        };
        let owned = |v: &[(&str, i32)]| -> Vec<(String, i32)> {
            v.iter().map(|(t, p)| (t.to_string(), *p)).collect()
        };
        // sorted: A:1, b:0, orders:0, orders:2, orders:9, orders:10
        assert_eq!(got(0), owned(&[("A", 1), ("orders", 2)]));
        assert_eq!(got(1), owned(&[("b", 0), ("orders", 9)]));
        assert_eq!(got(2), owned(&[("orders", 0), ("orders", 10)]));
        // one shard takes everything; more shards than pairs leave some idle
        assert_eq!(shard(0, 1).assign(pairs.iter().copied()).len(), 6);
        assert_eq!(shard(7, 8).assign(pairs.iter().copied()), BTreeSet::new());

        // whatever the count, the shards split the pairs without overlap,
        // and the split does not depend on the order the pairs come in
        let many: Vec<(String, i32)> = (0..5)
            .flat_map(|t| (0..7).map(move |p| (format!("t{t}"), p)))
            .collect();
        for count in 1..=12 {
            let mut seen = BTreeSet::new();
            for index in 0..count {
                let s = shard(index, count);
                let forward = s.assign(many.iter().map(|(t, p)| (t.as_str(), *p)));
                let backward = s.assign(many.iter().rev().map(|(t, p)| (t.as_str(), *p)));
                assert_eq!(forward, backward);
                let size = forward.len();
                let expected = many.len() / count as usize
                    + usize::from((index as usize) < many.len() % count as usize);
                assert_eq!(size, expected, "shard {s}");
                for pair in forward {
                    assert!(seen.insert(pair), "shard {s} takes a pair twice");
                }
            }
            assert_eq!(seen.len(), many.len(), "{count} shards");
        }
    }
}
