//! The per-partition restore: a worker owns one idempotent producer and
//! restores one partition after another with it. It reads the partition's
//! segments in offset order (the next one fetched while the current one is
//! produced), decides each record through the topic's transform, reads back
//! what the target holds after the journal's confirmed records ([`Tail`]),
//! produces the rest, and checks the high watermark at the end. Progress and
//! each finished partition go to the journal keeper as [`Event`]s.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, NoCustomPartitioner, Producer, ProducerContext,
};
use rdkafka::{ClientContext, Message};

use tokio::sync::mpsc::UnboundedSender;

use super::journal::{DataJournal, PartitionProgress};
use super::target::{self, TargetReader};
use super::transform::Verdict;
use super::{RestoreError, TopicJob, offsets, resume};
use crate::kafka::{self, Cluster, KafkaError};
use crate::manifest::{BackupReader, PartitionManifest};
use crate::segment::{Record, SegmentReader};

/// How long records may wait for their acknowledgement (a little longer
/// than the producer's own `message.timeout.ms`, which reports first).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(310);

/// What a worker tells the journal keeper.
pub(super) enum Event {
    Progress(Progress),
    Finished(Finished),
}

/// Records of a partition confirmed in the target so far.
#[derive(Debug)]
pub(super) struct Progress {
    topic: String,
    partition: i32,
    written: u64,
    next_offset: i64,
    source_offset: Option<i64>,
    foreign: Vec<[i64; 2]>,
    acked: Tally,
}

/// Records and the bytes of their keys, values and headers (as a backup
/// counts them: `SegmentMeta::uncompressed_bytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tally {
    pub(super) records: u64,
    pub(super) bytes: u64,
}

impl Progress {
    /// The target topic and partition, the restore's records confirmed
    /// there so far (from its first, earlier runs' included), and of those
    /// what this run's producer had acknowledged.
    pub(super) fn confirmed(&self) -> (&str, i32, u64, Tally) {
        (&self.topic, self.partition, self.written, self.acked)
    }

    /// Writes this progress into the partition's journal entry; `false`
    /// when the journal has none.
    pub(super) fn record(self, journal: &mut DataJournal) -> bool {
        let Some(entry) = entry(journal, &self.topic, self.partition) else {
            return false;
        };
        entry.written = self.written;
        entry.next_offset = self.next_offset;
        entry.source_offset = self.source_offset;
        entry.foreign = self.foreign;
        true
    }
}

fn entry<'j>(
    journal: &'j mut DataJournal,
    topic: &str,
    partition: i32,
) -> Option<&'j mut PartitionProgress> {
    journal.partitions.get_mut(topic)?.get_mut(&partition)
}

/// One partition to restore and what the journal says of it.
pub(super) struct Work {
    pub(super) job: TopicJob,
    pub(super) partition: i32,
    pub(super) manifest: PartitionManifest,
    pub(super) progress: PartitionProgress,
}

/// What the workers of one restore share.
pub(super) struct Shared {
    pub(super) cluster: Cluster,
    pub(super) reader: std::sync::Arc<BackupReader>,
    /// For fetching segments ahead.
    pub(super) runtime: tokio::runtime::Handle,
    /// Write after records of other clients (`--append`).
    pub(super) append: bool,
    /// The restore journal's name, for errors.
    pub(super) journal: String,
    /// The partitions left to restore.
    pub(super) queue: Mutex<std::vec::IntoIter<Work>>,
    /// Set when a worker failed or the journal cannot be saved: no worker
    /// takes another partition.
    pub(super) stop: AtomicBool,
    pub(super) totals: Totals,
}

/// What the workers did in all.
#[derive(Default)]
pub(super) struct Totals {
    /// Schema IDs rewritten.
    pub(super) ids: AtomicU64,
    /// Bytes of keys, values and headers written.
    pub(super) bytes: AtomicU64,
}

/// A partition finished.
#[derive(Debug)]
pub(super) struct Finished {
    pub(super) source_topic: String,
    pub(super) topic: String,
    pub(super) partition: i32,
    /// Records of the restore in the target, from this run and earlier ones.
    pub(super) written_total: u64,
    /// The high watermark after the last one.
    pub(super) next_offset: i64,
    pub(super) source_offset: Option<i64>,
    pub(super) foreign: Vec<[i64; 2]>,
    /// Of those, written by an earlier run (skipped here).
    pub(super) resumed_after: u64,
    pub(super) skipped: u64,
    pub(super) rewritten: u64,
    pub(super) seconds: f64,
    /// Where its records landed.
    pub(super) offsets: offsets::PartitionOffsets,
    /// What this run's producer wrote to it, all acknowledged.
    pub(super) acked: Tally,
}

impl Finished {
    /// Marks the partition's journal entry done, with its final counts;
    /// gives where its records landed.
    pub(super) fn record(self, journal: &mut DataJournal) -> offsets::PartitionOffsets {
        if let Some(entry) = entry(journal, &self.topic, self.partition) {
            entry.done = true;
            entry.written = self.written_total;
            entry.next_offset = self.next_offset;
            entry.source_offset = self.source_offset;
            entry.skipped = self.skipped;
            entry.foreign = self.foreign;
        }
        self.offsets
    }

    /// The line the restore logs for it.
    pub(super) fn line(&self) -> String {
        let mut line = format!(
            "restored {}[{}] -> {}[{}]: {} record(s) written",
            self.source_topic, self.partition, self.topic, self.partition, self.written_total
        );
        if self.resumed_after > 0 {
            line.push_str(&format!(" ({} by an earlier run)", self.resumed_after));
        }
        line.push_str(&format!(", {} schema ID(s) rewritten", self.rewritten));
        if self.skipped > 0 {
            line.push_str(&format!(", {} left out", self.skipped));
        }
        line.push_str(&format!(" in {:.1} s", self.seconds));
        line
    }
}

/// Delivery reports of one producer: the first failure, and how many records
/// were acknowledged (and their bytes) or failed.
#[derive(Default)]
pub(super) struct Deliveries {
    failed: Mutex<Option<(String, i32, i64, String)>>,
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    errors: AtomicU64,
    /// Record `n` of the restore must land at target offset `base + n`.
    base: AtomicI64,
    /// The last record acknowledged where it belongs: its position, its
    /// target offset and its backup offset (delivery reports of one
    /// partition come in order).
    last_position: AtomicU64,
    last_offset: AtomicI64,
    last_source: AtomicI64,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // librdkafka warns that the gapless guarantee is "experimental" once per
        // producer; the restore sets it on purpose (docs/restore.md), so the
        // warning would only alarm whoever reads the output
        if fac == "CONFWARN" && log_message.contains("enable.gapless.guarantee") {
            tracing::debug!(target: "librdkafka", "librdkafka: {fac} {log_message}");
            return;
        }
        DefaultClientContext.log(level, fac, log_message);
    }
}

/// What a delivery report is about: the record's position in the restore of
/// its partition (1-based), its offset in the backup and its bytes
/// ([`record_bytes`]).
pub(super) struct Sent {
    position: u64,
    offset: i64,
    bytes: u64,
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Box<Sent>) {
        let Sent {
            position,
            offset,
            bytes,
        } = *opaque;
        let failure = match result {
            Ok(m) => {
                let expected = self.base.load(Ordering::Relaxed) + position as i64;
                if m.offset() == expected {
                    self.acked.fetch_add(1, Ordering::Relaxed);
                    self.acked_bytes.fetch_add(bytes, Ordering::Relaxed);
                    self.last_position.store(position, Ordering::Relaxed);
                    self.last_offset.store(m.offset(), Ordering::Relaxed);
                    self.last_source.store(offset, Ordering::Relaxed);
                    return;
                }
                // a record landed elsewhere than right after the one before
                // it: resuming from the watermark would no longer be exact
                (
                    m.topic().to_owned(),
                    m.partition(),
                    format!(
                        "acknowledged at offset {}, expected {expected}: the partition has a gap or another producer wrote to it",
                        m.offset()
                    ),
                )
            }
            Err((e, m)) => (m.topic().to_owned(), m.partition(), e.to_string()),
        };
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut failed = self.failed.lock().expect("deliveries lock");
        failed.get_or_insert((failure.0, failure.1, offset, failure.2));
    }
}

/// One restore worker: an idempotent producer it polls itself (a threaded
/// producer's `flush` takes 100 ms at the least), used for one partition
/// after another, and a client for watermarks.
pub(super) struct Worker {
    producer: BaseProducer<Deliveries, NoCustomPartitioner>,
    metadata: BaseConsumer,
}

impl Worker {
    pub(super) fn new(cluster: &Cluster) -> Result<Self, KafkaError> {
        let mut config = cluster.client_config(&[
            ("linger.ms", "20"),
            ("batch.size", "1000000"),
            ("queue.buffering.max.kbytes", "16384"),
            ("message.timeout.ms", "300000"),
            // compressed on the wire and on the target's disk (a topic whose
            // `compression.type` is `producer` keeps what is sent): lz4 costs
            // the least CPU of the codecs measured (docs/restore.md)
            ("compression.type", "lz4"),
            // records as large as the source topic allowed (the broker
            // still applies its own limit)
            ("message.max.bytes", "1000000000"),
        ]);
        // what resuming from the watermark rests on; `target.properties`
        // cannot turn it off
        config
            .set("enable.idempotence", "true")
            .set("enable.gapless.guarantee", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5");
        let producer = config
            .create_with_context(Deliveries::default())
            .map_err(|source| cluster.client_error(source))?;
        Ok(Self {
            producer,
            metadata: cluster.metadata_consumer()?,
        })
    }

    /// Polls for delivery reports until every one of the `sent` records since
    /// the counters were reset is acknowledged or failed.
    fn settle(&self, sent: u64) -> Result<(), u64> {
        let d = self.producer.context();
        let until = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let acked = d.acked.load(Ordering::Relaxed);
            if acked + d.errors.load(Ordering::Relaxed) >= sent {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(acked);
            }
            self.producer.poll(Duration::from_millis(5));
        }
    }

    /// Restores partitions of the queue one after the other until it is
    /// empty or the restore stops; the first failure stops the others.
    pub(super) fn run(
        self,
        shared: &Shared,
        events: &UnboundedSender<Event>,
    ) -> Result<(), RestoreError> {
        while !shared.stop.load(Ordering::Relaxed) {
            let next = shared.queue.lock().expect("queue lock").next();
            let Some(work) = next else {
                break;
            };
            match self.restore_partition(shared, &work, events) {
                Ok(done) => {
                    let _ = events.send(Event::Finished(done));
                }
                Err(e) => {
                    shared.stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        // closing an idempotent producer takes 100 ms; all it sent is
        // acknowledged by now
        std::thread::spawn(move || drop(self));
        Ok(())
    }

    /// Restores one partition from where its journal entry says: the
    /// target's records after the confirmed ones are read back and matched
    /// with the records the restore writes next (an interrupted run's), then
    /// the rest is produced. Progress goes to `events` as it is acknowledged.
    fn restore_partition(
        &self,
        shared: &Shared,
        work: &Work,
        events: &UnboundedSender<Event>,
    ) -> Result<Finished, RestoreError> {
        let started = Instant::now();
        let (job, partition, manifest) = (&work.job, work.partition, &work.manifest);
        let (reader, runtime, totals) = (&shared.reader, &shared.runtime, &shared.totals);
        let metadata = &self.metadata;
        let (low, high) = kafka::watermarks(metadata, &job.target, partition)?;
        let resumed = resume::start(&work.progress, low, high).map_err(|refusal| {
            RestoreError::refused(&job.target, partition, refusal, &shared.journal)
        })?;
        // what the target holds after the confirmed records, read back
        let readback = if resumed.has_tail() {
            Some(target::consumer(&shared.cluster)?)
        } else {
            None
        };
        let mut tail = match &readback {
            Some(consumer) => Some(Tail {
                reader: TargetReader::new(
                    consumer,
                    &job.target,
                    partition,
                    resumed.read_from,
                    resumed.high,
                )?,
                expected: resumed.read_from,
                append: shared.append,
                foreign: work.progress.foreign.clone(),
                matched: 0,
                last_source: None,
            }),
            None => None,
        };

        // fetch segments ahead: the next one is read and checked while this one is produced
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let paths: Vec<String> = manifest.segments.iter().map(|s| s.path.clone()).collect();
        let fetcher_reader = reader.clone();
        let fetcher = runtime.spawn(async move {
            for path in paths {
                let got = fetcher_reader.read_stored(&path).await;
                let failed = got.is_err();
                if tx.send((path, got)).await.is_err() || failed {
                    return;
                }
            }
        });

        let deliveries = self.producer.context();
        deliveries.acked.store(0, Ordering::Relaxed);
        deliveries.acked_bytes.store(0, Ordering::Relaxed);
        deliveries.errors.store(0, Ordering::Relaxed);
        deliveries.last_position.store(0, Ordering::Relaxed);
        let mut foreign = work.progress.foreign.clone();
        let mut source_offset = work.progress.source_offset;
        let mut matched = 0u64; // records of an interrupted run found in the tail
        let mut position = 0u64; // records this restore writes, counted from the start
        let mut sent = 0u64;
        let mut skipped = 0u64;
        let mut rewritten = 0u64;
        let mut bytes = 0u64;
        let check_failed = || -> Result<(), RestoreError> {
            let failed = deliveries.failed.lock().expect("deliveries lock").take();
            match failed {
                Some((topic, partition, offset, reason)) => Err(RestoreError::Produce {
                    topic,
                    partition,
                    offset,
                    reason,
                }),
                None => Ok(()),
            }
        };
        // what this run's producer had acknowledged (delivery reports come
        // on this thread, in `poll`: nothing moves while this is read)
        let acked_now = || Tally {
            records: deliveries.acked.load(Ordering::Relaxed),
            bytes: deliveries.acked_bytes.load(Ordering::Relaxed),
        };
        // the journal's view: confirmed records and where the next lands
        let report = |written: u64, next_offset: i64, source: Option<i64>, foreign: &[[i64; 2]]| {
            let _ = events.send(Event::Progress(Progress {
                topic: job.target.clone(),
                partition,
                written,
                next_offset,
                source_offset: source,
                foreign: foreign.to_vec(),
                acked: acked_now(),
            }));
        };
        let mut offsets = offsets::Builder::default();
        let mut segments = 0usize;
        while let Some((path, got)) = rx.blocking_recv() {
            segments += 1;
            let segment_err = |source| RestoreError::Segment {
                path: path.clone(),
                topic: job.source.clone(),
                partition,
                source,
            };
            let data = got?;
            let mut records = SegmentReader::new(data.reader()?).map_err(segment_err)?;
            while let Some(mut record) = records.next_record().map_err(segment_err)? {
                let verdict = job.transform.apply(&mut record);
                offsets.record(
                    record.offset,
                    verdict,
                    position + u64::from(verdict.writes()),
                );
                match verdict {
                    Verdict::Write { rewritten: n } => {
                        position += 1;
                        if resumed.confirmed(position) {
                            continue;
                        }
                        if let Some(t) = tail.as_mut() {
                            if t.holds(&record, &job.target, partition)? {
                                continue;
                            }
                            // the tail is read: what follows lands after it
                            let t = tail.take().expect("tail");
                            matched = t.matched;
                            foreign = t.foreign;
                            source_offset = t.last_source.or(source_offset);
                            report(position - 1, resumed.high, source_offset, &foreign);
                        }
                        if sent == 0 {
                            deliveries
                                .base
                                .store(resumed.base(position), Ordering::Relaxed);
                        }
                        rewritten += u64::from(n);
                        let size = record_bytes(&record);
                        bytes += size;
                        self.send(&job.target, partition, position, size, record)?;
                        sent += 1;
                        // stop at the first failure: nothing may land after a gap
                        if deliveries.errors.load(Ordering::Relaxed) > 0 {
                            let _ = self.settle(sent);
                            fetcher.abort();
                            check_failed()?;
                        }
                    }
                    Verdict::SkipMissing { .. } | Verdict::SkipLater => skipped += 1,
                    Verdict::Missing { id } => {
                        // what was sent before it lands, so that a rerun resumes after it
                        let settled = self.settle(sent);
                        fetcher.abort();
                        check_failed()?;
                        self.report_acked(&report, &foreign);
                        if let Err(acked) = settled {
                            return Err(RestoreError::Produce {
                                topic: job.target.clone(),
                                partition,
                                offset: record.offset,
                                reason: format!(
                                    "{acked} of {sent} record(s) acknowledged before the record with the missing schema ID {id}"
                                ),
                            });
                        }
                        return Err(RestoreError::MissingId {
                            id,
                            topic: job.source.clone(),
                            partition,
                            offset: record.offset,
                        });
                    }
                }
            }
            check_failed()?;
            self.report_acked(&report, &foreign);
        }
        if segments != manifest.segments.len() {
            // the fetcher stopped without an error to report (a panic)
            return Err(RestoreError::Produce {
                topic: job.target.clone(),
                partition,
                offset: position as i64,
                reason: format!(
                    "{segments} of {} segment(s) were read",
                    manifest.segments.len()
                ),
            });
        }
        // every record of the restore was in the tail: what is left of it
        // follows the restore's last record
        if let Some(mut t) = tail.take() {
            t.rest(&job.target, partition)?;
            matched = t.matched;
            foreign = t.foreign;
            source_offset = t.last_source.or(source_offset);
        }
        let settled = self.settle(sent);
        check_failed()?;
        let acked = deliveries.acked.load(Ordering::Relaxed);
        if settled.is_err() || acked != sent {
            return Err(RestoreError::Produce {
                topic: job.target.clone(),
                partition,
                offset: manifest.segments.last().map_or(0, |s| s.meta.last_offset),
                reason: format!("{acked} of {sent} record(s) acknowledged"),
            });
        }
        if sent > 0 {
            source_offset = Some(deliveries.last_source.load(Ordering::Relaxed));
        }
        let (_, high) = kafka::watermarks(metadata, &job.target, partition)?;
        let expected = resumed.expected_high(sent);
        if high != expected {
            return Err(RestoreError::CountMismatch {
                topic: job.target.clone(),
                partition,
                found: high,
                expected,
                journal: shared.journal.clone(),
            });
        }
        if let Some(consumer) = readback {
            // a consumer with a group takes up to a second to close
            std::thread::spawn(move || drop(consumer));
        }
        totals.ids.fetch_add(rewritten, Ordering::Relaxed);
        totals.bytes.fetch_add(bytes, Ordering::Relaxed);
        let offsets = offsets.finish(offsets::Frame {
            source_topic: job.source.clone(),
            source_start: manifest.low_watermark,
            source_end: manifest.high_watermark,
            target_start: work.progress.target_start,
            foreign: foreign.clone(),
            to_timestamp: job.transform.to_timestamp,
        });
        Ok(Finished {
            source_topic: job.source.clone(),
            topic: job.target.clone(),
            partition,
            written_total: position,
            next_offset: high,
            source_offset,
            foreign,
            resumed_after: resumed.by_earlier_runs(position, matched),
            skipped,
            rewritten,
            seconds: started.elapsed().as_secs_f64(),
            offsets,
            acked: acked_now(),
        })
    }

    /// Reports the records acknowledged so far (if any were, this run).
    fn report_acked(
        &self,
        report: &impl Fn(u64, i64, Option<i64>, &[[i64; 2]]),
        foreign: &[[i64; 2]],
    ) {
        let d = self.producer.context();
        let position = d.last_position.load(Ordering::Relaxed);
        if position > 0 {
            report(
                position,
                d.last_offset.load(Ordering::Relaxed) + 1,
                Some(d.last_source.load(Ordering::Relaxed)),
                foreign,
            );
        }
    }

    /// Produces one record of `bytes` ([`record_bytes`]), waiting while the
    /// producer's queue is full.
    fn send(
        &self,
        topic: &str,
        partition: i32,
        position: u64,
        bytes: u64,
        record: Record,
    ) -> Result<(), RestoreError> {
        let sent = Sent {
            position,
            offset: record.offset,
            bytes,
        };
        let mut base: BaseRecord<'_, [u8], [u8], Box<Sent>> =
            BaseRecord::with_opaque_to(topic, Box::new(sent)).partition(partition);
        if !record.headers.is_empty() {
            // names byte for byte, UTF-8 or not
            base = base.headers(kafka::headers::owned(&record.headers));
        }
        if let Some(k) = record.key.as_deref() {
            base = base.key(k);
        }
        if let Some(v) = record.value.as_deref() {
            base = base.payload(v);
        }
        if let Some(ts) = record.timestamp {
            base = base.timestamp(ts);
        }
        loop {
            match self.producer.send(base) {
                Ok(()) => {
                    // serve delivery reports as they come, without waiting
                    self.producer.poll(Duration::ZERO);
                    return Ok(());
                }
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    base = back;
                    self.producer.poll(Duration::from_millis(2));
                }
                Err((e, _)) => {
                    return Err(RestoreError::Produce {
                        topic: topic.to_owned(),
                        partition,
                        offset: record.offset,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}

/// The target's records after the restore's confirmed ones, matched in
/// order with the records the restore writes next: those that match were
/// written by an interrupted run; any other record (or an offset without
/// one) is another client's, refused unless appending.
pub(super) struct Tail<'c> {
    reader: TargetReader<'c>,
    /// The offset the restore's next record would be at.
    expected: i64,
    append: bool,
    /// Target offset ranges of other clients' records.
    foreign: Vec<[i64; 2]>,
    /// Records found to be the restore's own.
    matched: u64,
    /// The backup offset of the last of them.
    last_source: Option<i64>,
}

/// What an offset of the tail without a record is, in errors.
const NO_RECORD: &str = "it holds no record (a transaction marker or an aborted record)";

impl Tail<'_> {
    /// Whether `record`, the restore's next, is already in the target.
    /// Records of other clients before it are passed over (`--append`) or
    /// refused. `false` once the tail is read to its end.
    fn holds(
        &mut self,
        record: &Record,
        topic: &str,
        partition: i32,
    ) -> Result<bool, RestoreError> {
        while let Some(got) = self.reader.next_record()? {
            if let Some(range) = resume::gap(self.expected, got.offset) {
                self.other(range, NO_RECORD.into(), topic, partition)?;
            }
            self.expected = got.offset + 1;
            match target::record_difference(record, &got) {
                None => {
                    self.matched += 1;
                    self.last_source = Some(record.offset);
                    return Ok(true);
                }
                Some(what) => self.other(
                    [got.offset, got.offset + 1],
                    format!(
                        "the restore's next record is the backup's offset {}, and this one differs from it: {what}",
                        record.offset
                    ),
                    topic,
                    partition,
                )?,
            }
        }
        self.rest(topic, partition)?;
        Ok(false)
    }

    /// The tail after the restore's last record: all of it is other clients'.
    fn rest(&mut self, topic: &str, partition: i32) -> Result<(), RestoreError> {
        while let Some(got) = self.reader.next_record()? {
            self.other(
                [got.offset, got.offset + 1],
                "it follows the restore's last record".into(),
                topic,
                partition,
            )?;
            self.expected = got.offset + 1;
        }
        if let Some(range) = resume::gap(self.expected, self.reader.high) {
            self.other(range, NO_RECORD.into(), topic, partition)?;
            self.expected = self.reader.high;
        }
        Ok(())
    }

    /// Target offsets `range` are not the restore's: refused, or noted when
    /// appending.
    fn other(
        &mut self,
        range: [i64; 2],
        what: String,
        topic: &str,
        partition: i32,
    ) -> Result<(), RestoreError> {
        if !self.append {
            return Err(RestoreError::Foreign {
                topic: topic.to_owned(),
                partition,
                offset: range[0],
                what,
                since: self.reader.start,
            });
        }
        resume::add_foreign(&mut self.foreign, range);
        Ok(())
    }
}

/// The bytes of `r`'s key, value and headers (names and values), as a
/// backup counts them (`crate::segment::SegmentWriter::push`).
fn record_bytes(r: &Record) -> u64 {
    let h: usize = r
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len) + h) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MissingIdPolicy;
    use crate::restore::journal::Shape;

    fn finished(resumed_after: u64, skipped: u64) -> Finished {
        Finished {
            source_topic: "orders".into(),
            topic: "orders-restored".into(),
            partition: 2,
            written_total: 100,
            next_offset: 160,
            source_offset: Some(99),
            foreign: vec![[140, 150]],
            resumed_after,
            skipped,
            rewritten: 80,
            seconds: 1.5,
            offsets: offsets::Builder::default().finish(offsets::Frame {
                source_topic: "orders".into(),
                source_start: 0,
                source_end: 100,
                target_start: 60,
                foreign: vec![[140, 150]],
                to_timestamp: None,
            }),
            acked: Tally::default(),
        }
    }

    #[test]
    fn a_finished_partition_says_what_earlier_runs_wrote_and_what_was_left_out() {
        assert_eq!(
            finished(0, 0).line(),
            "restored orders[2] -> orders-restored[2]: 100 record(s) written, 80 schema ID(s) rewritten in 1.5 s"
        );
        assert_eq!(
            finished(40, 3).line(),
            "restored orders[2] -> orders-restored[2]: 100 record(s) written (40 by an earlier run), 80 schema ID(s) rewritten, 3 left out in 1.5 s"
        );
    }

    fn journal() -> DataJournal {
        let mut journal = DataJournal::new("c");
        journal.set(
            "orders-restored",
            2,
            PartitionProgress {
                source_topic: "orders".into(),
                target_start: 60,
                done: false,
                written: 0,
                next_offset: 60,
                source_offset: None,
                skipped: 0,
                to_timestamp: None,
                shape: Shape {
                    map: None,
                    missing_id_policy: MissingIdPolicy::Fail,
                    rewrite_key: false,
                    rewrite_value: true,
                },
                foreign: vec![],
            },
        );
        journal
    }

    #[test]
    fn progress_and_the_finish_go_into_the_partitions_journal_entry() {
        let mut journal = journal();
        let progress = |partition| Progress {
            topic: "orders-restored".into(),
            partition,
            written: 40,
            next_offset: 100,
            source_offset: Some(39),
            foreign: vec![],
            acked: Tally::default(),
        };
        assert!(progress(2).record(&mut journal));
        let entry = journal.get("orders-restored", 2).unwrap();
        assert_eq!(
            (
                entry.done,
                entry.written,
                entry.next_offset,
                entry.source_offset
            ),
            (false, 40, 100, Some(39))
        );
        // a partition without an entry changes nothing
        let before = journal.clone();
        assert!(!progress(3).record(&mut journal));
        assert_eq!(journal, before);

        finished(40, 3).record(&mut journal);
        let entry = journal.get("orders-restored", 2).unwrap();
        assert_eq!(
            (
                entry.done,
                entry.written,
                entry.next_offset,
                entry.source_offset,
                entry.skipped,
                entry.foreign.as_slice()
            ),
            (true, 100, 160, Some(99), 3, &[[140, 150]][..])
        );
        assert_eq!(entry.target_start, 60);
    }

    #[test]
    fn record_bytes_count_key_value_and_headers() {
        let record = Record {
            offset: 7,
            timestamp: Some(1),
            timestamp_type: crate::segment::TimestampType::CreateTime,
            key: Some(vec![0; 3]),
            value: Some(vec![0; 10]),
            headers: vec![("trace".into(), Some(vec![1, 2])), ("flag".into(), None)],
        };
        assert_eq!(record_bytes(&record), 3 + 10 + 5 + 2 + 4);
        let empty = Record {
            key: None,
            value: None,
            headers: vec![],
            ..record
        };
        assert_eq!(record_bytes(&empty), 0);
    }
}
