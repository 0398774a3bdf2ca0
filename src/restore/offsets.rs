//! The offset map: where each backed-up record landed in the target.
//!
//! Restored records land at other offsets than they had whenever the
//! backed-up partition did not start at 0 without gaps (retention,
//! compaction, transaction markers), records were left out (`--to-timestamp`,
//! a missing schema ID under `skip`), or the restore wrote after records the
//! target held (`--append`). Consumer group offsets are translated through
//! this map ([`PartitionOffsets::translate`]), and users whose consumers keep
//! offsets outside Kafka read it with `kafka-backup offsets`.
//!
//! Per target partition the map is a list of runs, each a stretch of records
//! with consecutive backup offsets that landed at consecutive target offsets,
//! plus the stretches of the backup the restore left out and why. A run
//! breaks wherever the backup has a gap or the target does (records of
//! another producer that `--append` wrote after). It is built while the
//! restore reads the partition ([`Builder`]), from the first record on, also
//! when a rerun goes on after an interrupted run (the records the earlier run
//! confirmed are read again, not written again), and saved beside the restore
//! journal when the partition is finished: `<backup_id>/restore/<cluster>.offsets.json`
//! (`<cluster>.shard-i-of-N.offsets.json` for shard `i` of `N`; reading joins
//! every file of the cluster, as for the journal: [`super::journal`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::journal::{DataJournalError, Kind, RestoreFiles};
use super::shard::Shard;
use super::transform::Verdict;
use crate::storage::Store;

/// `format` of every offset map file this version writes.
pub const OFFSET_MAP_FORMAT: &str = "kafka-backup/offset-map/v1";

/// Where the restored records of one target cluster landed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetMap {
    pub format: String,
    /// Target topic, then partition.
    pub partitions: BTreeMap<String, BTreeMap<i32, PartitionOffsets>>,
    /// The partitions read from the cluster's other files (another shard's,
    /// the unsharded run's), to the file as shown; not saved into this run's.
    #[serde(skip)]
    pub others: BTreeMap<(String, i32), String>,
}

impl OffsetMap {
    pub fn new() -> Self {
        Self {
            format: OFFSET_MAP_FORMAT.to_owned(),
            partitions: BTreeMap::new(),
            others: BTreeMap::new(),
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<&PartitionOffsets> {
        self.partitions.get(topic)?.get(&partition)
    }

    /// Keeps only the partitions `journal` records as restored, from where
    /// each map entry says the restore began: an entry left from a restore
    /// whose journal was deleted (to start over), or of a topic deleted and
    /// restored again, describes records that are not there.
    pub fn retain_restored(&mut self, journal: Option<&super::DataJournal>) {
        for (topic, partitions) in &mut self.partitions {
            partitions.retain(|&p, m| {
                journal
                    .and_then(|j| j.get(topic, p))
                    .is_some_and(|e| e.done && e.target_start == m.target_start)
            });
        }
        self.partitions.retain(|_, ps| !ps.is_empty());
    }

    /// Records where the records of a partition this run restored landed
    /// (saved into this run's file from now on).
    pub fn set(&mut self, topic: &str, partition: i32, offsets: PartitionOffsets) {
        self.others.remove(&(topic.to_owned(), partition));
        self.partitions
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, offsets);
    }

    /// Joins the maps of one cluster's files: `own` (the file this run
    /// writes, shown as `own_path`) and `others`, each with its file as
    /// shown. A partition in two files is an error naming both.
    pub fn union(
        own: OffsetMap,
        own_path: &str,
        others: Vec<(String, OffsetMap)>,
    ) -> Result<Self, DataJournalError> {
        let mut union = own;
        union.others.clear();
        let mut held: BTreeMap<(String, i32), String> = union
            .partitions
            .iter()
            .flat_map(|(t, ps)| {
                ps.keys()
                    .map(move |&p| ((t.clone(), p), own_path.to_owned()))
            })
            .collect();
        for (path, map) in others {
            for (topic, partitions) in map.partitions {
                for (p, offsets) in partitions {
                    let key = (topic.clone(), p);
                    if let Some(first) = held.get(&key) {
                        return Err(DataJournalError::Overlap {
                            what: "offset maps",
                            topic,
                            partition: p,
                            first: first.clone(),
                            second: path,
                        });
                    }
                    held.insert(key.clone(), path.clone());
                    union.others.insert(key, path.clone());
                    union
                        .partitions
                        .entry(topic.clone())
                        .or_default()
                        .insert(p, offsets);
                }
            }
        }
        Ok(union)
    }

    /// What this run's file holds: the partitions no other file holds.
    pub fn own(&self) -> OffsetMap {
        let mut own = OffsetMap::new();
        for (topic, partitions) in &self.partitions {
            for (&p, offsets) in partitions {
                if !self.others.contains_key(&(topic.clone(), p)) {
                    own.partitions
                        .entry(topic.clone())
                        .or_default()
                        .insert(p, offsets.clone());
                }
            }
        }
        own
    }
}

/// One restored partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionOffsets {
    /// The backed-up topic.
    pub source_topic: String,
    /// The backed-up partition's offsets: `[low, high)` watermarks.
    pub source_start: i64,
    pub source_end: i64,
    /// Target offset where the restore began (the partition's high
    /// watermark then) and right after its last record (`target_start` when
    /// it wrote none).
    pub target_start: i64,
    pub target_end: i64,
    /// `[source offset, target offset, records]`, in offset order.
    pub runs: Vec<Run>,
    /// Stretches of the backup the restore did not write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<LeftOut>,
    /// Target offsets `[from, to)` of records another client wrote between
    /// the restore's records (written after with `--append`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign: Vec<[i64; 2]>,
    /// The `--to-timestamp` the restore ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_timestamp: Option<i64>,
}

/// Records at backup offsets `source ..` landed at target offsets `target ..`,
/// `count` of them, one after the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "[i64; 3]", into = "[i64; 3]")]
pub struct Run {
    pub source: i64,
    pub target: i64,
    pub count: u64,
}

impl From<[i64; 3]> for Run {
    fn from([source, target, count]: [i64; 3]) -> Self {
        Self {
            source,
            target,
            count: count.max(0) as u64,
        }
    }
}

impl From<Run> for [i64; 3] {
    fn from(r: Run) -> Self {
        [r.source, r.target, r.count as i64]
    }
}

impl Run {
    fn source_end(&self) -> i64 {
        self.source + self.count as i64
    }
}

/// Backup records the restore did not write, from backup offset `from` to
/// `to` (both included), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeftOut {
    pub from: i64,
    pub to: i64,
    pub records: u64,
    pub why: LeftOutWhy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftOutWhy {
    /// Newer than `--to-timestamp`.
    ToTimestamp,
    /// A schema ID the map lacks, under `missing_id_policy: skip`.
    MissingId,
}

/// Where a committed offset of the source lands in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    pub target: i64,
    pub how: How,
}

/// How a committed offset was translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// To the target offset of the first restored record at or after it.
    Mapped,
    /// It is before the first record the backup holds (the group was behind
    /// retention): to the first restored record.
    BeforeStart,
    /// Every restored record was consumed: to the end of the restored
    /// records.
    End,
    /// The records after it were left out by `--to-timestamp`: clamped to
    /// the end of the restored records.
    Cut,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Mapped => "mapped",
            How::BeforeStart => "before the backup's first record",
            How::End => "all consumed: end of the restored records",
            How::Cut => "clamped at the --to-timestamp cut",
        }
    }
}

impl PartitionOffsets {
    /// Where a consumer that committed `committed` (the next record it reads)
    /// on the backed-up partition goes on in the target: at the first
    /// restored record at or after it, or after the last restored record
    /// when there is none.
    pub fn translate(&self, committed: i64) -> Translation {
        let at = self.runs.partition_point(|r| r.source_end() <= committed);
        if let Some(run) = self.runs.get(at) {
            let target = run.target + (committed - run.source).max(0);
            let how = if committed < self.source_start && at == 0 {
                How::BeforeStart
            } else {
                How::Mapped
            };
            return Translation { target, how };
        }
        let cut = self
            .left_out
            .iter()
            .any(|l| l.why == LeftOutWhy::ToTimestamp && l.to >= committed);
        Translation {
            target: self.target_end,
            how: if cut { How::Cut } else { How::End },
        }
    }

    /// Records the restore wrote.
    pub fn records(&self) -> u64 {
        self.runs.iter().map(|r| r.count).sum()
    }
}

/// Builds one partition's map while its records are decided, in backup
/// offset order. Records are counted by their position in the restore
/// (1-based, as the journal counts them); target offsets are worked out at
/// the end, when the records other clients wrote in between are known.
#[derive(Debug, Default)]
pub struct Builder {
    /// `(source, position, count)`.
    runs: Vec<(i64, u64, u64)>,
    left_out: Vec<LeftOut>,
}

impl Builder {
    /// The record at backup offset `offset` was decided `verdict`; `position`
    /// is the restore's count of written records after it.
    pub fn record(&mut self, offset: i64, verdict: Verdict, position: u64) {
        let why = match verdict {
            Verdict::Write { .. } => {
                match self.runs.last_mut() {
                    Some((source, first, count))
                        if *source + *count as i64 == offset && *first + *count == position =>
                    {
                        *count += 1
                    }
                    _ => self.runs.push((offset, position, 1)),
                }
                return;
            }
            Verdict::SkipLater => LeftOutWhy::ToTimestamp,
            Verdict::SkipMissing { .. } => LeftOutWhy::MissingId,
            Verdict::Missing { .. } => return,
        };
        // a stretch goes on while nothing was written since
        let last_write = self.runs.last().map(|r| r.0 + r.2 as i64 - 1);
        match self.left_out.last_mut() {
            Some(l) if l.why == why && last_write.is_none_or(|w| w < l.from) => {
                l.to = offset;
                l.records += 1;
            }
            _ => self.left_out.push(LeftOut {
                from: offset,
                to: offset,
                records: 1,
                why,
            }),
        }
    }

    /// The map, with record `n` at `target_start + n - 1` shifted past the
    /// `foreign` stretches (target offsets, sorted) that lie before it.
    pub fn finish(self, frame: Frame) -> PartitionOffsets {
        let mut foreign = frame.foreign.iter().peekable();
        let mut shift = 0i64;
        let mut runs = Vec::with_capacity(self.runs.len());
        for (mut source, mut position, mut count) in self.runs {
            while count > 0 {
                let mut target = frame.target_start + position as i64 - 1 + shift;
                while let Some(f) = foreign.peek().filter(|f| f[0] <= target) {
                    shift += f[1] - f[0];
                    target += f[1] - f[0];
                    foreign.next();
                }
                // records of the run before the next foreign stretch
                let fits = foreign
                    .peek()
                    .map_or(count, |f| ((f[0] - target).max(1) as u64).min(count));
                push_run(
                    &mut runs,
                    Run {
                        source,
                        target,
                        count: fits,
                    },
                );
                source += fits as i64;
                position += fits;
                count -= fits;
            }
        }
        // right after the restore's last record (records other clients wrote
        // after it are new to a group that had read everything)
        let target_end = runs
            .last()
            .map_or(frame.target_start, |r| r.target + r.count as i64);
        PartitionOffsets {
            source_topic: frame.source_topic,
            source_start: frame.source_start,
            source_end: frame.source_end,
            target_start: frame.target_start,
            target_end,
            runs,
            left_out: self.left_out,
            foreign: frame.foreign,
            to_timestamp: frame.to_timestamp,
        }
    }
}

/// Appends `run`, joined to the one before when it follows on at both ends.
fn push_run(runs: &mut Vec<Run>, run: Run) {
    if let Some(last) = runs.last_mut()
        && last.source_end() == run.source
        && last.target + last.count as i64 == run.target
    {
        last.count += run.count;
        return;
    }
    runs.push(run);
}

/// What frames a partition's map besides its records.
#[derive(Debug, Clone)]
pub struct Frame {
    pub source_topic: String,
    pub source_start: i64,
    pub source_end: i64,
    pub target_start: i64,
    pub foreign: Vec<[i64; 2]>,
    pub to_timestamp: Option<i64>,
}

/// Where the offset map of restoring one backup into one cluster lives:
/// beside that restore's journal.
#[derive(Clone)]
pub struct OffsetMapStore {
    files: RestoreFiles,
}

impl OffsetMapStore {
    /// The map of restoring `backup_id` into the cluster `cluster`, as an
    /// apply without `--shard` writes it.
    pub fn new(store: Store, backup_id: &str, cluster: &str) -> Self {
        Self {
            files: RestoreFiles::new(store, backup_id, cluster),
        }
    }

    /// The same map, written by `shard` into its own file.
    pub fn for_shard(self, shard: Option<Shard>) -> Self {
        Self {
            files: self.files.for_shard(shard),
        }
    }

    /// The file this run writes.
    pub fn display(&self) -> String {
        self.files.own_display(Kind::Offsets)
    }

    /// Every file's map joined ([`OffsetMap::union`]), each first kept to
    /// what `journal` (the restore's joined journal) records as restored
    /// ([`OffsetMap::retain_restored`]: an entry left from a restore whose
    /// journal was deleted since is no partition's, in any file); empty
    /// when nothing was restored into the cluster yet.
    pub async fn load(
        &self,
        journal: Option<&super::DataJournal>,
    ) -> Result<OffsetMap, DataJournalError> {
        let (own, others) = self.files.read_all(Kind::Offsets).await?;
        let own_path = self.display();
        let mut own = match own {
            Some(b) => parse(&own_path, &b)?,
            None => OffsetMap::new(),
        };
        own.retain_restored(journal);
        let others = others
            .into_iter()
            .map(|(path, b)| {
                let mut map = parse(&path, &b)?;
                map.retain_restored(journal);
                Ok((path, map))
            })
            .collect::<Result<Vec<_>, DataJournalError>>()?;
        OffsetMap::union(own, &own_path, others)
    }

    /// Writes this run's part of `map` ([`OffsetMap::own`]) to its file.
    pub async fn save(&self, map: &OffsetMap) -> Result<(), DataJournalError> {
        let mut bytes = serde_json::to_vec(&map.own()).expect("an offset map serializes");
        bytes.push(b'\n');
        self.files.write(Kind::Offsets, bytes).await
    }
}

/// One file's map, checked for its format.
fn parse(path: &str, bytes: &[u8]) -> Result<OffsetMap, DataJournalError> {
    let map: OffsetMap = serde_json::from_slice(bytes).map_err(|e| DataJournalError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if map.format != OFFSET_MAP_FORMAT {
        return Err(DataJournalError::Invalid {
            path: path.to_owned(),
            reason: format!("format `{}`, expected `{OFFSET_MAP_FORMAT}`", map.format),
        });
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Verdict = Verdict::Write { rewritten: 0 };

    fn frame(target_start: i64, foreign: Vec<[i64; 2]>) -> Frame {
        Frame {
            source_topic: "t".into(),
            source_start: 10,
            source_end: 40,
            target_start,
            foreign,
            to_timestamp: None,
        }
    }

    /// The map of `b` in `frame`, which must end at `end`: right after the
    /// last record.
    fn finished(b: Builder, frame: Frame, end: i64) -> PartitionOffsets {
        let map = b.finish(frame);
        assert_eq!(map.target_end, end, "{map:?}");
        map
    }

    /// Decides `offsets` in order, `skip` ones left out with `why`.
    fn build(offsets: &[i64], skip: &[(i64, Verdict)]) -> Builder {
        let mut b = Builder::default();
        let mut position = 0;
        for &o in offsets {
            match skip.iter().find(|(s, _)| *s == o) {
                Some((_, v)) => b.record(o, *v, position),
                None => {
                    position += 1;
                    b.record(o, W, position);
                }
            }
        }
        b
    }

    #[test]
    fn one_run_per_stretch_of_consecutive_offsets() {
        // backup offsets 10..15 and 20..23 (a compacted gap), restored from 0
        let offsets: Vec<i64> = (10..15).chain(20..23).collect();
        let map = finished(build(&offsets, &[]), frame(0, vec![]), 8);
        assert_eq!(
            map.runs,
            vec![
                Run {
                    source: 10,
                    target: 0,
                    count: 5
                },
                Run {
                    source: 20,
                    target: 5,
                    count: 3
                }
            ]
        );
        assert_eq!(map.records(), 8);
        // the next record to read, wherever the committed offset falls
        let t = |c| map.translate(c);
        assert_eq!(
            t(12),
            Translation {
                target: 2,
                how: How::Mapped
            }
        );
        assert_eq!(
            t(15),
            Translation {
                target: 5,
                how: How::Mapped
            },
            "in the gap: the next record"
        );
        assert_eq!(
            t(22),
            Translation {
                target: 7,
                how: How::Mapped
            }
        );
        assert_eq!(
            t(23),
            Translation {
                target: 8,
                how: How::End
            }
        );
        assert_eq!(
            t(40),
            Translation {
                target: 8,
                how: How::End
            }
        );
        assert_eq!(
            t(3),
            Translation {
                target: 0,
                how: How::BeforeStart
            }
        );
    }

    #[test]
    fn left_out_records_break_runs_and_are_listed() {
        let offsets: Vec<i64> = (10..20).collect();
        let skip = [
            (13, Verdict::SkipMissing { id: 7 }),
            (14, Verdict::SkipMissing { id: 7 }),
            (17, Verdict::SkipLater),
            (18, Verdict::SkipLater),
            (19, Verdict::SkipLater),
        ];
        let mut f = frame(100, vec![]);
        f.to_timestamp = Some(5);
        let map = finished(build(&offsets, &skip), f, 105);
        assert_eq!(
            map.runs
                .iter()
                .map(|r| <[i64; 3]>::from(*r))
                .collect::<Vec<_>>(),
            vec![[10, 100, 3], [15, 103, 2]]
        );
        assert_eq!(
            map.left_out,
            vec![
                LeftOut {
                    from: 13,
                    to: 14,
                    records: 2,
                    why: LeftOutWhy::MissingId
                },
                LeftOut {
                    from: 17,
                    to: 19,
                    records: 3,
                    why: LeftOutWhy::ToTimestamp
                }
            ]
        );
        // a record left out is not read: the next restored one is
        assert_eq!(map.translate(13).target, 103);
        // past the cut: clamped at the end of what was restored
        assert_eq!(
            map.translate(18),
            Translation {
                target: 105,
                how: How::Cut
            }
        );
        assert_eq!(
            map.translate(17),
            Translation {
                target: 105,
                how: How::Cut
            }
        );
        assert_eq!(
            map.translate(16),
            Translation {
                target: 104,
                how: How::Mapped
            }
        );
    }

    #[test]
    fn records_of_another_client_shift_what_follows_them() {
        // 6 records from target offset 50; another producer wrote 3 at 52..55
        let offsets: Vec<i64> = (10..16).collect();
        let map = finished(build(&offsets, &[]), frame(50, vec![[52, 55]]), 59);
        assert_eq!(
            map.runs
                .iter()
                .map(|r| <[i64; 3]>::from(*r))
                .collect::<Vec<_>>(),
            vec![[10, 50, 2], [12, 55, 4]]
        );
        assert_eq!(map.translate(12).target, 55);
        assert_eq!(
            map.translate(16),
            Translation {
                target: 59,
                how: How::End
            }
        );
        // foreign records before the first restored one
        let map = finished(build(&offsets, &[]), frame(50, vec![[50, 53]]), 59);
        assert_eq!(
            map.runs
                .iter()
                .map(|r| <[i64; 3]>::from(*r))
                .collect::<Vec<_>>(),
            vec![[10, 53, 6]]
        );
    }

    #[test]
    fn the_file_form_is_compact_and_reads_back() {
        let offsets: Vec<i64> = (10..13).collect();
        let mut map = OffsetMap::new();
        map.partitions
            .entry("t".into())
            .or_default()
            .insert(0, finished(build(&offsets, &[]), frame(0, vec![]), 3));
        let text = serde_json::to_string(&map).unwrap();
        assert!(text.contains(r#""runs":[[10,0,3]]"#), "{text}");
        assert_eq!(serde_json::from_str::<OffsetMap>(&text).unwrap(), map);
    }
}

#[cfg(test)]
mod model {
    //! The map against a brute-force model: every record's target offset
    //! worked out one by one, and "the first restored record at or after the
    //! committed offset, else right after the last one", over random backups
    //! (gaps), verdicts (left out) and other clients' records in between.
    use super::*;

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn the_map_agrees_with_record_by_record_placement() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000 {
            // the backup: offsets with gaps, each written or left out
            let mut offset = rng.below(20) as i64;
            let source_start = offset;
            let mut records = Vec::new();
            for _ in 0..rng.below(40) {
                offset += 1 + if rng.below(4) == 0 {
                    rng.below(5) as i64
                } else {
                    0
                };
                let verdict = match rng.below(6) {
                    0 => Verdict::SkipLater,
                    1 => Verdict::SkipMissing { id: 1 },
                    _ => Verdict::Write { rewritten: 0 },
                };
                records.push((offset, verdict));
            }
            // where they land: from target_start, past other clients' records
            let target_start = rng.below(10) as i64;
            let mut next = target_start;
            let mut foreign = Vec::new();
            let mut placed = Vec::new(); // (source, target) of written records
            let mut builder = Builder::default();
            let mut position = 0;
            for &(o, v) in &records {
                if v.writes() {
                    if rng.below(5) == 0 {
                        let n = 1 + rng.below(3) as i64;
                        foreign.push([next, next + n]);
                        next += n;
                    }
                    position += 1;
                    placed.push((o, next));
                    next += 1;
                }
                builder.record(o, v, position);
            }
            let map = builder.finish(Frame {
                source_topic: "t".into(),
                source_start,
                source_end: offset + 1,
                target_start,
                foreign,
                to_timestamp: None,
            });
            let end = placed.last().map_or(target_start, |p| p.1 + 1);
            assert_eq!(map.target_end, end, "case {case}");
            assert_eq!(map.records(), placed.len() as u64, "case {case}");
            for c in 0..offset + 3 {
                let want = placed
                    .iter()
                    .find(|(s, _)| *s >= c)
                    .map_or(end, |(_, t)| *t);
                assert_eq!(
                    map.translate(c).target,
                    want,
                    "case {case}, committed {c}: {map:?}"
                );
            }
            // every written record is at its own target offset
            for &(s, t) in &placed {
                assert_eq!(map.translate(s).target, t, "case {case}, record {s}");
            }
        }
    }
}
