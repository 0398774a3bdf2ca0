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
//! - [`shard`]: which partitions shard `i` of `N` restores (`apply --shard`), pure.
//! - [`target`]: reading a target partition back (resuming, `verify`).
//! - [`topics`]: which topics are restored where and how, and creating them.
//! - `worker`: restoring one partition after another with one producer.
//!
//! This file holds the flow: the options, the errors, [`restore`] and its
//! phases, and what it did ([`RestoreOutcome`], and per topic in the
//! metrics: records and bytes acknowledged, records left to write).
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
pub mod groups;
pub mod journal;
pub mod offsets;
pub mod resume;
pub mod shard;
pub mod target;
pub mod topics;
pub mod transform;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use journal::{DataJournal, DataJournalError, DataJournalStore, PartitionProgress};
use rdkafka::consumer::BaseConsumer;
use tokio::sync::mpsc::UnboundedReceiver;
pub use topics::{Evidence, TopicJob, duplicate_targets, jobs};
use worker::{Event, Shared, Tally, Totals, Work, Worker};

use crate::config::Config;
use crate::kafka::{self, Cluster, KafkaError, REQUEST_TIMEOUT};
use crate::manifest::{BackupReader, PartitionManifest, ReadError};
use crate::metrics::Metrics;
use crate::segment::SegmentError;

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
    #[error(
        "`target.topics` selects none of the backup's topics (include {include}, exclude {exclude}); the backup holds {backed_up}\nhint: the patterns match backed-up names, before `topic_mapping`; to restore only the registry, run `apply --registry-only`"
    )]
    NoTopicSelected {
        include: String,
        exclude: String,
        backed_up: String,
    },
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
    #[error(
        "`{topic}` partition {partition} was partly restored by another run, whose journal is `{journal}`: only that run goes on with it (this one would write its records from its own journal)\nhint: finish it with `apply` {how}, then rerun this one"
    )]
    PartlyElsewhere {
        topic: String,
        partition: i32,
        journal: String,
        /// How to run the run that holds it (`with `--shard 1/3``).
        how: String,
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
        "`{topic}` partition {partition} has no offset map: it was restored by a version of kafka-backup that kept none, so the consumer groups' offsets on it cannot be translated\nhint: leave the groups out (`target.consumer_groups.enabled: false`), or restore into an empty topic under a new name with `target.topic_mapping`"
    )]
    NoOffsetMap { topic: String, partition: i32 },
    #[error(
        "consumer group `{group}` is live in the target ({state}; {members} member(s) listed): its offsets are its consumers' to move, none was set\nhint: stop the group's consumers in the target and rerun the same `apply` (the data is done), or leave the group out with `target.consumer_groups.exclude`"
    )]
    GroupLive {
        group: String,
        state: String,
        members: u32,
    },
    #[error(
        "consumer group `{group}` committed other offsets in the target since the plan was made ({moved}): none was moved\nhint: something consumed as this group in the target (or an interrupted apply set it and its consumers read on); run `plan` again to review where it stands, and apply the new plan"
    )]
    GroupMoved { group: String, moved: String },
    #[error(
        "consumer group `{group}`: the offsets committed ({wanted}) do not read back ({found})\nhint: another client commits for this group in the target; stop it and rerun the same `apply`"
    )]
    GroupNotSet {
        group: String,
        wanted: String,
        found: String,
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

impl RestoreError {
    /// Why `topic` partition `partition` is refused ([`resume`]); `journal`
    /// names the restore journal.
    fn refused(topic: &str, partition: i32, refusal: resume::Refusal, journal: &str) -> Self {
        let topic = topic.to_owned();
        match refusal {
            resume::Refusal::Truncated { high, next_offset } => Self::Truncated {
                topic,
                partition,
                high,
                start: next_offset,
            },
            resume::Refusal::Unreadable { low, next_offset } => Self::Unreadable {
                topic,
                partition,
                low,
                next_offset,
                journal: journal.to_owned(),
            },
            resume::Refusal::ToTimestampChanged { done, was, now } => Self::ToTimestampChanged {
                topic,
                partition,
                done,
                was,
                now,
            },
            resume::Refusal::ShapeChanged { done, what } => Self::ShapeChanged {
                topic,
                partition,
                done,
                what,
                journal: journal.to_owned(),
            },
            resume::Refusal::NotEmpty { records } => {
                Self::NotEmpty(vec![(topic, partition, records)])
            }
        }
    }
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
///
/// First the target's topics: those it lacks are created, those it has
/// must have every partition. Then each partition is decided from the
/// journal and the target (`plan_partitions`) and the journal saved before
/// anything is written. Then workers restore the partitions while the
/// journal keeps up with them (`run_workers`).
pub async fn restore(
    cluster: &Cluster,
    reader: Arc<BackupReader>,
    jobs: &[TopicJob],
    journals: &DataJournalStore,
    maps: &offsets::OffsetMapStore,
    options: &RestoreOptions,
    log: &(dyn Fn(String) + Sync),
) -> Result<RestoreOutcome, RestoreError> {
    let mut journal = journals
        .load()
        .await?
        .unwrap_or_else(|| DataJournal::new(&cluster.servers));
    // entries of restores the journal no longer records are dropped when
    // the map is next saved
    let map = maps.load(Some(&journal)).await?;

    // topics: what exists, what to create
    let consumer = cluster.metadata_consumer()?;
    let mut layout = kafka::layout(&consumer, cluster)?;
    let mut to_create = topics::missing(jobs, &layout.topics)?;
    if options.dry_run {
        for line in topics::preview(jobs, &to_create) {
            log(line);
        }
        return Ok(RestoreOutcome::default());
    }
    let deleted = |to_create: &[&TopicJob]| {
        resume::deleted(&journal, to_create.iter().map(|j| j.target.as_str())).map(str::to_owned)
    };
    if deleted(&to_create).is_some() {
        // another shard may have created it a moment ago, and the broker
        // that answered not know it yet: ask again before calling it deleted
        tokio::time::sleep(METADATA_LAG).await;
        layout = kafka::layout(&consumer, cluster)?;
        to_create = topics::missing(jobs, &layout.topics)?;
    }
    if let Some(topic) = deleted(&to_create) {
        // the file holding its entries: this run's, or another shard's
        let journal = journal
            .partitions
            .get(&topic)
            .and_then(|ps| ps.keys().next())
            .and_then(|&p| journal.held_elsewhere(&topic, p))
            .map_or_else(|| journals.display(), str::to_owned);
        return Err(RestoreError::Deleted { topic, journal });
    }
    // the producers first: an idempotent producer waits for its producer ID
    // before its first send, which overlaps the topic creation this way
    let workers = (0..worker_count(jobs, &journal, options))
        .map(|_| Worker::new(cluster))
        .collect::<Result<Vec<_>, _>>()?;
    let topics_created = topics::create_topics(cluster, &to_create, layout.brokers, log).await?;

    // partitions: where each goes on, or where it starts (saved before writing)
    let journal_path = journals.display();
    let planned = plan_partitions(&consumer, jobs, &mut journal, options, &journal_path)?;
    journals.save(&journal).await?;
    drop(consumer);
    let meter = Meter::start(crate::metrics::global(), &planned.work);

    let shared = Shared {
        cluster: cluster.clone(),
        reader,
        runtime: tokio::runtime::Handle::current(),
        append: options.append,
        journal: journal_path,
        queue: Mutex::new(planned.work.into_iter()),
        stop: AtomicBool::new(false),
        totals: Totals::default(),
    };
    let ran = run_workers(workers, shared, journal, journals, (map, maps), meter, log).await?;
    Ok(RestoreOutcome {
        topics_created,
        partitions_done_before: planned.done_before,
        ..ran
    })
}

/// How long a restore waits before it asks the target's metadata again
/// about a topic its journal has entries of and the target seems to lack.
const METADATA_LAG: Duration = Duration::from_secs(2);

/// How many workers (one producer each) restore at once:
/// `partition_concurrency` (1 to 64), no more than partitions are left.
fn worker_count(jobs: &[TopicJob], journal: &DataJournal, options: &RestoreOptions) -> usize {
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
    options.partition_concurrency.clamp(1, 64).min(pending)
}

/// The partitions a restore writes to, and how many it had finished before.
struct Planned {
    work: Vec<Work>,
    done_before: u64,
}

/// Decides every partition from its journal entry and the target's
/// watermarks ([`resume`]): one restored before is left out once its
/// records are found still there, one partly restored goes on from its
/// entry, one not written to yet gets an entry in `journal` (to be saved
/// before anything is written). Partitions that hold records already are
/// refused together, unless appending; any other refusal stops at once.
fn plan_partitions(
    consumer: &BaseConsumer,
    jobs: &[TopicJob],
    journal: &mut DataJournal,
    options: &RestoreOptions,
    journal_path: &str,
) -> Result<Planned, RestoreError> {
    let mut planned = Planned {
        work: Vec::new(),
        done_before: 0,
    };
    let mut nonempty = Vec::new();
    let mut fresh = Vec::new();
    for job in jobs {
        let map = job.transform.sorted_map();
        let settings = resume::Settings {
            source_topic: &job.source,
            to_timestamp: options.to_timestamp,
            missing_id_policy: job.transform.policy,
            map: map.as_ref(),
            rewrite_key: job.transform.rewrite_key,
            rewrite_value: job.transform.rewrite_value,
        };
        for (&partition, manifest) in &job.manifest.partitions {
            let refused =
                |refusal| RestoreError::refused(&job.target, partition, refusal, journal_path);
            let work = |progress| Work {
                job: job.clone(),
                partition,
                manifest: manifest.clone(),
                progress,
            };
            match resume::recorded(journal, &job.target, partition, &settings).map_err(refused)? {
                resume::Recorded::Done(progress) => {
                    let (_, high) = kafka::watermarks(consumer, &job.target, partition)?;
                    resume::still_done(progress, high).map_err(refused)?;
                    planned.done_before += 1;
                }
                resume::Recorded::Partly(progress) => {
                    if let Some(file) = journal.held_elsewhere(&job.target, partition) {
                        return Err(RestoreError::PartlyElsewhere {
                            topic: job.target.clone(),
                            partition,
                            journal: file.to_owned(),
                            how: journal::writer_hint(file),
                        });
                    }
                    planned.work.push(work(progress.clone()))
                }
                resume::Recorded::Nothing => {
                    let (low, high) = kafka::watermarks(consumer, &job.target, partition)?;
                    match resume::begin(journal, &settings, options.append, low, high) {
                        Ok(progress) => {
                            fresh.push((job.target.clone(), partition, progress.clone()));
                            planned.work.push(work(progress));
                        }
                        Err(resume::Refusal::NotEmpty { records }) => {
                            nonempty.push((job.target.clone(), partition, records));
                        }
                        Err(other) => return Err(refused(other)),
                    }
                }
            }
        }
    }
    if !nonempty.is_empty() {
        return Err(RestoreError::NotEmpty(nonempty));
    }
    for (topic, partition, progress) in fresh {
        journal.set(&topic, partition, progress);
    }
    Ok(planned)
}

/// Runs `workers` over the partitions of `shared`'s queue, keeping the
/// journal as they go ([`keep_journal`]), and says what they did. A journal
/// that cannot be saved is the error, before any worker's.
async fn run_workers(
    workers: Vec<Worker>,
    shared: Shared,
    mut journal: DataJournal,
    journals: &DataJournalStore,
    (mut map, maps): (offsets::OffsetMap, &offsets::OffsetMapStore),
    mut meter: Meter<'_>,
    log: &(dyn Fn(String) + Sync),
) -> Result<RestoreOutcome, RestoreError> {
    let shared = Arc::new(shared);
    let (event_tx, events) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let handles: Vec<_> = workers
        .into_iter()
        .map(|worker| {
            let (shared, event_tx) = (shared.clone(), event_tx.clone());
            tokio::task::spawn_blocking(move || worker.run(&shared, &event_tx))
        })
        .collect();
    drop(event_tx);
    let mut outcome = RestoreOutcome::default();
    let kept = keep_journal(
        events,
        &mut journal,
        journals,
        (&mut map, maps),
        &shared.stop,
        &mut meter,
        log,
        &mut outcome,
    )
    .await;
    let mut first_error = None;
    for handle in handles {
        if let Err(e) = handle.await.expect("a restore worker panicked") {
            first_error.get_or_insert(e);
        }
    }
    kept?;
    if let Some(e) = first_error {
        return Err(e);
    }
    outcome.ids_rewritten = shared.totals.ids.load(Ordering::Relaxed);
    outcome.bytes = shared.totals.bytes.load(Ordering::Relaxed);
    Ok(outcome)
}

/// How often, at most, progress within partitions is saved to the journal.
/// What was acknowledged after the last save is read back on a rerun.
const PROGRESS_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps the journal while the workers run, until the last one is done:
/// progress within partitions is saved at most every
/// [`PROGRESS_SAVE_INTERVAL`] (and once more at the end), a finished
/// partition at once (its offset map first: a partition the journal calls
/// done has its map saved), and counted in `outcome` and the metrics
/// (`meter`). When a save fails no worker takes another partition; the ones
/// under way finish, and the failure is returned.
#[allow(clippy::too_many_arguments)]
async fn keep_journal(
    mut events: UnboundedReceiver<Event>,
    journal: &mut DataJournal,
    journals: &DataJournalStore,
    (map, maps): (&mut offsets::OffsetMap, &offsets::OffsetMapStore),
    stop: &AtomicBool,
    meter: &mut Meter<'_>,
    log: &(dyn Fn(String) + Sync),
    outcome: &mut RestoreOutcome,
) -> Result<(), DataJournalError> {
    let mut save_error = None;
    let mut saved = Instant::now();
    let mut unsaved = false;
    while let Some(event) = events.recv().await {
        match event {
            Event::Progress(p) => {
                let (topic, partition, written, acked) = p.confirmed();
                meter.confirmed(topic, partition, written, acked);
                unsaved |= p.record(journal);
                if saved.elapsed() < PROGRESS_SAVE_INTERVAL {
                    continue;
                }
            }
            Event::Finished(f) => {
                log(f.line());
                meter.finished(&f.topic, f.partition, f.acked);
                outcome.partitions_restored += 1;
                outcome.records_written += f.written_total;
                outcome.records_skipped += f.skipped;
                let (topic, partition) = (f.topic.clone(), f.partition);
                let landed = f.record(journal);
                map.set(&topic, partition, landed);
                if save_error.is_none()
                    && let Err(e) = maps.save(map).await
                {
                    stop.store(true, Ordering::Relaxed);
                    save_error = Some(e);
                }
            }
        }
        if save_error.is_some() {
            continue;
        }
        match journals.save(journal).await {
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
    if let Some(e) = save_error {
        return Err(e);
    }
    if unsaved {
        // progress of partitions that stopped: a rerun reads back less
        journals.save(journal).await?;
    }
    Ok(())
}

/// The records of `partition` a restore may write, from its first: every
/// record of its segments (of every member of an incremental chain, which
/// the reader joined into one list). Exact unless records are left out as
/// they are read (`--to-timestamp`, `missing_id_policy: skip`), which no
/// manifest field counts ahead (a record without a timestamp is written
/// whatever `--to-timestamp` says, and the manifest does not count those):
/// then an upper bound.
fn to_write(partition: &PartitionManifest) -> u64 {
    partition.segments.iter().map(|s| s.meta.record_count).sum()
}

/// The restore's share of the metrics ([`crate::metrics`]), kept per target
/// partition. `lag_records` starts at what is left to write of each
/// ([`to_write`], less the records the journal says are confirmed) and
/// goes down as the confirmed count goes up, to 0 when the partition is
/// done (taking off what was left out); `records` and `bytes` go up by what
/// this run's producers had acknowledged.
struct Meter<'m> {
    metrics: &'m Metrics,
    partitions: std::collections::HashMap<(String, i32), Metered>,
}

/// One partition in the [`Meter`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Metered {
    /// [`to_write`]: records of the partition, from its first.
    bound: u64,
    /// What the lag holds of the partition now.
    left: u64,
    /// Acknowledged to this run's producer, as counted so far.
    acked: Tally,
}

impl<'m> Meter<'m> {
    /// Adds what `work`, the partitions to restore, has left to write to
    /// the lag.
    fn start(metrics: &'m Metrics, work: &[Work]) -> Self {
        let mut partitions = std::collections::HashMap::new();
        for w in work {
            let bound = to_write(&w.manifest);
            let left = bound.saturating_sub(w.progress.written);
            metrics
                .lag
                .get_or_create(&metrics.topic(&w.job.target))
                .inc_by(gauge(left));
            let metered = Metered {
                bound,
                left,
                acked: Tally::default(),
            };
            partitions.insert((w.job.target.clone(), w.partition), metered);
        }
        Self {
            metrics,
            partitions,
        }
    }

    /// `written` of the restore's records of `topic` partition `partition`
    /// are confirmed (from its first: earlier runs' included), `acked` of
    /// them acknowledged to this run's producer.
    fn confirmed(&mut self, topic: &str, partition: i32, written: u64, acked: Tally) {
        let entry = self
            .partitions
            .entry((topic.to_owned(), partition))
            .or_default();
        let left = entry.left.min(entry.bound.saturating_sub(written));
        let (was_left, was_acked) = (entry.left, entry.acked);
        entry.left = left;
        entry.acked.records = was_acked.records.max(acked.records);
        entry.acked.bytes = was_acked.bytes.max(acked.bytes);
        let label = self.metrics.topic(topic);
        if was_left > left {
            self.metrics
                .lag
                .get_or_create(&label)
                .dec_by(gauge(was_left - left));
        }
        if acked.records > was_acked.records {
            self.metrics
                .records
                .get_or_create(&label)
                .inc_by(acked.records - was_acked.records);
        }
        if acked.bytes > was_acked.bytes {
            self.metrics
                .bytes
                .get_or_create(&label)
                .inc_by(acked.bytes - was_acked.bytes);
        }
    }

    /// `topic` partition `partition` is done, `acked` written by this run:
    /// nothing of it is left.
    fn finished(&mut self, topic: &str, partition: i32, acked: Tally) {
        self.confirmed(topic, partition, u64::MAX, acked);
    }
}

/// `n` as a gauge's value.
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::MissingIdPolicy;
    use crate::manifest::{PartitionManifest, TopicManifest};

    fn job(target: &str, partitions: i32) -> TopicJob {
        let partition = PartitionManifest {
            low_watermark: 0,
            high_watermark: 0,
            last_stable_offset: None,
            left_out_from: None,
            continues_from: None,
            record_count: 0,
            segments: Vec::new(),
            schema_ids: Default::default(),
        };
        TopicJob {
            source: target.into(),
            target: target.into(),
            manifest: TopicManifest {
                partition_count: partitions as u32,
                replication_factor: 1,
                configs: BTreeMap::new(),
                partitions: (0..partitions).map(|p| (p, partition.clone())).collect(),
            },
            transform: transform::Transform {
                map: None,
                policy: MissingIdPolicy::Fail,
                to_timestamp: None,
                rewrite_key: false,
                rewrite_value: false,
            },
            fields: None,
        }
    }

    #[test]
    fn no_more_workers_than_partitions_left() {
        let jobs = [job("a", 3), job("b", 2)];
        let options = |n| RestoreOptions {
            partition_concurrency: n,
            ..RestoreOptions::default()
        };
        let mut journal = DataJournal::new("c");
        assert_eq!(worker_count(&jobs, &journal, &options(4)), 4);
        assert_eq!(worker_count(&jobs, &journal, &options(10)), 5);
        assert_eq!(worker_count(&jobs, &journal, &options(0)), 1);
        // partitions done before need none; partly restored ones do
        let settings = resume::Settings {
            source_topic: "a",
            to_timestamp: None,
            missing_id_policy: MissingIdPolicy::Fail,
            map: None,
            rewrite_key: false,
            rewrite_value: false,
        };
        let entry = resume::begin(&mut journal, &settings, false, 0, 0).unwrap();
        for p in 0..3 {
            journal.set(
                "a",
                p,
                PartitionProgress {
                    done: p != 1,
                    ..entry.clone()
                },
            );
        }
        assert_eq!(worker_count(&jobs, &journal, &options(10)), 3);
        for p in 0..2 {
            journal.set(
                "b",
                p,
                PartitionProgress {
                    done: true,
                    ..entry.clone()
                },
            );
        }
        journal.set(
            "a",
            1,
            PartitionProgress {
                done: true,
                ..entry
            },
        );
        assert_eq!(worker_count(&jobs, &journal, &options(10)), 0);
        let many: Vec<TopicJob> = (0..100).map(|i| job(&format!("t{i}"), 1)).collect();
        assert_eq!(
            worker_count(&many, &DataJournal::new("c"), &options(1000)),
            64
        );
    }

    /// Partition `partition` of `job`, with segments of `counts` records,
    /// `written` of them confirmed by an earlier run.
    fn work(job: &TopicJob, partition: i32, counts: &[u64], written: u64) -> Work {
        let mut manifest = job.manifest.partitions[&0].clone();
        manifest.segments = counts
            .iter()
            .enumerate()
            .map(|(i, &n)| crate::manifest::SegmentEntry {
                path: format!("s{i}"),
                meta: crate::segment::SegmentMeta {
                    first_offset: 0,
                    last_offset: 0,
                    record_count: n,
                    min_timestamp: None,
                    max_timestamp: None,
                    uncompressed_bytes: 0,
                    size: 0,
                    sha256: String::new(),
                },
            })
            .collect();
        manifest.record_count = counts.iter().sum();
        let settings = resume::Settings {
            source_topic: &job.source,
            to_timestamp: None,
            missing_id_policy: MissingIdPolicy::Fail,
            map: None,
            rewrite_key: false,
            rewrite_value: false,
        };
        let progress = resume::begin(&mut DataJournal::new("c"), &settings, false, 0, 0).unwrap();
        Work {
            job: job.clone(),
            partition,
            manifest,
            progress: PartitionProgress {
                written,
                ..progress
            },
        }
    }

    #[test]
    fn the_lag_is_what_is_left_to_confirm_and_ends_at_zero() {
        let metrics = Metrics::new();
        let (a, b) = (job("a", 2), job("b", 1));
        let work = [
            work(&a, 0, &[10, 5], 0),
            // resumed: 8 confirmed by an earlier run
            work(&a, 1, &[20], 8),
            work(&b, 0, &[7], 0),
        ];
        let mut meter = Meter::start(&metrics, &work);
        let value = |family: &str, topic: &str| {
            let label = metrics.topic(topic);
            match family {
                "lag" => metrics.lag.get_or_create(&label).get(),
                "records" => metrics.records.get_or_create(&label).get() as i64,
                _ => metrics.bytes.get_or_create(&label).get() as i64,
            }
        };
        let all = |topic: &str| {
            [
                value("lag", topic),
                value("records", topic),
                value("bytes", topic),
            ]
        };
        assert_eq!(all("a"), [15 + 12, 0, 0]);
        assert_eq!(all("b"), [7, 0, 0]);
        let tally = |records, bytes| Tally { records, bytes };

        meter.confirmed("a", 0, 4, tally(4, 40));
        assert_eq!(all("a"), [23, 4, 40]);
        // the resumed partition: its positions count the earlier run's records
        meter.confirmed("a", 1, 10, tally(2, 30));
        assert_eq!(all("a"), [21, 6, 70]);
        // the same progress again changes nothing
        meter.confirmed("a", 1, 10, tally(2, 30));
        assert_eq!(all("a"), [21, 6, 70]);
        // a rerun found 3 records of the interrupted run in the target: they
        // are confirmed now, written by that run
        meter.confirmed("a", 1, 13, tally(2, 30));
        assert_eq!(all("a"), [18, 6, 70]);
        // partition 0 done with 13 records written, 2 left out (say, newer
        // than --to-timestamp): none of it is left
        meter.finished("a", 0, tally(13, 130));
        assert_eq!(all("a"), [7, 15, 160]);
        meter.finished("a", 1, tally(9, 100));
        assert_eq!(all("a"), [0, 22, 230]);
        assert_eq!(all("b"), [7, 0, 0]);
        meter.finished("b", 0, tally(7, 70));
        assert_eq!(all("b"), [0, 7, 70]);
    }
}
