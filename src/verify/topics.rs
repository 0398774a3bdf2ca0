//! The data half of `verify`: each restored partition against its backup.
//!
//! Per partition, the backup's segments are read in offset order (each
//! checked against the manifest), every record goes through the topic's
//! [`Transform`] exactly as the restore's did, and each record the restore
//! meant to write is compared with the next record of the target partition,
//! from where the restore began (the restore journal's `target_start`, else
//! the partition's low watermark) to its high watermark. Both sides also go
//! into a [`StreamDigest`], so that the table can show one SHA-256 per side.
//!
//! Memory is one segment and one fetched batch per worker, whatever the
//! partition's size: nothing holds a partition.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use super::{Area, Difference};
use crate::kafka::{self, Cluster, EofIsNormal, KafkaError, REQUEST_TIMEOUT};
use crate::manifest::{BackupReader, PartitionManifest, ReadError};
use crate::restore::target::{self, ReadBackError, TargetReader, record_difference};
use crate::restore::transform::{StreamDigest, Verdict};
use crate::restore::{DataJournal, TopicJob};
use crate::segment::{Record, SegmentError, SegmentReader, TimestampType};

/// Why the topics could not be compared (as opposed to: they differ).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Backup(#[from] ReadError),
    #[error(
        "segment `{path}` ({topic} partition {partition}) is unreadable: {source}\nhint: the backup is damaged; `kafka-backup describe --verify-files` checks every file"
    )]
    Segment {
        path: String,
        topic: String,
        partition: i32,
        source: SegmentError,
    },
    #[error(transparent)]
    ReadBack(#[from] ReadBackError),
}

/// One restored partition, compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionCheck {
    /// Backed-up topic.
    pub source_topic: String,
    /// Topic in the target.
    pub target_topic: String,
    pub partition: i32,
    /// Records in the backup.
    pub backup_records: u64,
    /// Of those, what the restore writes (after `--to-timestamp` and the
    /// missing-ID policy).
    pub expected_records: u64,
    /// Records in the target from `target_start` on; `None` when the target
    /// has no such partition.
    pub target_records: Option<u64>,
    /// Where the restored records start in the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_start: Option<i64>,
    /// SHA-256 of the expected records, normalised ([`StreamDigest`]).
    pub backup_sha256: String,
    /// SHA-256 of the target's records, normalised the same way.
    pub target_sha256: String,
    /// Records compared and found different (besides missing or extra ones).
    pub differing_records: u64,
    /// What differs; empty when the partition matches.
    pub differences: Vec<Difference>,
}

impl PartitionCheck {
    pub fn same(&self) -> bool {
        self.differences.is_empty()
    }
}

/// The topics half of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopicsCheck {
    /// Per partition, in target topic then partition order.
    pub partitions: Vec<PartitionCheck>,
    /// Differences of whole topics (missing, too few partitions).
    pub differences: Vec<Difference>,
}

/// One partition to compare.
struct Work<'j> {
    job: &'j TopicJob,
    partition: i32,
    manifest: &'j PartitionManifest,
    /// `None`: the target has no such partition.
    start: Option<i64>,
    /// The target has the topic (if not the partition).
    topic_exists: bool,
}

/// Compares every job's partitions with the target, `concurrency` at once.
/// `journal` is the restore journal of this backup into this cluster, if a
/// restore wrote one. Storage reads go through `runtime`; call this outside
/// of it (it blocks).
pub fn check(
    cluster: &Cluster,
    reader: &BackupReader,
    jobs: &[TopicJob],
    journal: Option<&DataJournal>,
    concurrency: usize,
    runtime: &tokio::runtime::Handle,
) -> Result<TopicsCheck, VerifyError> {
    let mut out = TopicsCheck::default();
    let metadata = cluster.metadata_consumer()?;
    let existing = kafka::layout(&metadata, cluster)?.topics;
    let mut work = Vec::new();
    for job in jobs {
        let found = existing.get(&job.target).copied();
        if let Some(n) = found
            && n < job.manifest.partition_count as usize
        {
            out.differences.push(
                Difference::new(
                    Area::Topics,
                    format!(
                        "topic `{}` has {n} partition(s) in the target, the backup of `{}` has {}",
                        job.target, job.source, job.manifest.partition_count
                    ),
                )
                .topic(&job.target),
            );
        }
        for (&partition, manifest) in &job.manifest.partitions {
            let present = found.is_some_and(|n| (partition as usize) < n);
            let start = if present {
                let (low, _) = kafka::watermarks(&metadata, &job.target, partition)?;
                Some(
                    journal
                        .and_then(|j| j.get(&job.target, partition))
                        .map_or(low, |p| p.target_start),
                )
            } else {
                None
            };
            work.push(Work {
                job,
                partition,
                manifest,
                start,
                topic_exists: found.is_some(),
            });
        }
    }
    drop(metadata);

    let queue = Mutex::new(work.iter());
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<PartitionCheck>> = Mutex::new(Vec::new());
    let workers = concurrency.clamp(1, 64).min(work.len().max(1));
    let first_error: Mutex<Option<VerifyError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let run = || -> Result<(), VerifyError> {
                    let consumer = target::consumer(cluster)?;
                    while !stop.load(Ordering::Relaxed) {
                        let next = queue.lock().expect("queue lock").next();
                        let Some(w) = next else { break };
                        let checked = check_partition(&consumer, reader, runtime, w)?;
                        tracing::info!(
                            topic = %w.job.target,
                            partition = w.partition,
                            same = checked.same(),
                            "partition compared"
                        );
                        results.lock().expect("results lock").push(checked);
                    }
                    Ok(())
                };
                if let Err(e) = run() {
                    stop.store(true, Ordering::Relaxed);
                    first_error.lock().expect("error lock").get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error lock") {
        return Err(e);
    }
    out.partitions = results.into_inner().expect("results lock");
    out.partitions.sort_by(|a, b| {
        (&a.target_topic, a.partition, &a.source_topic).cmp(&(
            &b.target_topic,
            b.partition,
            &b.source_topic,
        ))
    });
    Ok(out)
}

fn check_partition(
    consumer: &BaseConsumer<EofIsNormal>,
    reader: &BackupReader,
    runtime: &tokio::runtime::Handle,
    w: &Work<'_>,
) -> Result<PartitionCheck, VerifyError> {
    let (job, partition) = (w.job, w.partition);
    let target = job.target.as_str();
    let at = |d: Difference| d.partition(target, partition);
    let mut differences = Vec::new();

    // the target side: assigned at the start, read up to today's high watermark
    let mut stream = match w.start {
        Some(start) => {
            let (low, high) = consumer
                .fetch_watermarks(target, partition, REQUEST_TIMEOUT)
                .map_err(|source| KafkaError::Watermarks {
                    topic: target.to_owned(),
                    partition,
                    source,
                })?;
            let mut from = start;
            if low > start {
                differences.push(at(Difference::new(
                    Area::Topics,
                    format!(
                        "`{target}` partition {partition}: the restore began at offset {start}, the target now begins at {low} (records deleted since)"
                    ),
                )));
                from = low;
            }
            Some(TargetReader::new(consumer, target, partition, from, high)?)
        }
        None => None,
    };

    let mut backup_digest = StreamDigest::new();
    let mut target_digest = StreamDigest::new();
    let mut backup_records = 0u64;
    let mut expected = 0u64;
    let mut differing = 0u64;
    let mut paired = 0u64;
    let mut first_difference: Option<Difference> = None;
    let mut missing_from: Option<(i64, u64)> = None; // backup offset, position
    let mut missing_id: Option<Difference> = None;
    for segment in &w.manifest.segments {
        let stored = runtime.block_on(reader.read_stored(&segment.path))?;
        let segment_err = |source| VerifyError::Segment {
            path: segment.path.clone(),
            topic: job.source.clone(),
            partition,
            source,
        };
        let mut records = SegmentReader::new(stored.reader()?).map_err(segment_err)?;
        while let Some(mut record) = records.next_record().map_err(segment_err)? {
            backup_records += 1;
            let backup_offset = record.offset;
            match job.transform.apply(&mut record) {
                Verdict::Write { .. } => {}
                Verdict::SkipLater | Verdict::SkipMissing { .. } => continue,
                Verdict::Missing { id } => {
                    missing_id.get_or_insert_with(|| {
                        at(Difference::new(
                            Area::Topics,
                            format!(
                                "the record at `{}` partition {partition} offset {backup_offset} carries schema ID {id}, which is not in the ID map (`missing_id_policy: fail`): the restore cannot have written it",
                                job.source
                            ),
                        ))
                    });
                    continue;
                }
            }
            expected += 1;
            backup_digest.add_record(&record);
            let got = match stream.as_mut() {
                Some(s) => s.next_record()?,
                None => None,
            };
            let Some(got) = got else {
                missing_from.get_or_insert((backup_offset, expected));
                continue;
            };
            paired += 1;
            add_target(&mut target_digest, &got, Some(&record));
            if let Some(what) = record_difference(&record, &got) {
                differing += 1;
                first_difference.get_or_insert_with(|| {
                    at(Difference::new(
                        Area::Topics,
                        format!(
                            "`{target}` partition {partition} offset {}: {what} (the record from `{}` offset {backup_offset})",
                            got.offset, job.source
                        ),
                    ))
                    .offset(got.offset)
                });
            }
        }
    }
    // what the target holds beyond the backup
    let mut extra_from = None;
    if let Some(s) = stream.as_mut() {
        while let Some(got) = s.next_record()? {
            extra_from.get_or_insert(got.offset);
            add_target(&mut target_digest, &got, None);
        }
    }
    let target_records = stream.as_ref().map(|s| s.read);

    if let Some(d) = missing_id {
        differences.push(d);
    }
    if let Some(mut d) = first_difference {
        if differing > 1 {
            d.message
                .push_str(&format!("; {differing} record(s) differ in all"));
        }
        differences.push(d);
    }
    match (target_records, stream.as_ref()) {
        (Some(read), Some(s)) => {
            if let Some((backup_offset, position)) = missing_from {
                differences.push(
                    at(Difference::new(
                        Area::Topics,
                        format!(
                            "`{target}` partition {partition} holds {read} restored record(s), {expected} expected: it ends at offset {}, where record {position} (from `{}` offset {backup_offset}) belongs; {} record(s) missing",
                            s.high,
                            job.source,
                            expected - paired
                        ),
                    ))
                    .offset(s.high),
                );
            }
            if let Some(offset) = extra_from {
                differences.push(
                    at(Difference::new(
                        Area::Topics,
                        format!(
                            "`{target}` partition {partition} holds {read} restored record(s), {expected} expected: {} more from offset {offset}, which the backup does not have",
                            read - paired
                        ),
                    ))
                    .offset(offset),
                );
            }
        }
        // the restore creates every partition, empty ones too
        _ => differences.push(at(Difference::new(
            Area::Topics,
            format!(
                "`{target}` partition {partition} is not in the target ({}): {expected} record(s) expected",
                if w.topic_exists {
                    "the topic has fewer partitions"
                } else {
                    "no such topic"
                }
            ),
        ))),
    }
    let (backup_sha256, target_sha256) = (backup_digest.hex(), target_digest.hex());
    if differences.is_empty() && backup_sha256 != target_sha256 {
        // cannot happen while the record comparison and the digest see the
        // same parts; the stream hash is the last word
        differences.push(at(Difference::new(
            Area::Topics,
            format!(
                "`{target}` partition {partition}: the stream SHA-256 differs though no record does"
            ),
        )));
    }
    Ok(PartitionCheck {
        source_topic: job.source.clone(),
        target_topic: job.target.clone(),
        partition,
        backup_records,
        expected_records: expected,
        target_records,
        target_start: w.start,
        backup_sha256,
        target_sha256,
        differing_records: differing,
        differences,
    })
}

/// Adds a target record to its stream digest. A timestamp the backup did
/// not have as a producer's (log-append time, none) is not the restore's to
/// keep: the paired backup record says so, and the target's is left out.
fn add_target(digest: &mut StreamDigest, got: &Record, paired: Option<&Record>) {
    let timestamp_type = match paired {
        Some(b) if b.timestamp_type != TimestampType::CreateTime => TimestampType::NotAvailable,
        _ => got.timestamp_type,
    };
    digest.add(
        got.timestamp,
        timestamp_type,
        got.key.as_deref(),
        got.value.as_deref(),
        got.headers.iter().map(|(n, v)| (n, v.as_ref())),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8]) -> Record {
        Record {
            offset: 3,
            timestamp: Some(1_000),
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"k".to_vec()),
            value: Some(value.to_vec()),
            headers: vec![(b"trace".to_vec(), Some(b"t1".to_vec()))],
        }
    }

    #[test]
    fn equal_records_differ_in_nothing_but_their_offsets() {
        let a = record(&[0, 0, 0, 0, 2, 7]);
        let mut b = a.clone();
        b.offset = 99;
        assert_eq!(record_difference(&a, &b), None);
    }

    #[test]
    fn the_first_differing_part_and_byte_are_named() {
        let a = record(&[0, 0, 0, 0, 2, 7]);
        type Change = fn(&mut Record);
        let cases: [(Change, &str); 8] = [
            (
                |r| r.value.as_mut().unwrap()[5] = 8,
                "value differs at byte 5 (0x08, the backup's 0x07)",
            ),
            (
                |r| r.value.as_mut().unwrap()[4] = 3,
                "value differs at byte 4 (0x03, the backup's 0x02; schema ID 3 where 2 was expected)",
            ),
            (
                |r| r.value.as_mut().unwrap().push(1),
                "value has 7 byte(s), the backup's 6 (the same up to there)",
            ),
            (|r| r.key = None, "key is null, the backup's is not"),
            (
                |r| r.timestamp = Some(1_001),
                "timestamp 1001 (create time), the backup has 1000 (create time)",
            ),
            (
                |r| r.headers.push((b"x".to_vec(), None)),
                "2 header(s), the backup has 1",
            ),
            (
                |r| r.headers[0].0 = b"other".to_vec(),
                "header 1 is named `other`, the backup's `trace`",
            ),
            (
                |r| r.headers[0].1 = None,
                "header `trace` is null, the backup's is not",
            ),
        ];
        for (change, expected) in cases {
            let mut b = a.clone();
            change(&mut b);
            assert_eq!(record_difference(&a, &b).as_deref(), Some(expected));
        }
    }

    #[test]
    fn a_timestamp_the_broker_chose_is_not_compared_and_not_hashed() {
        let mut a = record(b"v");
        a.timestamp_type = TimestampType::LogAppendTime;
        let mut b = a.clone();
        b.timestamp = Some(5_000);
        b.timestamp_type = TimestampType::CreateTime;
        assert_eq!(record_difference(&a, &b), None);
        let (mut da, mut db) = (StreamDigest::new(), StreamDigest::new());
        da.add_record(&a);
        add_target(&mut db, &b, Some(&a));
        assert_eq!(da.hex(), db.hex());

        // a create time the target replaced by its own append time is a difference
        let a = record(b"v");
        let mut b = a.clone();
        b.timestamp_type = TimestampType::LogAppendTime;
        assert!(record_difference(&a, &b).is_some());
        let (mut da, mut db) = (StreamDigest::new(), StreamDigest::new());
        da.add_record(&a);
        add_target(&mut db, &b, Some(&a));
        assert_ne!(da.hex(), db.hex());
    }
}
