//! The applier, data half: restores the backed-up topics into the target
//! cluster after the registry steps, with schema IDs rewritten through the
//! final ID map.
//!
//! - [`transform`]: what happens to one record (rewrite, leave out, stop), pure.
//! - [`fields`]: which fields of a topic's records carry schema IDs, pure.
//! - [`journal`]: where each target partition stood before the restore wrote
//!   to it, how many of its records are confirmed there, and the settings
//!   that shaped them.
//! - [`resume`]: where a partition goes on, and whether it may (pure).
//! - [`target`]: reading a target partition back (resuming, `verify`).
//! - [`topics`]: which topics are restored where and how, and creating them.
//!
//! Per topic: create it when missing (the backed-up partition count and
//! configs), refuse one with fewer partitions, refuse partitions that already
//! hold records unless appending is asked for. Per partition: read its
//! segments in offset order (each checked against the manifest's size and
//! SHA-256 before use, the next one fetched while the current one is
//! produced), decide each record through the [`transform::Transform`], and
//! produce it to the same partition with its timestamp, key, value and
//! headers through an idempotent producer. After the last record the target's
//! high watermark must have moved by exactly the number of records written.

pub mod fields;
pub mod journal;
pub mod resume;
pub mod target;
pub mod topics;
pub mod transform;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, NoCustomPartitioner, Producer, ProducerContext,
};
use rdkafka::{ClientContext, Message};

pub use journal::{DataJournal, DataJournalError, DataJournalStore, PartitionProgress};
pub use topics::{Evidence, TopicJob, duplicate_targets, jobs};
use transform::Verdict;

use crate::config::Config;
use crate::kafka::{self, Cluster, KafkaError, REQUEST_TIMEOUT};
use crate::manifest::{BackupReader, ReadError};
use crate::segment::{Record, SegmentError, SegmentReader};
use target::TargetReader;

/// How long records may wait for their acknowledgement (a little longer
/// than the producer's own `message.timeout.ms`, which reports first).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(310);

/// How a restore runs.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Leave out records with a timestamp after this (ms since the epoch).
    pub to_timestamp: Option<i64>,
    /// Partitions restored at once (one producer each).
    pub partition_concurrency: usize,
    /// Restore into partitions that already hold records (after them).
    pub append: bool,
    /// Show what would be restored; create and write nothing.
    pub dry_run: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            to_timestamp: None,
            partition_concurrency: 4,
            append: false,
            dry_run: false,
        }
    }
}

/// Why the data restore stopped.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "the configuration has no `target.bootstrap_servers`, which restoring topic data needs\nhint: add a `target:` block, or run `apply --registry-only`"
    )]
    NoTarget,
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(
        "the target cluster at `{servers}` gives no cluster ID, which names its restore journal\nhint: is the broker up and reachable from here? (brokers before Kafka 0.10 have none)"
    )]
    NoClusterId { servers: String },
    #[error(
        "topic `{topic}` was restored to before (journal `{journal}`) and is gone from the target now: it was deleted since\nhint: delete the journal to restore it again from the start, or restore under a new name with `target.topic_mapping`"
    )]
    Deleted { topic: String, journal: String },
    #[error(
        "`{topic}` partition {partition} ends at offset {high}, before the records this restore confirmed there (up to offset {start}): the topic was deleted, truncated, or the broker lost records it had acknowledged\nhint: restore into an empty topic under a new name with `target.topic_mapping`, or delete the topic and the restore journal to start over"
    )]
    Truncated {
        topic: String,
        partition: i32,
        high: i64,
        start: i64,
    },
    #[error(
        "`{topic}` partition {partition} holds a record this restore did not write, at offset {offset}: {what} (the restore had confirmed its records up to offset {since})\nhint: another producer or another restore wrote to the partition; stop it, then restore into an empty topic (`target.topic_mapping`), or rerun with `--append` to write the rest of the backup after those records, knowingly (`verify` then reports them)"
    )]
    Foreign {
        topic: String,
        partition: i32,
        offset: i64,
        what: String,
        since: i64,
    },
    #[error(
        "`{topic}` partition {partition} lost records after the restore's confirmed ones: it now begins at offset {low}, the restore had confirmed its records up to offset {next_offset}, so what follows cannot be read back and checked\nhint: restore into an empty topic under a new name with `target.topic_mapping`, or delete the restore journal `{journal}` to start over"
    )]
    Unreadable {
        topic: String,
        partition: i32,
        low: i64,
        next_offset: i64,
        journal: String,
    },
    #[error(
        "`{topic}` partition {partition} was {} with other settings: {what}; its records would not be what this run writes\nhint: rerun with the settings of the first run to finish it, or restore into an empty topic under a new name with `target.topic_mapping` (or delete the topic and the restore journal `{journal}` to start over)",
        if *.done { "restored" } else { "partly restored" }
    )]
    ShapeChanged {
        topic: String,
        partition: i32,
        done: bool,
        what: String,
        journal: String,
    },
    #[error(transparent)]
    ReadBack(#[from] target::ReadBackError),
    #[error(transparent)]
    Journal(#[from] DataJournalError),
    #[error(transparent)]
    Backup(#[from] ReadError),
    #[error(
        "cannot create topic `{topic}` on the target: {reason}\nhint: create it by hand with {partitions} partition(s), or fix the configs the backup carries ({configs})"
    )]
    CreateTopic {
        topic: String,
        partitions: u32,
        configs: String,
        reason: String,
    },
    #[error(
        "topic `{topic}` on the target has {found} partition(s), the backup of `{source_topic}` has {expected}: records go back to the partition they came from\nhint: add partitions to `{topic}` (kafka-topics --alter --partitions {expected}), or restore into another name with `target.topic_mapping`"
    )]
    TooFewPartitions {
        topic: String,
        source_topic: String,
        found: usize,
        expected: u32,
    },
    #[error("`{topic}` partition {partition} was {} with --to-timestamp {}, this run has {}: the two would write different records\nhint: rerun with the same --to-timestamp to finish, or restore into a new topic", if *.done { "restored" } else { "partly restored" }, show_ts(.was), show_ts(.now))]
    ToTimestampChanged {
        topic: String,
        partition: i32,
        done: bool,
        was: Option<i64>,
        now: Option<i64>,
    },
    #[error("{}", nonempty(.0))]
    NotEmpty(Vec<(String, i32, i64)>),
    #[error(
        "segment `{path}` ({topic} partition {partition}) is unreadable: {source}\nhint: the backup is damaged; `kafka-backup describe --verify-files` checks every file"
    )]
    Segment {
        path: String,
        topic: String,
        partition: i32,
        source: SegmentError,
    },
    #[error(
        "schema ID {id} of the record at {topic} partition {partition} offset {offset} is not in the ID map (`missing_id_policy: fail`)\nhint: restore the subject that holds ID {id} too, or set `missing_id_policy` (or `missing_id_policy_topics.{topic}`) to `passthrough` or `skip`; rerun `apply` to go on"
    )]
    MissingId {
        id: i32,
        topic: String,
        partition: i32,
        offset: i64,
    },
    #[error(
        "producing to `{topic}` partition {partition} failed (record from offset {offset} of the backup): {reason}\nrerun the same `apply` to go on from where the target stands"
    )]
    Produce {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error(
        "`{topic}` partition {partition} ends at offset {found}, {expected} was expected after the records this run wrote: another producer wrote to it, or records were lost\nhint: stop whatever else writes to it and rerun the same `apply`: the restore reads back what follows its confirmed records and names what it did not write; the journal `{journal}` records its progress"
    )]
    CountMismatch {
        topic: String,
        partition: i32,
        found: i64,
        expected: i64,
        journal: String,
    },
}

fn show_ts(ts: &Option<i64>) -> String {
    ts.map_or_else(|| "(none)".to_owned(), |t| t.to_string())
}

fn nonempty(list: &[(String, i32, i64)]) -> String {
    let mut out =
        String::from("the target already holds records in partitions the restore would write to:");
    for (topic, partition, n) in list.iter().take(10) {
        out.push_str(&format!("\n  {topic} partition {partition}: {n} record(s)"));
    }
    if list.len() > 10 {
        out.push_str(&format!("\n  ... and {} more", list.len() - 10));
    }
    out.push_str("\nhint: restore into new names with `target.topic_mapping`, delete the topics, or pass `--append` to write after what they hold");
    out
}

/// What names a target cluster in the restore journal: its cluster ID. A
/// cluster that answers none is an error (rather than another journal: the
/// restore would not find what it did already).
pub fn cluster_key(cluster: &Cluster) -> Result<String, RestoreError> {
    use rdkafka::consumer::Consumer;
    let consumer = cluster.metadata_consumer()?;
    for _ in 0..3 {
        if let Some(id) = consumer
            .client()
            .fetch_cluster_id(REQUEST_TIMEOUT)
            .filter(|id| !id.is_empty())
        {
            return Ok(format!("cluster-{id}"));
        }
    }
    Err(RestoreError::NoClusterId {
        servers: cluster.servers.clone(),
    })
}

/// The target cluster of the configuration.
pub fn target_cluster(config: &Config) -> Result<Cluster, RestoreError> {
    let target = config.target.as_ref().ok_or(RestoreError::NoTarget)?;
    Cluster::new("target", &target.bootstrap_servers, &target.properties).map_err(|e| match e {
        KafkaError::NoBootstrap { .. } => RestoreError::NoTarget,
        other => RestoreError::Kafka(other),
    })
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreOutcome {
    pub topics_created: Vec<String>,
    pub partitions_restored: u64,
    pub partitions_done_before: u64,
    pub records_written: u64,
    pub records_skipped: u64,
    pub ids_rewritten: u64,
    pub bytes: u64,
}

/// Restores every job's partitions. `log` receives one line per topic
/// created and per partition finished.
pub async fn restore(
    cluster: &Cluster,
    reader: Arc<BackupReader>,
    jobs: &[TopicJob],
    journals: &DataJournalStore,
    options: &RestoreOptions,
    log: &(dyn Fn(String) + Sync),
) -> Result<RestoreOutcome, RestoreError> {
    let mut outcome = RestoreOutcome::default();
    let mut journal = journals
        .load()
        .await?
        .unwrap_or_else(|| DataJournal::new(&cluster.servers));

    // topics: what exists, what to create
    let consumer = cluster.metadata_consumer()?;
    let layout = kafka::layout(&consumer, cluster)?;
    let to_create = topics::missing(jobs, &layout.topics)?;
    if options.dry_run {
        for line in topics::preview(jobs, &to_create) {
            log(line);
        }
        return Ok(outcome);
    }
    // a topic this restore wrote to before and that is gone now was deleted
    // since: its journal entries no longer describe it
    if let Some(job) = to_create
        .iter()
        .find(|job| journal.partitions.contains_key(&job.target))
    {
        return Err(RestoreError::Deleted {
            topic: job.target.clone(),
            journal: journals.display(),
        });
    }
    // the producers first: an idempotent producer waits for its producer ID
    // before its first send, which overlaps the topic creation this way
    let pending = jobs
        .iter()
        .flat_map(|job| {
            job.manifest
                .partitions
                .keys()
                .map(|&p| (job.target.as_str(), p))
        })
        .filter(|(topic, p)| !journal.get(topic, *p).is_some_and(|progress| progress.done))
        .count();
    let workers = options.partition_concurrency.clamp(1, 64).min(pending);
    let producers = (0..workers)
        .map(|_| Worker::new(cluster))
        .collect::<Result<Vec<_>, _>>()?;
    outcome.topics_created =
        topics::create_topics(cluster, &to_create, layout.brokers, log).await?;

    // partitions: where each goes on, or where it starts (saved before writing)
    let mut work = Vec::new();
    let mut nonempty = Vec::new();
    let mut fresh = Vec::new();
    for job in jobs {
        let map = job.transform.sorted_map();
        let settings = resume::Settings {
            source_topic: &job.source,
            missing_id_policy: job.transform.policy,
            map: map.as_ref(),
            rewrite_key: job.transform.rewrite_key,
            rewrite_value: job.transform.rewrite_value,
        };
        for (&partition, p) in &job.manifest.partitions {
            if let Some(progress) = journal.get(&job.target, partition) {
                if progress.to_timestamp != options.to_timestamp {
                    return Err(RestoreError::ToTimestampChanged {
                        topic: job.target.clone(),
                        partition,
                        done: progress.done,
                        was: progress.to_timestamp,
                        now: options.to_timestamp,
                    });
                }
                if let Some(what) = resume::shape_change(&journal, progress, &settings) {
                    return Err(RestoreError::ShapeChanged {
                        topic: job.target.clone(),
                        partition,
                        done: progress.done,
                        what,
                        journal: journals.display(),
                    });
                }
                if progress.done {
                    // done means every record is there: a partition that
                    // holds fewer than the restore left (truncated, or a
                    // broker that lost acknowledged records) is not done
                    let (_, high) = kafka::watermarks(&consumer, &job.target, partition)?;
                    if high < progress.next_offset {
                        return Err(RestoreError::Truncated {
                            topic: job.target.clone(),
                            partition,
                            high,
                            start: progress.next_offset,
                        });
                    }
                    outcome.partitions_done_before += 1;
                    continue;
                }
                work.push((job.clone(), partition, p.clone(), progress.clone()));
                continue;
            }
            let (low, high) = kafka::watermarks(&consumer, &job.target, partition)?;
            if high > low && !options.append {
                nonempty.push((job.target.clone(), partition, high - low));
            }
            let progress = PartitionProgress {
                source_topic: job.source.clone(),
                target_start: high,
                done: false,
                written: 0,
                next_offset: high,
                source_offset: None,
                skipped: 0,
                to_timestamp: options.to_timestamp,
                shape: resume::shape(&mut journal, &settings),
                foreign: Vec::new(),
            };
            fresh.push((job.target.clone(), partition, progress.clone()));
            work.push((job.clone(), partition, p.clone(), progress));
        }
    }
    if !nonempty.is_empty() {
        return Err(RestoreError::NotEmpty(nonempty));
    }
    for (topic, partition, progress) in fresh {
        journal.set(&topic, partition, progress);
    }
    journals.save(&journal).await?;
    drop(consumer);

    // restore the partitions, `partition_concurrency` at once; progress is
    // journalled as records are acknowledged, and each partition when done
    let queue = Arc::new(Mutex::new(work.into_iter()));
    let runtime = tokio::runtime::Handle::current();
    let totals = Arc::new(Totals::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (event_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut handles = Vec::new();
    for worker in producers {
        let (queue, reader, runtime, totals, stop, event_tx) = (
            queue.clone(),
            reader.clone(),
            runtime.clone(),
            totals.clone(),
            stop.clone(),
            event_tx.clone(),
        );
        let (cluster, append) = (cluster.clone(), options.append);
        handles.push(tokio::task::spawn_blocking(
            move || -> Result<(), RestoreError> {
                while !stop.load(Ordering::Relaxed) {
                    let next = queue.lock().expect("queue lock").next();
                    let Some((job, partition, manifest, progress)) = next else {
                        break;
                    };
                    let result = worker.restore_partition(
                        &runtime,
                        &reader,
                        &Partition {
                            cluster: &cluster,
                            job: &job,
                            partition,
                            manifest: &manifest,
                            progress: &progress,
                            append,
                        },
                        &totals,
                        &event_tx,
                    );
                    match result {
                        Ok(done) => {
                            let _ = event_tx.send(Event::Finished(done));
                        }
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                // closing an idempotent producer takes 100 ms; all it sent
                // is acknowledged by now
                std::thread::spawn(move || drop(worker));
                Ok(())
            },
        ));
    }
    drop(event_tx);
    let mut save_error = None;
    let mut saved = Instant::now();
    let mut unsaved = false;
    while let Some(event) = events.recv().await {
        match event {
            Event::Progress(p) => {
                if let Some(entry) = journal
                    .partitions
                    .get_mut(&p.topic)
                    .and_then(|t| t.get_mut(&p.partition))
                {
                    entry.written = p.written;
                    entry.next_offset = p.next_offset;
                    entry.source_offset = p.source_offset;
                    entry.foreign = p.foreign;
                    unsaved = true;
                }
                if saved.elapsed() < PROGRESS_SAVE_INTERVAL {
                    continue;
                }
            }
            Event::Finished(f) => {
                log(f.line());
                outcome.partitions_restored += 1;
                outcome.records_written += f.written_total;
                outcome.records_skipped += f.skipped;
                if let Some(entry) = journal
                    .partitions
                    .get_mut(&f.topic)
                    .and_then(|t| t.get_mut(&f.partition))
                {
                    entry.done = true;
                    entry.written = f.written_total;
                    entry.next_offset = f.next_offset;
                    entry.source_offset = f.source_offset;
                    entry.skipped = f.skipped;
                    entry.foreign = f.foreign;
                }
            }
        }
        if save_error.is_some() {
            continue;
        }
        match journals.save(&journal).await {
            Ok(()) => {
                saved = Instant::now();
                unsaved = false;
            }
            Err(e) => {
                // no new partition without a journal; the ones under way finish
                stop.store(true, Ordering::Relaxed);
                save_error = Some(e);
            }
        }
    }
    if unsaved && save_error.is_none() {
        // progress of partitions that stopped: a rerun reads back less
        journals.save(&journal).await?;
    }
    let mut first_error = None;
    for handle in handles {
        if let Err(e) = handle.await.expect("a restore worker panicked") {
            first_error.get_or_insert(match e {
                RestoreError::CountMismatch {
                    topic,
                    partition,
                    found,
                    expected,
                    ..
                } => RestoreError::CountMismatch {
                    topic,
                    partition,
                    found,
                    expected,
                    journal: journals.display(),
                },
                RestoreError::Unreadable {
                    topic,
                    partition,
                    low,
                    next_offset,
                    ..
                } => RestoreError::Unreadable {
                    topic,
                    partition,
                    low,
                    next_offset,
                    journal: journals.display(),
                },
                other => other,
            });
        }
    }
    if let Some(e) = save_error {
        return Err(e.into());
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    outcome.ids_rewritten = totals.ids.load(Ordering::Relaxed);
    outcome.bytes = totals.bytes.load(Ordering::Relaxed);
    Ok(outcome)
}

/// How often, at most, progress within partitions is saved to the journal.
/// What was acknowledged after the last save is read back on a rerun.
const PROGRESS_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// What a worker tells the journal keeper.
enum Event {
    Progress(Progress),
    Finished(Finished),
}

/// Records of a partition confirmed in the target so far.
struct Progress {
    topic: String,
    partition: i32,
    written: u64,
    next_offset: i64,
    source_offset: Option<i64>,
    foreign: Vec<[i64; 2]>,
}

/// One partition to restore and what the journal says of it.
struct Partition<'a> {
    cluster: &'a Cluster,
    job: &'a TopicJob,
    partition: i32,
    manifest: &'a crate::manifest::PartitionManifest,
    progress: &'a PartitionProgress,
    append: bool,
}

#[derive(Default)]
struct Totals {
    ids: AtomicU64,
    bytes: AtomicU64,
}

/// A partition finished.
struct Finished {
    source_topic: String,
    topic: String,
    partition: i32,
    /// Records of the restore in the target, from this run and earlier ones.
    written_total: u64,
    /// The high watermark after the last one.
    next_offset: i64,
    source_offset: Option<i64>,
    foreign: Vec<[i64; 2]>,
    /// Of those, written by an earlier run (skipped here).
    resumed_after: u64,
    skipped: u64,
    rewritten: u64,
    seconds: f64,
}

impl Finished {
    fn line(&self) -> String {
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
/// were acknowledged or failed.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Option<(String, i32, i64, String)>>,
    acked: AtomicU64,
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

impl ProducerContext for Deliveries {
    /// The record's position in the restore of its partition (1-based) and
    /// its offset in the backup.
    type DeliveryOpaque = Box<(u64, i64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Box<(u64, i64)>) {
        let (position, offset) = *opaque;
        let failure = match result {
            Ok(m) => {
                let expected = self.base.load(Ordering::Relaxed) + position as i64;
                if m.offset() == expected {
                    self.acked.fetch_add(1, Ordering::Relaxed);
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
struct Worker {
    producer: BaseProducer<Deliveries, NoCustomPartitioner>,
    metadata: BaseConsumer,
}

impl Worker {
    fn new(cluster: &Cluster) -> Result<Self, KafkaError> {
        let mut config = cluster.client_config(&[
            ("linger.ms", "20"),
            ("batch.size", "1000000"),
            ("queue.buffering.max.kbytes", "65536"),
            ("message.timeout.ms", "300000"),
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
            .map_err(|source| KafkaError::Client {
                servers: cluster.servers.clone(),
                source,
            })?;
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

    /// Restores one partition from where its journal entry says: the
    /// target's records after the confirmed ones are read back and matched
    /// with the records the restore writes next (an interrupted run's), then
    /// the rest is produced. Progress goes to `events` as it is acknowledged.
    fn restore_partition(
        &self,
        runtime: &tokio::runtime::Handle,
        reader: &Arc<BackupReader>,
        work: &Partition<'_>,
        totals: &Totals,
        events: &tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Result<Finished, RestoreError> {
        let started = Instant::now();
        let (job, partition, manifest) = (work.job, work.partition, work.manifest);
        let metadata = &self.metadata;
        let (low, high) = kafka::watermarks(metadata, &job.target, partition)?;
        let resumed = resume::start(work.progress, low, high).map_err(|refusal| match refusal {
            resume::Refusal::Truncated { high, next_offset } => RestoreError::Truncated {
                topic: job.target.clone(),
                partition,
                high,
                start: next_offset,
            },
            resume::Refusal::Unreadable { low, next_offset } => RestoreError::Unreadable {
                topic: job.target.clone(),
                partition,
                low,
                next_offset,
                journal: String::new(),
            },
        })?;
        // what the target holds after the confirmed records, read back
        let readback = if resumed.read_from < resumed.high {
            Some(target::consumer(work.cluster)?)
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
                append: work.append,
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
                let got = fetcher_reader.read(&path).await;
                let failed = got.is_err();
                if tx.send((path, got)).await.is_err() || failed {
                    return;
                }
            }
        });

        let deliveries = self.producer.context();
        deliveries.acked.store(0, Ordering::Relaxed);
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
        // the journal's view: confirmed records and where the next lands
        let report = |written: u64, next_offset: i64, source: Option<i64>, foreign: &[[i64; 2]]| {
            let _ = events.send(Event::Progress(Progress {
                topic: job.target.clone(),
                partition,
                written,
                next_offset,
                source_offset: source,
                foreign: foreign.to_vec(),
            }));
        };
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
            let mut records = SegmentReader::new(&data[..]).map_err(segment_err)?;
            while let Some(mut record) = records.next_record().map_err(segment_err)? {
                match job.transform.apply(&mut record) {
                    Verdict::Write { rewritten: n } => {
                        position += 1;
                        if position <= resumed.written {
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
                                .store(resumed.high - position as i64, Ordering::Relaxed);
                        }
                        rewritten += u64::from(n);
                        bytes += record_bytes(&record);
                        self.send(&job.target, partition, position, record)?;
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
        let expected = resumed.high + sent as i64;
        if high != expected {
            return Err(RestoreError::CountMismatch {
                topic: job.target.clone(),
                partition,
                found: high,
                expected,
                journal: String::new(),
            });
        }
        if let Some(consumer) = readback {
            // a consumer with a group takes up to a second to close
            std::thread::spawn(move || drop(consumer));
        }
        totals.ids.fetch_add(rewritten, Ordering::Relaxed);
        totals.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(Finished {
            source_topic: job.source.clone(),
            topic: job.target.clone(),
            partition,
            written_total: position,
            next_offset: high,
            source_offset,
            foreign,
            resumed_after: resumed.written.min(position) + matched,
            skipped,
            rewritten,
            seconds: started.elapsed().as_secs_f64(),
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

    /// Produces one record, waiting while the producer's queue is full.
    fn send(
        &self,
        topic: &str,
        partition: i32,
        position: u64,
        record: Record,
    ) -> Result<(), RestoreError> {
        let mut base: BaseRecord<'_, [u8], [u8], Box<(u64, i64)>> =
            BaseRecord::with_opaque_to(topic, Box::new((position, record.offset)))
                .partition(partition);
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
struct Tail<'c> {
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
            if got.offset > self.expected {
                self.other(
                    [self.expected, got.offset],
                    "it holds no record (a transaction marker or an aborted record)".into(),
                    topic,
                    partition,
                )?;
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
        if self.expected < self.reader.high {
            self.other(
                [self.expected, self.reader.high],
                "it holds no record (a transaction marker or an aborted record)".into(),
                topic,
                partition,
            )?;
            self.expected = self.reader.high;
        }
        Ok(())
    }

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
        match self.foreign.last_mut() {
            Some(last) if last[1] == range[0] => last[1] = range[1],
            _ => self.foreign.push(range),
        }
        Ok(())
    }
}

fn record_bytes(r: &Record) -> u64 {
    let h: usize = r
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len) + h) as u64
}
