//! Reading a target partition back, record by record, from an offset up to
//! the high watermark it had when the reading began: how a resumed restore
//! tells its own records from another client's, and what `verify` compares.
//!
//! Memory is one fetched batch (a bounded prefetch), whatever the
//! partition's size.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, Timestamp, TopicPartitionList};

use crate::kafka::{Cluster, EofIsNormal, KafkaError};
use crate::segment::{Record, TimestampType};

/// How long a partition may send nothing while records are still expected.
pub const STALL: Duration = Duration::from_secs(60);

/// Why a target partition could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    #[error(
        "cannot read `{topic}` partition {partition} from the target at offset {offset}: {reason}"
    )]
    Consume {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error(
        "`{topic}` partition {partition} sent nothing for {}s while offsets up to {last} were expected (next: {offset})\nhint: is the target broker up?",
        STALL.as_secs()
    )]
    Stalled {
        topic: String,
        partition: i32,
        offset: i64,
        last: i64,
    },
}

/// A consumer for reading target partitions back: no group membership
/// (offsets are assigned), committed records only, a bounded prefetch.
pub fn consumer(cluster: &Cluster) -> Result<BaseConsumer<EofIsNormal>, KafkaError> {
    cluster
        .client_config(&[
            ("group.id", "kafka-backup-verify"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "false"),
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "error"),
            // a bounded prefetch: memory does not grow with the partition
            ("queued.max.messages.kbytes", "65536"),
        ])
        .create_with_context(EofIsNormal)
        .map_err(|source| cluster.client_error(source))
}

/// The records of a target partition from `next` up to `high` (the high
/// watermark when the reading began). An offset with no record (a
/// transaction marker, an aborted record) is skipped over: the record read
/// after it carries its own offset.
pub struct TargetReader<'c> {
    consumer: &'c BaseConsumer<EofIsNormal>,
    topic: &'c str,
    partition: i32,
    /// Where the reading began.
    pub start: i64,
    /// The next offset to read.
    pub next: i64,
    pub high: i64,
    /// Records read so far.
    pub read: u64,
}

impl<'c> TargetReader<'c> {
    /// Assigns `consumer` to `topic`/`partition` at `from` (when there is
    /// anything to read below `high`).
    pub fn new(
        consumer: &'c BaseConsumer<EofIsNormal>,
        topic: &'c str,
        partition: i32,
        from: i64,
        high: i64,
    ) -> Result<Self, ReadBackError> {
        if from < high {
            let consume_err = |e: rdkafka::error::KafkaError| ReadBackError::Consume {
                topic: topic.to_owned(),
                partition,
                offset: from,
                reason: e.to_string(),
            };
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(topic, partition, Offset::Offset(from))
                .map_err(consume_err)?;
            consumer.assign(&list).map_err(consume_err)?;
        }
        Ok(Self {
            consumer,
            topic,
            partition,
            start: from,
            next: from,
            high,
            read: 0,
        })
    }

    /// The next record, `None` once `high` is reached.
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadBackError> {
        if self.next >= self.high {
            return Ok(None);
        }
        let mut waited = Instant::now();
        loop {
            let Some(polled) = self.consumer.poll(Duration::from_millis(500)) else {
                if waited.elapsed() > STALL {
                    return Err(ReadBackError::Stalled {
                        topic: self.topic.to_owned(),
                        partition: self.partition,
                        offset: self.next,
                        last: self.high - 1,
                    });
                }
                continue;
            };
            let m = polled.map_err(|e| ReadBackError::Consume {
                topic: self.topic.to_owned(),
                partition: self.partition,
                offset: self.next,
                reason: e.to_string(),
            })?;
            waited = Instant::now();
            if m.topic() != self.topic || m.partition() != self.partition || m.offset() < self.next
            {
                // left over from the previous assignment
                continue;
            }
            if m.offset() >= self.high {
                self.next = self.high;
                return Ok(None);
            }
            self.next = m.offset() + 1;
            self.read += 1;
            let (timestamp, timestamp_type) = match m.timestamp() {
                Timestamp::NotAvailable => (None, TimestampType::NotAvailable),
                Timestamp::CreateTime(t) => (Some(t), TimestampType::CreateTime),
                Timestamp::LogAppendTime(t) => (Some(t), TimestampType::LogAppendTime),
            };
            return Ok(Some(Record {
                offset: m.offset(),
                timestamp,
                timestamp_type,
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: crate::kafka::headers::read(&m),
            }));
        }
    }
}

/// How `got` (from the target) differs from `expected` (the backup's record
/// as the restore writes it), if it does: the first differing part, with the
/// byte where it differs. Offsets are not compared, nor timestamps the
/// backup did not have as a producer's.
pub fn record_difference(expected: &Record, got: &Record) -> Option<String> {
    if expected.timestamp_type == TimestampType::CreateTime
        && (got.timestamp_type != TimestampType::CreateTime || got.timestamp != expected.timestamp)
    {
        return Some(format!(
            "timestamp {}, the backup has {}",
            show_timestamp(got),
            show_timestamp(expected)
        ));
    }
    if let Some(what) = bytes_difference("key", expected.key.as_deref(), got.key.as_deref()) {
        return Some(what);
    }
    if let Some(what) = bytes_difference("value", expected.value.as_deref(), got.value.as_deref()) {
        return Some(what);
    }
    if expected.headers.len() != got.headers.len() {
        return Some(format!(
            "{} header(s), the backup has {}",
            got.headers.len(),
            expected.headers.len()
        ));
    }
    for (i, ((en, ev), (gn, gv))) in expected.headers.iter().zip(&got.headers).enumerate() {
        if en != gn {
            return Some(format!(
                "header {} is named `{}`, the backup's `{}`",
                i + 1,
                String::from_utf8_lossy(gn),
                String::from_utf8_lossy(en)
            ));
        }
        let name = format!("header `{}`", String::from_utf8_lossy(en));
        if let Some(what) = bytes_difference(&name, ev.as_deref(), gv.as_deref()) {
            return Some(what);
        }
    }
    None
}

fn show_timestamp(r: &Record) -> String {
    match (r.timestamp_type, r.timestamp) {
        (TimestampType::CreateTime, Some(t)) => format!("{t} (create time)"),
        (TimestampType::LogAppendTime, Some(t)) => format!("{t} (log-append time)"),
        _ => "none".to_owned(),
    }
}

fn bytes_difference(part: &str, expected: Option<&[u8]>, got: Option<&[u8]>) -> Option<String> {
    let (e, g) = match (expected, got) {
        (None, None) => return None,
        (Some(_), None) => return Some(format!("{part} is null, the backup's is not")),
        (None, Some(_)) => return Some(format!("{part} is not null, the backup's is")),
        (Some(e), Some(g)) => (e, g),
    };
    if e == g {
        return None;
    }
    let Some(at) = e.iter().zip(g).position(|(a, b)| a != b) else {
        return Some(format!(
            "{part} has {} byte(s), the backup's {} (the same up to there)",
            g.len(),
            e.len()
        ));
    };
    let mut what = format!(
        "{part} differs at byte {at} (0x{:02x}, the backup's 0x{:02x}",
        g[at], e[at]
    );
    if (1..5).contains(&at) && e[0] == 0 && e.len() >= 5 && g.len() >= 5 {
        let id = |b: &[u8]| u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
        what.push_str(&format!(
            "; schema ID {} where {} was expected",
            id(g),
            id(e)
        ));
    }
    what.push(')');
    Some(what)
}
