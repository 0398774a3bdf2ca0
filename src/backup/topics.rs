//! Backing up one topic-partition: consume `[low, high)` as it was when the
//! backup started, cut it into segments, store each one as soon as it is full.
//! Memory is one segment per partition worker, whatever the partition's size.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

use crate::kafka::{Cluster, EofIsNormal};
use crate::manifest::{FileEntry, PartitionManifest, SegmentEntry};
use crate::segment::{RawSegment, RecordRef, SegmentWriter, TimestampType};
use crate::storage::Store;

use super::BackupError;

/// How a partition is cut and how long a silent broker is waited for.
#[derive(Debug, Clone)]
pub struct PartitionJob {
    pub topic: String,
    pub partition: i32,
    pub low: i64,
    pub high: i64,
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

/// Relative path of a segment inside the backup folder.
pub fn segment_path(topic: &str, partition: i32, first: i64, last: i64) -> String {
    format!("kafka/{topic}/{partition}/{first:020}-{last:020}.seg.zst")
}

/// Runs on a blocking thread: rdkafka's consumer is synchronous, stores are
/// reached through the runtime handle. The consumer fills one segment while a
/// second thread compresses, hashes and stores the previous one, so at most
/// three segments of a partition are in memory (filling, queued, storing).
pub fn backup_partition(
    cluster: &Cluster,
    store: &Store,
    backup_id: &str,
    job: &PartitionJob,
    progress: &Arc<Progress>,
    runtime: &tokio::runtime::Handle,
) -> Result<(PartitionManifest, Vec<(String, FileEntry)>), BackupError> {
    let mut manifest = PartitionManifest {
        low_watermark: job.low,
        high_watermark: job.high,
        record_count: 0,
        segments: Vec::new(),
    };
    if job.high <= job.low {
        return Ok((manifest, Vec::new()));
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
        let consumed = consume(cluster, job, progress, &segments);
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
    consumed?;
    let mut files = Vec::with_capacity(stored.len());
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
    Ok((manifest, files))
}

/// Reads `[low, high)` and hands each full segment to `segments`.
fn consume(
    cluster: &Cluster,
    job: &PartitionJob,
    progress: &Progress,
    segments: &std::sync::mpsc::SyncSender<RawSegment>,
) -> Result<(), BackupError> {
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
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "error"),
        ])
        .create_with_context(EofIsNormal)
        .map_err(|e| kafka_err(e.to_string()))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&job.topic, job.partition, Offset::Offset(job.low))
        .map_err(|e| kafka_err(e.to_string()))?;
    consumer
        .assign(&assignment)
        .map_err(|e| kafka_err(e.to_string()))?;

    let capacity = usize::try_from(job.segment_bytes)
        .unwrap_or(usize::MAX)
        .min(64 << 20);
    let mut writer = SegmentWriter::with_capacity(capacity);
    let hand_over = |writer: SegmentWriter| {
        segments
            .send(writer.finish())
            .map_err(|_| kafka_err("the segment writer stopped".into()))
    };
    let mut last_seen = Instant::now();
    let last_wanted = job.high - 1;
    loop {
        let Some(polled) = consumer.poll(Duration::from_millis(500)) else {
            if last_seen.elapsed() > job.stall_timeout {
                return Err(kafka_err(format!(
                    "no record for {}s while offsets up to {last_wanted} were expected\nhint: is the broker up? was the partition truncated meanwhile?",
                    job.stall_timeout.as_secs()
                )));
            }
            continue;
        };
        last_seen = Instant::now();
        let message = match polled {
            Ok(m) => m,
            Err(rdkafka::error::KafkaError::PartitionEOF(_)) => break,
            Err(e) => return Err(kafka_err(e.to_string())),
        };
        if message.offset() > last_wanted {
            break;
        }
        let (timestamp, timestamp_type) = match message.timestamp() {
            Timestamp::NotAvailable => (None, TimestampType::NotAvailable),
            Timestamp::CreateTime(t) => (Some(t), TimestampType::CreateTime),
            Timestamp::LogAppendTime(t) => (Some(t), TimestampType::LogAppendTime),
        };
        let headers = crate::kafka::headers::borrowed(&message);
        let before = writer.payload_bytes();
        writer
            .push(&RecordRef {
                offset: message.offset(),
                timestamp,
                timestamp_type,
                key: message.key(),
                value: message.payload(),
                headers: &headers,
            })
            .map_err(|e| kafka_err(e.to_string()))?;
        progress.records.fetch_add(1, Ordering::Relaxed);
        progress
            .bytes
            .fetch_add(writer.payload_bytes() - before, Ordering::Relaxed);
        let done = message.offset() >= last_wanted;
        if writer.payload_bytes() >= job.segment_bytes && !done {
            hand_over(std::mem::replace(
                &mut writer,
                SegmentWriter::with_capacity(capacity),
            ))?;
        }
        if done {
            break;
        }
    }
    if !writer.is_empty() {
        hand_over(writer)?;
    }
    Ok(())
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
    let segment = raw
        .compress(job.zstd_level)
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
    Ok(SegmentEntry {
        path: relative,
        meta: segment.meta,
    })
}
