//! Backing up one topic-partition: consume `[low, high)` as it was when the
//! backup started, cut it into segments, store each one as soon as it is full,
//! and count the schema IDs the keys and values carry. Memory is one segment
//! per partition worker, whatever the partition's size.
//!
//! `high` is the `read_uncommitted` end offset, so it counts the records of
//! transactions still open when the backup started; the consumer reads
//! `read_committed` and stops at the last stable offset until they finish.
//! It waits for them up to [`PartitionJob::transaction_wait`], then reports
//! where it stopped ([`Consumed::left_out_from`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

use crate::kafka::{self, Cluster, EofIsNormal};
use crate::manifest::{FileEntry, PartitionManifest, RecordIds, SegmentEntry};
use crate::segment::{RawSegment, RecordRef, SegmentWriter, TimestampType};
use crate::storage::Store;

use super::BackupError;

/// How a partition is cut and how long a silent broker is waited for.
#[derive(Debug, Clone)]
pub struct PartitionJob {
    pub topic: String,
    pub partition: i32,
    pub low: i64,
    /// Where taking records starts when nothing is stored yet: `low`, or in
    /// an incremental backup where the parent's records end (when past `low`).
    pub first: i64,
    /// In an incremental backup: where the parent's records of the partition
    /// end (recorded in the manifest).
    pub continues_from: Option<i64>,
    /// The `read_uncommitted` end offset read before the registry snapshot.
    pub high: i64,
    /// The `read_committed` end offset read with it (`<= high`).
    pub last_stable: i64,
    /// How long to wait, once the consumer is stopped by an open transaction
    /// below `high`, for that transaction to finish.
    pub transaction_wait: Duration,
    /// A segment is closed once its keys, values and headers pass this size.
    pub segment_bytes: u64,
    pub zstd_level: i32,
    /// Give up when the broker sends nothing for this long.
    pub stall_timeout: Duration,
}

/// Counters shared with the progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
}

/// What is already stored of a partition when a worker takes it on: the
/// chain of segments from the low watermark (none for a fresh start), and
/// the framing their records carry. Consuming goes on after the last one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    pub segments: Vec<SegmentEntry>,
    pub schema_ids: RecordIds,
}

impl Stored {
    /// The offset consuming starts at: after the last stored segment.
    pub fn next_offset(&self, low: i64) -> i64 {
        self.segments.last().map_or(low, |s| s.meta.last_offset + 1)
    }
}

/// A partition backed up to its end: its manifest entry and the files it stored.
pub type Done = (PartitionManifest, Vec<(String, FileEntry)>);

/// Relative path of a segment inside the backup folder.
pub fn segment_path(topic: &str, partition: i32, first: i64, last: i64) -> String {
    format!("kafka/{topic}/{partition}/{first:020}-{last:020}.seg.zst")
}

/// Runs on a blocking thread: rdkafka's consumer is synchronous, stores are
/// reached through the runtime handle. The consumer fills one segment while a
/// second thread compresses, hashes and stores the previous one, so at most
/// three segments of a partition are in memory (filling, queued, storing).
///
/// Consuming starts after what `stored` holds. Once `stop` is set (the
/// partition was revoked from this worker), it stops within a poll: the
/// segments already closed are stored, the one being filled is dropped, and
/// the result is `None`; the next owner goes on after the last stored one.
#[allow(clippy::too_many_arguments)]
pub fn backup_partition(
    cluster: &Cluster,
    store: &Store,
    backup_id: &str,
    job: &PartitionJob,
    stored: Stored,
    progress: &Arc<Progress>,
    runtime: &tokio::runtime::Handle,
    stop: &AtomicBool,
) -> Result<Option<Done>, BackupError> {
    let start = stored.next_offset(job.first);
    let mut manifest = PartitionManifest {
        low_watermark: job.low,
        high_watermark: job.high,
        last_stable_offset: Some(job.last_stable),
        left_out_from: None,
        continues_from: job.continues_from,
        record_count: 0,
        segments: Vec::new(),
        schema_ids: RecordIds::default(),
    };
    let mut files = Vec::new();
    for entry in stored.segments {
        manifest.record_count += entry.meta.record_count;
        files.push((
            entry.path.clone(),
            FileEntry {
                size: entry.meta.size,
                sha256: entry.meta.sha256.clone(),
            },
        ));
        manifest.segments.push(entry);
    }
    manifest.schema_ids = stored.schema_ids;
    if job.high <= start {
        return Ok(Some((manifest, files)));
    }
    let (segments, closed) = std::sync::mpsc::sync_channel::<RawSegment>(1);
    let (consumed, stored) = std::thread::scope(|scope| {
        let storer = scope.spawn(move || {
            let mut stored = Vec::new();
            for raw in closed {
                stored.push(store_segment(store, backup_id, job, raw, runtime)?);
            }
            Ok::<_, BackupError>(stored)
        });
        let consumed = consume(cluster, job, start, progress, &segments, stop);
        drop(segments);
        let stored = storer.join().map_err(|_| {
            BackupError::Task(format!(
                "the segment writer of `{}` {} panicked",
                job.topic, job.partition
            ))
        })?;
        Ok::<_, BackupError>((consumed, stored))
    })?;
    // a storage error explains a consumer that stopped because the storer did
    let stored = stored?;
    let consumed = consumed?;
    if consumed.stopped {
        return Ok(None);
    }
    manifest.schema_ids.merge(&consumed.schema_ids);
    manifest.left_out_from = consumed.left_out_from;
    for entry in stored {
        manifest.record_count += entry.meta.record_count;
        files.push((
            entry.path.clone(),
            FileEntry {
                size: entry.meta.size,
                sha256: entry.meta.sha256.clone(),
            },
        ));
        manifest.segments.push(entry);
    }
    Ok(Some((manifest, files)))
}

/// What consuming a partition gave besides its segments.
#[derive(Debug, Default)]
pub struct Consumed {
    /// The framing and schema IDs of the records taken.
    pub schema_ids: RecordIds,
    /// `Some(offset)` when a transaction was still open after the wait:
    /// records from `offset` up to `high` were not taken.
    pub left_out_from: Option<i64>,
    /// Stopped from outside before the end: the records after the last
    /// segment handed over were dropped.
    pub stopped: bool,
}

/// Where the consumer stands once librdkafka says it reached the end of what
/// it may read (`read_committed`: the last stable offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEnd {
    /// Everything below `high` was read.
    Done,
    /// A transaction below `high` is still open: wait for it.
    Blocked,
    /// The transaction finished after the consumer reached the end it had
    /// then: read again from the position, knowing the end is now past `high`.
    Reread,
}

/// What to do at an end-of-partition, from the consumer's position
/// (`next`: the offset after the last record or transaction marker it
/// passed), an offset every end this consumer signals is known to be at
/// or past (`floor`: the last stable offset read before it fetched), and
/// the last stable offset just read (`lso_now`).
pub fn at_end(next: i64, high: i64, floor: i64, lso_now: i64) -> AtEnd {
    if next >= high || floor >= high {
        // an end at or past `high` was reached: what lies below it and was
        // not delivered is not committed data (aborted, markers, compacted)
        AtEnd::Done
    } else if lso_now >= high {
        AtEnd::Reread
    } else {
        AtEnd::Blocked
    }
}

/// How long one poll waits for a record.
const POLL: Duration = Duration::from_millis(500);

/// Reads `[start, high)` and hands each full segment to `segments`.
fn consume(
    cluster: &Cluster,
    job: &PartitionJob,
    start: i64,
    progress: &Progress,
    segments: &std::sync::mpsc::SyncSender<RawSegment>,
    stop: &AtomicBool,
) -> Result<Consumed, BackupError> {
    let kafka_err = |reason: String| BackupError::Consume {
        topic: job.topic.clone(),
        partition: job.partition,
        reason,
    };
    let mut consumer = open_consumer(cluster, job, start)?;
    // made only when an open transaction may be in the way
    let mut lso_reader: Option<BaseConsumer> = None;

    // a segment holds at most `segment_bytes` before compression (a larger
    // record alone), so its buffer, allocated once, never grows
    let limit = usize::try_from(job.segment_bytes).unwrap_or(usize::MAX);
    let capacity = limit.min(64 << 20);
    let mut writer = SegmentWriter::with_capacity(capacity);
    let hand_over = |writer: SegmentWriter| {
        segments
            .send(writer.finish())
            .map_err(|_| kafka_err("the segment writer stopped".into()))
    };
    let mut out = Consumed::default();
    // since when polls have come back empty (no clock read per record)
    let mut idle_since: Option<Instant> = None;
    let last_wanted = job.high - 1;
    // the offset after the last record delivered
    let mut next = start;
    // every end-of-partition from now on is at least at this offset
    let mut floor = job.last_stable;
    // since when an open transaction holds the consumer back
    let mut blocked_since: Option<Instant> = None;
    let position = |consumer: &BaseConsumer<EofIsNormal>, next: i64| -> i64 {
        // librdkafka's position also moves past transaction markers
        let tpl = consumer.position().ok();
        let reported = tpl
            .as_ref()
            .and_then(|t| t.find_partition(&job.topic, job.partition))
            .and_then(|p| match p.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        reported.map_or(next, |o| o.max(next))
    };
    let mut lso = || -> Result<i64, BackupError> {
        let reader = match &mut lso_reader {
            Some(reader) => reader,
            empty => empty.insert(
                cluster
                    .watermark_consumer(true)
                    .map_err(|e| kafka_err(e.to_string()))?,
            ),
        };
        kafka::watermarks(reader, &job.topic, job.partition)
            .map(|(_, lso)| lso)
            .map_err(|e| kafka_err(e.to_string()))
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            out.stopped = true;
            return Ok(out);
        }
        let polled = consumer.poll(POLL);
        let at_partition_end = match &polled {
            None => blocked_since.is_some(),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => true,
            Some(_) => false,
        };
        if at_partition_end {
            drop(polled);
            let here = position(&consumer, next);
            // the last stable offset matters only while the end may be short of `high`
            let lso_now = if here < job.high && floor < job.high {
                lso()?
            } else {
                floor
            };
            let decision = at_end(here, job.high, floor, lso_now);
            match decision {
                AtEnd::Done => break,
                AtEnd::Reread => {
                    // the end moved past `high` after this consumer reached
                    // the one it had: a new consumer from the position only
                    // sees ends at or past `high` (librdkafka signals an end
                    // once per end offset, so the old one might stay silent)
                    consumer = open_consumer(cluster, job, here)?;
                    floor = job.high;
                    blocked_since = None;
                    idle_since = None;
                    continue;
                }
                AtEnd::Blocked => {
                    let since = *blocked_since.get_or_insert_with(|| {
                        tracing::warn!(
                            topic = job.topic,
                            partition = job.partition,
                            offset = here,
                            high = job.high,
                            wait_secs = job.transaction_wait.as_secs(),
                            "an open transaction holds the backup back: waiting for it"
                        );
                        Instant::now()
                    });
                    if since.elapsed() >= job.transaction_wait {
                        out.left_out_from = Some(here);
                        break;
                    }
                    continue;
                }
            }
        }
        let Some(polled) = polled else {
            // the first empty poll already waited for its timeout
            let since = *idle_since.get_or_insert_with(|| {
                let now = Instant::now();
                now.checked_sub(POLL).unwrap_or(now)
            });
            if since.elapsed() > job.stall_timeout {
                return Err(kafka_err(format!(
                    "no record for {}s while offsets up to {last_wanted} were expected\nhint: is the broker up? was the partition truncated meanwhile?",
                    job.stall_timeout.as_secs()
                )));
            }
            continue;
        };
        idle_since = None;
        let message = match polled {
            Ok(m) => m,
            Err(e) => return Err(kafka_err(e.to_string())),
        };
        if message.offset() > last_wanted {
            break;
        }
        blocked_since = None;
        next = message.offset() + 1;
        let (timestamp, timestamp_type) = match message.timestamp() {
            Timestamp::NotAvailable => (None, TimestampType::NotAvailable),
            Timestamp::CreateTime(t) => (Some(t), TimestampType::CreateTime),
            Timestamp::LogAppendTime(t) => (Some(t), TimestampType::LogAppendTime),
        };
        let headers = crate::kafka::headers::borrowed(&message);
        out.schema_ids.key.observe(message.key());
        out.schema_ids.value.observe(message.payload());
        let record = RecordRef {
            offset: message.offset(),
            timestamp,
            timestamp_type,
            key: message.key(),
            value: message.payload(),
            headers: &headers,
        };
        if !writer.fits(&record, limit) {
            // the next buffer only once the full one is taken: never a fifth
            // segment buffer per partition while the storer is busy
            hand_over(std::mem::take(&mut writer))?;
            writer = SegmentWriter::with_capacity(capacity);
        }
        let before = writer.payload_bytes();
        writer.push(&record).map_err(|e| kafka_err(e.to_string()))?;
        progress.records.fetch_add(1, Ordering::Relaxed);
        progress
            .bytes
            .fetch_add(writer.payload_bytes() - before, Ordering::Relaxed);
        if message.offset() >= last_wanted {
            break;
        }
    }
    if !writer.is_empty() {
        hand_over(writer)?;
    }
    Ok(out)
}

/// A `read_committed` consumer of the job's partition from `offset` on.
fn open_consumer(
    cluster: &Cluster,
    job: &PartitionJob,
    offset: i64,
) -> Result<BaseConsumer<EofIsNormal>, BackupError> {
    let kafka_err = |reason: String| BackupError::Consume {
        topic: job.topic.clone(),
        partition: job.partition,
        reason,
    };
    let consumer: BaseConsumer<EofIsNormal> = cluster
        .client_config(&[
            ("group.id", "kafka-backup"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            ("auto.offset.reset", "error"),
        ])
        // whatever the user's properties say: aborted records are never backed up
        .set("isolation.level", "read_committed")
        .create_with_context(EofIsNormal)
        .map_err(|e| kafka_err(crate::kafka::redact_config_error(e).to_string()))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&job.topic, job.partition, Offset::Offset(offset))
        .map_err(|e| kafka_err(e.to_string()))?;
    consumer
        .assign(&assignment)
        .map_err(|e| kafka_err(e.to_string()))?;
    Ok(consumer)
}

/// Compresses, hashes and stores one segment.
fn store_segment(
    store: &Store,
    backup_id: &str,
    job: &PartitionJob,
    raw: RawSegment,
    runtime: &tokio::runtime::Handle,
) -> Result<SegmentEntry, BackupError> {
    let relative = segment_path(
        &job.topic,
        job.partition,
        raw.first_offset(),
        raw.last_offset(),
    );
    // sealed when the location has a key: the manifest describes the file as stored
    let sealed_at = format!("{backup_id}/{relative}");
    let segment = raw
        .compress_then(job.zstd_level, |bytes| store.seal(&sealed_at, bytes))
        .map_err(|e| BackupError::Consume {
            topic: job.topic.clone(),
            partition: job.partition,
            reason: format!("compressing `{relative}`: {e}"),
        })?;
    let full = store.path(&format!("{backup_id}/{relative}"));
    runtime
        .block_on(
            store
                .object_store()
                .put(&full, PutPayload::from(Bytes::from(segment.bytes))),
        )
        .map_err(|source| BackupError::Storage {
            path: format!("{backup_id}/{relative}"),
            source,
        })?;
    let metrics = crate::metrics::global();
    let topic = metrics.topic(&job.topic);
    metrics
        .records
        .get_or_create(&topic)
        .inc_by(segment.meta.record_count);
    metrics
        .bytes
        .get_or_create(&topic)
        .inc_by(segment.meta.uncompressed_bytes);
    metrics
        .lag
        .get_or_create(&topic)
        .dec_by(i64::try_from(segment.meta.record_count).unwrap_or(i64::MAX));
    metrics.segments.inc();
    Ok(SegmentEntry {
        path: relative,
        meta: segment.meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_partition_is_done_only_past_high() {
        // no transaction open at the start: the first end is past `high`
        assert_eq!(at_end(100, 100, 100, 100), AtEnd::Done);
        // markers or compaction left the position short, but the end was past high
        assert_eq!(at_end(97, 100, 100, 100), AtEnd::Done);
        // an open transaction from 90 on, still open
        assert_eq!(at_end(90, 100, 90, 90), AtEnd::Blocked);
        // ... open with more records after it (the LSO did not move)
        assert_eq!(at_end(90, 100, 90, 95), AtEnd::Blocked);
        // it finished after the consumer stopped at 90: read again from 90
        assert_eq!(at_end(90, 100, 90, 120), AtEnd::Reread);
        // the new consumer's end is past high
        assert_eq!(at_end(95, 100, 100, 120), AtEnd::Done);
        // the consumer read through the finished transaction itself
        assert_eq!(at_end(100, 100, 90, 90), AtEnd::Done);
    }

    #[test]
    fn field_ids_count_framing_and_ids_from_the_first_five_bytes() {
        let mut f = crate::manifest::FieldIds::default();
        f.observe(None);
        f.observe(Some(b""));
        f.observe(Some(&[0, 0, 0, 0, 7]));
        f.observe(Some(&[0, 0, 0, 0, 7, 1, 2, 3]));
        f.observe(Some(&[0, 0, 0, 0])); // too short to be framed
        f.observe(Some(&[1, 0, 0, 0, 7]));
        f.observe(Some(&[0, 0xff, 0xff, 0xff, 0xff])); // -1
        f.observe(Some(&[0, 0, 0, 1, 0]));
        assert_eq!(f.non_null, 7);
        assert_eq!(f.framed, 4);
        assert_eq!(f.unframed(), 3);
        assert!(!f.all_framed());
        let ids: Vec<(i32, u64)> = f.ids.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(ids, vec![(-1, 1), (7, 2), (256, 1)]);
        let mut sum = crate::manifest::FieldIds::default();
        sum.merge(&f);
        sum.merge(&f);
        assert_eq!(sum.framed, 8);
        assert_eq!(sum.ids[&7], 4);
        let json = serde_json::to_string(&sum).unwrap();
        assert_eq!(
            json,
            r#"{"non_null":14,"framed":8,"ids":{"-1":2,"7":4,"256":2}}"#
        );
        let back: crate::manifest::FieldIds = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sum);
    }
}
