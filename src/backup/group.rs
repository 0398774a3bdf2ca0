//! `backup --group`: several processes (on one host or many) back up one
//! backup together. They join one Kafka consumer group for the backup's
//! topics and the group protocol shares the partitions out; there is no
//! coordinator of our own.
//!
//! 1. The first worker to arrive, holding the backup ID's lease for the
//!    moment, reads the ends, the groups' offsets and the registry, exactly
//!    as a single run does, and publishes them as the frame (`frame.rs`);
//!    the others read it. Nothing clears the folder once a frame exists.
//! 2. Each worker subscribes to the frame's topics. The group consumer only
//!    holds membership (its partitions are paused); each partition assigned
//!    is backed up by the single run's per-partition code, from after its
//!    last stored segment up to the frame's end. A revoked partition is
//!    stopped before the rebalance callback returns.
//! 3. A completed partition writes its part create-only (`parts.rs`).
//!    Workers with nothing left to do stay in the group (they take over
//!    the partitions of a worker that leaves or dies) until every partition
//!    has a part.
//! 4. Then one worker at a time (the lease again) checks every part's chain
//!    against storage, assembles the manifest as one run would have, and
//!    publishes it create-only; the others find it and exit 0.
//!
//! Two workers that write one partition at once (a member the group gave
//! up on that still runs) write the same segments: cuts depend only on the
//! records and where the chain started, and the frame fixes the cutting and
//! compression for every worker.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use super::frame::{self, Frame, FrameRegistry, FrameTopic, Worker};
use super::parts::{self, Part};
use super::topics::{self, PartitionJob, Progress};
use super::{BackupError, BackupOptions, Taken};
use crate::config::{Config, KafkaSource};
use crate::kafka::{self, Cluster};
use crate::lease::{Lease, LeaseError};
use crate::manifest::{BackupReader, MANIFEST_FILE, Manifest, PartitionManifest};
use crate::storage::Store;

/// The lease command of a group worker: another group worker holding the
/// backup ID's lease is waited for, anything else refuses.
pub const GROUP_COMMAND: &str = "backup --group";

/// How a worker takes part in a group backup.
#[derive(Debug, Clone, Default)]
pub struct GroupOptions {
    /// The consumer group; `kafka-backup.<backup_id>` when `None`.
    pub group_id: Option<String>,
    /// How long a worker with nothing to do waits while no partition of the
    /// backup advances; 600 s plus `source.open_transaction_wait_secs` when `None`.
    pub wait: Option<Duration>,
    /// SIGINT / SIGTERM: the worker stops its partitions (what is stored
    /// stays), leaves the group, and ends with [`BackupError::Interrupted`].
    pub interrupt: Option<Arc<crate::interrupt::Interrupt>>,
}

/// How a group worker's run ended.
#[derive(Debug)]
pub struct GroupOutcome {
    pub manifest: Manifest,
    /// This worker published the manifest (otherwise another one did).
    pub published_here: bool,
    /// Partitions this worker completed.
    pub completed_here: usize,
}

/// The default group of a backup.
pub fn default_group_id(backup_id: &str) -> String {
    format!("kafka-backup.{backup_id}")
}

/// Runs one worker of a group backup to the end: the manifest published, by
/// this worker or another.
pub async fn run(
    config: &Config,
    options: &BackupOptions,
    group: &GroupOptions,
) -> Result<GroupOutcome, BackupError> {
    let backup_id = super::backup_id(config)?;
    if config
        .storage
        .as_ref()
        .is_some_and(|s| s.encryption.is_some())
    {
        return Err(BackupError::Unsupported(
            "`backup --group` does not take `storage.encryption` yet: run an encrypted backup as one process (`backup` without `--group`)".into(),
        ));
    }
    if config.incremental_from.is_some() {
        return Err(BackupError::Incremental {
            reason: "`backup --group` does not take `incremental_from` yet: run an incremental backup as one process (`backup` without `--group`)".into(),
        });
    }
    // the partitions are what the workers share: without a cluster there is
    // nothing to share out
    let source = config.source.as_ref().ok_or(BackupError::Missing {
        key: "source.bootstrap_servers",
    })?;
    let cluster = Cluster::new("source", &source.bootstrap_servers, &source.properties)?;
    let group_id = group
        .group_id
        .clone()
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| default_group_id(&backup_id));
    let wait = group
        .wait
        .unwrap_or(Duration::from_secs(600 + source.open_transaction_wait_secs));
    let store = crate::storage::Location::from_config(config.storage.as_ref())?.open()?;
    let keys = frame::config_keys(config, &group_id);

    let existing = read_manifest(&store, &backup_id).await?;
    let frame = match existing {
        Some(manifest) => {
            // a group backup that is done already: a worker started late
            // (a restarted pod) has nothing to do
            match frame::read(&store, &backup_id).await? {
                Some(frame) => {
                    refuse_differences(&store, &frame, &keys)?;
                    tracing::info!(backup_id, "the backup is complete already");
                    return Ok(GroupOutcome {
                        manifest,
                        published_here: false,
                        completed_here: 0,
                    });
                }
                None => {
                    return Err(BackupError::AlreadyExists {
                        backup_id,
                        location: store.to_string(),
                    });
                }
            }
        }
        None => {
            join_or_frame(
                config, options, &store, &backup_id, &group_id, &keys, source, &cluster, wait,
            )
            .await?
        }
    };
    refuse_differences(&store, &frame, &keys)?;
    if (options.segment_bytes, options.zstd_level) != (frame.segment_bytes, frame.zstd_level) {
        tracing::warn!(
            frame_segment_bytes = frame.segment_bytes,
            frame_zstd_level = frame.zstd_level,
            "this worker was started with other segment settings than the frame's: it cuts and compresses segments as the frame says, like every worker of the backup"
        );
    }
    let frame = Arc::new(frame);
    tracing::info!(
        backup_id,
        group = group_id,
        partitions = frame.partition_count(),
        framed_by = %frame.framed_by,
        "joining the group backup"
    );

    let completed_here = if frame.partition_count() > 0 {
        let ctx = WorkerCtx {
            cluster,
            store: store.clone(),
            backup_id: backup_id.clone(),
            frame: Arc::clone(&frame),
            transaction_wait: Duration::from_secs(source.open_transaction_wait_secs),
            concurrency: options.partition_concurrency.max(1),
            runtime: tokio::runtime::Handle::current(),
            progress: Arc::new(Progress::default()),
        };
        let group_id = group_id.clone();
        let interrupt = group.interrupt.clone().unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            interrupt.section_saying(
                "stopping this worker's partitions (their stored segments stay) and leaving the group, whose other workers take them over (signal again to exit at once)".into(),
                "this worker did not leave the group: its partitions go to the other workers once the broker drops it (`session.timeout.ms`); the stored segments stay".into(),
                || work(ctx, &group_id, wait, &interrupt),
            )
        })
        .await
        .map_err(|e| BackupError::Task(e.to_string()))??
    } else {
        0
    };
    let (manifest, published_here) = publish_when_complete(config, &store, &frame, wait).await?;
    Ok(GroupOutcome {
        manifest,
        published_here,
        completed_here,
    })
}

/// Refuses a worker whose configuration would back up something else than
/// the frame says, naming every key that differs.
fn refuse_differences(
    store: &Store,
    frame: &Frame,
    keys: &BTreeMap<String, String>,
) -> Result<(), BackupError> {
    let differences = frame::differences(&frame.config, keys);
    if differences.is_empty() {
        return Ok(());
    }
    Err(BackupError::FrameMismatch {
        backup_id: frame.backup_id.clone(),
        location: store.to_string(),
        framed_by: frame.framed_by.to_string(),
        framed_at: frame.started_at.clone(),
        differences: differences
            .iter()
            .map(|d| format!("  {d}"))
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// The published manifest of `backup_id`, if there is one.
async fn read_manifest(store: &Store, backup_id: &str) -> Result<Option<Manifest>, BackupError> {
    match BackupReader::open(store, backup_id).await {
        Ok(reader) => Ok(Some(reader.manifest)),
        Err(crate::manifest::ReadError::NotFound { .. }) => Ok(None),
        Err(e) => Err(BackupError::BadFile {
            path: format!("{backup_id}/{MANIFEST_FILE}"),
            reason: e.to_string(),
        }),
    }
}

/// Takes the backup ID's lease for one step of a group backup, waiting (up
/// to `wait`) while another worker of the group holds it. A single run
/// holding it refuses, naming it.
async fn group_lease(
    store: &Store,
    backup_id: &str,
    force: bool,
    wait: Duration,
) -> Result<Lease, BackupError> {
    let started = Instant::now();
    loop {
        match Lease::acquire(
            store,
            &format!("backup-{backup_id}"),
            &format!("backup `{backup_id}` in `{store}`"),
            GROUP_COMMAND,
            force,
        )
        .await
        {
            Ok(lease) => return Ok(lease),
            // another worker of the group frames or publishes: wait for it
            Err(LeaseError::Held { command, .. })
                if command == GROUP_COMMAND && started.elapsed() < wait =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(LeaseError::Raced { .. }) if started.elapsed() < wait => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(Box::new(e).into()),
        }
    }
}

/// The frame of the backup: read, or made and published by this worker.
#[allow(clippy::too_many_arguments)]
async fn join_or_frame(
    config: &Config,
    options: &BackupOptions,
    store: &Store,
    backup_id: &str,
    group_id: &str,
    keys: &BTreeMap<String, String>,
    source: &KafkaSource,
    cluster: &Cluster,
    wait: Duration,
) -> Result<Frame, BackupError> {
    if let Some(frame) = frame::read(store, backup_id).await? {
        return Ok(frame);
    }
    let lease = group_lease(store, backup_id, options.force_unlock, wait).await?;
    let made = make_frame(
        config, options, store, backup_id, group_id, keys, source, cluster,
    )
    .await;
    lease.release().await;
    made
}

/// Under the lease: the frame another worker published meanwhile, or a new
/// one (what an interrupted single run left is cleared first, as that run's
/// rerun would).
#[allow(clippy::too_many_arguments)]
async fn make_frame(
    config: &Config,
    options: &BackupOptions,
    store: &Store,
    backup_id: &str,
    group_id: &str,
    keys: &BTreeMap<String, String>,
    source: &KafkaSource,
    cluster: &Cluster,
) -> Result<Frame, BackupError> {
    if let Some(frame) = frame::read(store, backup_id).await? {
        return Ok(frame);
    }
    super::prepare_folder(store, backup_id).await?;
    let started_at = super::now();
    // the same order as a single run: groups, ends, then the registry
    let (selected, consumer_groups) = super::select_topics(cluster, source, options.allow_empty)?;
    let admin = cluster.admin()?;
    let mut topics = BTreeMap::new();
    for (topic, ends) in &selected {
        let configs = kafka::topic_configs(&admin, &topic.name).await?;
        topics.insert(
            topic.name.clone(),
            FrameTopic {
                partition_count: topic.partitions.len() as u32,
                replication_factor: topic.replication_factor as u32,
                configs,
                partitions: topic
                    .partitions
                    .iter()
                    .zip(ends)
                    .map(|(&p, e)| {
                        (
                            p,
                            frame::Ends {
                                low: e.low,
                                high: e.high,
                                last_stable: e.last_stable,
                            },
                        )
                    })
                    .collect(),
            },
        );
    }
    let sr = &config.enterprise.schema_registry;
    let registry = if sr.enabled {
        let (_, snapshot, report) = super::read_registry(sr).await?;
        Some(FrameRegistry { snapshot, report })
    } else {
        None
    };
    let frame = Frame {
        format: frame::FRAME_FORMAT.to_owned(),
        backup_id: backup_id.to_owned(),
        group_id: group_id.to_owned(),
        started_at,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        framed_by: Worker::me(),
        config: keys.clone(),
        segment_bytes: options.segment_bytes,
        zstd_level: options.zstd_level,
        servers: cluster.servers.clone(),
        topics,
        consumer_groups,
        registry,
    };
    if frame::create(store, &frame).await? {
        tracing::info!(
            backup_id,
            partitions = frame.partition_count(),
            "published the frame of the group backup"
        );
        Ok(frame)
    } else {
        frame::read(store, backup_id)
            .await?
            .ok_or_else(|| BackupError::BadFile {
                path: format!("{backup_id}/{}", frame::FRAME_FILE),
                reason: "it existed a moment ago and is gone now".into(),
            })
    }
}

/// What the partition jobs of one worker share.
#[derive(Clone)]
struct WorkerCtx {
    cluster: Cluster,
    store: Store,
    backup_id: String,
    frame: Arc<Frame>,
    transaction_wait: Duration,
    concurrency: usize,
    runtime: tokio::runtime::Handle,
    progress: Arc<Progress>,
}

type Key = (String, i32);

/// How a partition job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobEnd {
    /// This worker completed the partition and wrote its part.
    Completed,
    /// The partition had a part already (another worker completed it).
    CompletedElsewhere,
    /// Revoked before the end.
    Stopped,
}

struct Running {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Result<JobEnd, BackupError>>,
}

/// The partitions of one worker, shared between its loop and the group
/// consumer's rebalance callbacks (which run inside its `poll`).
#[derive(Default)]
struct State {
    /// Assigned to this worker by the group now, not yet done.
    queue: VecDeque<Key>,
    running: BTreeMap<Key, Running>,
    /// Known to have a part.
    done: BTreeSet<Key>,
    completed_here: usize,
    /// The first failure of a job: the worker stops with it.
    failure: Option<BackupError>,
}

impl State {
    fn ended(&mut self, key: Key, joined: std::thread::Result<Result<JobEnd, BackupError>>) {
        match joined {
            Ok(Ok(JobEnd::Completed)) => {
                self.completed_here += 1;
                self.done.insert(key);
            }
            Ok(Ok(JobEnd::CompletedElsewhere)) => {
                self.done.insert(key);
            }
            Ok(Ok(JobEnd::Stopped)) => {}
            Ok(Err(e)) => {
                self.failure.get_or_insert(e);
            }
            Err(_) => {
                self.failure.get_or_insert(BackupError::Task(format!(
                    "the backup of `{}` partition {} panicked",
                    key.0, key.1
                )));
            }
        }
    }
}

/// The group consumer's context: keeps [`State`] in step with the
/// assignment.
struct Member {
    state: Arc<Mutex<State>>,
    frame: Arc<Frame>,
}

fn keys_of(tpl: &TopicPartitionList) -> Vec<Key> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

fn shown(keys: &[Key]) -> String {
    keys.iter()
        .map(|(t, p)| format!("{t}[{p}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ClientContext for Member {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!("librdkafka (group member): {error}: {reason}");
    }
}

impl ConsumerContext for Member {
    /// A revoked partition is stopped, and its job joined, before the group
    /// may hand it to another member: one writer per partition.
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let keys = keys_of(tpl);
                let stopping: Vec<(Key, Running)> = {
                    let mut state = self.state.lock().expect("state lock");
                    state.queue.retain(|k| !keys.contains(k));
                    keys.iter()
                        .filter_map(|k| state.running.remove(k).map(|r| (k.clone(), r)))
                        .collect()
                };
                for (_, r) in &stopping {
                    r.stop.store(true, Ordering::Relaxed);
                }
                let stopped: Vec<Key> = stopping.iter().map(|(k, _)| k.clone()).collect();
                for (key, r) in stopping {
                    let joined = r.handle.join();
                    self.state.lock().expect("state lock").ended(key, joined);
                }
                tracing::info!(
                    revoked = shown(&keys),
                    stopped = shown(&stopped),
                    "partitions revoked"
                );
            }
            Rebalance::Error(e) => tracing::warn!("group rebalance failed: {e}"),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // the group consumer fetches nothing: each partition is read by
            // a consumer of its own, from where its stored segments end
            if tpl.count() > 0
                && let Err(e) = consumer.pause(tpl)
            {
                tracing::warn!("cannot pause the assigned partitions of the group consumer: {e}");
            }
            let keys = keys_of(tpl);
            let mut state = self.state.lock().expect("state lock");
            for key in &keys {
                let known = state.done.contains(key)
                    || state.running.contains_key(key)
                    || state.queue.contains(key);
                if !known && self.frame.ends(&key.0, key.1).is_some() {
                    state.queue.push_back(key.clone());
                }
            }
            tracing::info!(assigned = shown(&keys), "partitions assigned");
        }
    }
}

/// The worker's loop on a blocking thread: group membership, partition jobs,
/// and the wait for the other workers. Returns once every partition of the
/// frame has a part, with how many this worker completed.
fn work(
    ctx: WorkerCtx,
    group_id: &str,
    wait: Duration,
    interrupt: &crate::interrupt::Interrupt,
) -> Result<usize, BackupError> {
    let state = Arc::new(Mutex::new(State::default()));
    let consumer: BaseConsumer<Member> = ctx
        .cluster
        .client_config(&[
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ])
        .create_with_context(Member {
            state: Arc::clone(&state),
            frame: Arc::clone(&ctx.frame),
        })
        .map_err(|source| ctx.cluster.client_error(source))?;
    let topics: Vec<&str> = ctx.frame.topics.keys().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| BackupError::Group {
            group: group_id.to_owned(),
            reason: e.to_string(),
        })?;

    let all = ctx.frame.partition_count();
    let mut last_progress = Instant::now();
    let mut last_check: Option<Instant> = None;
    let mut last_segment_check = Instant::now();
    let mut known_complete = 0;
    let mut known_segments: Option<usize> = None;
    let result = loop {
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(200)) {
            tracing::warn!("group consumer: {e}");
        }
        if interrupt.requested() {
            break Err(BackupError::Interrupted {
                backup_id: ctx.backup_id.clone(),
                code: interrupt.exit_code(),
            });
        }
        let (idle, failure) = {
            let mut state = state.lock().expect("state lock");
            let finished: Vec<Key> = state
                .running
                .iter()
                .filter(|(_, r)| r.handle.is_finished())
                .map(|(k, _)| k.clone())
                .collect();
            for key in finished {
                let r = state.running.remove(&key).expect("listed");
                let joined = r.handle.join();
                state.ended(key, joined);
                last_progress = Instant::now();
                // the last partition may have been this one: look at once
                last_check = None;
            }
            while state.failure.is_none() && state.running.len() < ctx.concurrency {
                let Some(key) = state.queue.pop_front() else {
                    break;
                };
                if state.done.contains(&key) {
                    continue;
                }
                let stop = Arc::new(AtomicBool::new(false));
                let job_ctx = ctx.clone();
                let job_stop = Arc::clone(&stop);
                let (topic, partition) = key.clone();
                let handle = std::thread::spawn(move || {
                    partition_job(&job_ctx, &topic, partition, &job_stop)
                });
                state.running.insert(key, Running { stop, handle });
            }
            (
                state.running.is_empty() && state.queue.is_empty(),
                state.failure.take(),
            )
        };
        if let Some(e) = failure {
            break Err(e);
        }
        if !idle {
            last_progress = Instant::now();
            continue;
        }
        if last_check.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) {
            continue;
        }
        last_check = Some(Instant::now());
        let complete = ctx
            .runtime
            .block_on(parts::completed(&ctx.store, &ctx.frame))?;
        if complete.len() == all {
            break Ok(());
        }
        if complete.len() != known_complete {
            known_complete = complete.len();
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= Duration::from_secs(30)
            && last_segment_check.elapsed() >= Duration::from_secs(30)
        {
            // a long partition completes nothing for a while: its segments
            // still show that it moves
            last_segment_check = Instant::now();
            let segments = ctx.runtime.block_on(count_segments(&ctx, &complete))?;
            if known_segments.is_some_and(|n| n != segments) {
                last_progress = Instant::now();
            }
            known_segments = Some(segments);
        }
        if last_progress.elapsed() >= wait {
            let missing: Vec<String> = ctx
                .frame
                .partitions()
                .filter(|(t, p, _)| !complete.contains(&((*t).to_owned(), *p)))
                .map(|(t, p, _)| format!("`{t}` {p}"))
                .collect();
            break Err(BackupError::GroupStalled {
                backup_id: ctx.backup_id.clone(),
                group: group_id.to_owned(),
                waited_secs: wait.as_secs(),
                complete: complete.len(),
                all,
                missing: missing.join(", "),
            });
        }
    };
    // stop what still runs (after a failure), then leave the group: the
    // partitions of a worker that fails go to the others
    let stopping: Vec<(Key, Running)> = {
        let mut state = state.lock().expect("state lock");
        state.queue.clear();
        std::mem::take(&mut state.running).into_iter().collect()
    };
    for (_, r) in &stopping {
        r.stop.store(true, Ordering::Relaxed);
    }
    for (_, r) in stopping {
        let _ = r.handle.join();
    }
    drop(consumer);
    let completed_here = state.lock().expect("state lock").completed_here;
    tracing::info!(
        completed_here,
        records = ctx.progress.records.load(Ordering::Relaxed),
        bytes = ctx.progress.bytes.load(Ordering::Relaxed),
        "left the group"
    );
    result.map(|()| completed_here)
}

/// How many segments the incomplete partitions have stored: what shows that
/// a long partition still advances.
async fn count_segments(
    ctx: &WorkerCtx,
    complete: &BTreeSet<(String, i32)>,
) -> Result<usize, BackupError> {
    let mut n = 0;
    for (topic, partition, _) in ctx.frame.partitions() {
        if complete.contains(&(topic.to_owned(), partition)) {
            continue;
        }
        n += parts::list_segments(&ctx.store, &ctx.backup_id, topic, partition)
            .await?
            .len();
    }
    Ok(n)
}

/// One partition assigned to this worker, on a thread of its own: done
/// already, or taken up after its stored segments and backed up to the
/// frame's end, then its part written.
fn partition_job(
    ctx: &WorkerCtx,
    topic: &str,
    partition: i32,
    stop: &AtomicBool,
) -> Result<JobEnd, BackupError> {
    let ends = *ctx
        .frame
        .ends(topic, partition)
        .expect("only the frame's partitions are queued");
    if ctx
        .runtime
        .block_on(parts::read(&ctx.store, &ctx.backup_id, topic, partition))?
        .is_some()
    {
        return Ok(JobEnd::CompletedElsewhere);
    }
    let Some(stored) = parts::resume(
        &ctx.store,
        &ctx.backup_id,
        topic,
        partition,
        &ends,
        &ctx.runtime,
        stop,
    )?
    else {
        return Ok(JobEnd::Stopped);
    };
    let resumed_segments = stored.segments.len();
    let started_at_offset = stored.next_offset(ends.low);
    if resumed_segments > 0 {
        tracing::info!(
            topic,
            partition,
            segments = resumed_segments,
            offset = started_at_offset,
            "taking the partition up after its stored segments"
        );
    }
    let job = PartitionJob {
        topic: topic.to_owned(),
        partition,
        low: ends.low,
        first: ends.low,
        continues_from: None,
        high: ends.high,
        last_stable: ends.last_stable,
        transaction_wait: ctx.transaction_wait,
        segment_bytes: ctx.frame.segment_bytes,
        zstd_level: ctx.frame.zstd_level,
        stall_timeout: Duration::from_secs(120),
    };
    let Some((manifest, _files)) = topics::backup_partition(
        &ctx.cluster,
        &ctx.store,
        &ctx.backup_id,
        &job,
        stored,
        &ctx.progress,
        &ctx.runtime,
        stop,
    )?
    else {
        tracing::info!(topic, partition, "stopped: the partition was revoked");
        return Ok(JobEnd::Stopped);
    };
    let part = Part {
        format: parts::PART_FORMAT.to_owned(),
        topic: topic.to_owned(),
        partition,
        completed_by: Worker::me(),
        completed_at: super::now(),
        started_at_offset,
        resumed_segments,
        manifest,
    };
    if ctx
        .runtime
        .block_on(parts::create(&ctx.store, &ctx.backup_id, &part))?
    {
        tracing::info!(
            topic,
            partition,
            records = part.manifest.record_count,
            segments = part.manifest.segments.len(),
            "partition complete"
        );
        Ok(JobEnd::Completed)
    } else {
        Ok(JobEnd::CompletedElsewhere)
    }
}

/// Once every partition has a part: the manifest, published by this worker
/// or found published by another.
async fn publish_when_complete(
    config: &Config,
    store: &Store,
    frame: &Frame,
    wait: Duration,
) -> Result<(Manifest, bool), BackupError> {
    let backup_id = &frame.backup_id;
    if let Some(manifest) = read_manifest(store, backup_id).await? {
        return Ok((manifest, false));
    }
    let lease = group_lease(store, backup_id, false, wait).await?;
    let published = assemble_and_publish(config, store, frame, &lease).await;
    lease.release().await;
    published
}

/// Under the lease: checks every part, assembles the manifest as a single
/// run would have written it, and publishes it create-only.
async fn assemble_and_publish(
    config: &Config,
    store: &Store,
    frame: &Frame,
    lease: &Lease,
) -> Result<(Manifest, bool), BackupError> {
    let backup_id = &frame.backup_id;
    if let Some(manifest) = read_manifest(store, backup_id).await? {
        return Ok((manifest, false));
    }
    let mut done: BTreeMap<(String, i32), PartitionManifest> = BTreeMap::new();
    for (topic, partition, ends) in frame.partitions() {
        let bad = |reason: String| BackupError::BadChain {
            backup_id: backup_id.clone(),
            topic: topic.to_owned(),
            partition,
            reason,
        };
        let part = parts::read(store, backup_id, topic, partition)
            .await?
            .ok_or_else(|| bad("it has no part (it was never completed)".into()))?;
        let stored = parts::list_segments(store, backup_id, topic, partition).await?;
        parts::check(topic, partition, ends, &part.manifest, &stored).map_err(bad)?;
        done.insert((topic.to_owned(), partition), part.manifest);
    }
    let (topics, files) = parts::assemble(frame, &done);
    // a worker that stopped while publishing may have left registry files
    // this snapshot would not write
    clear(store, &format!("{backup_id}/{}/", super::registry::ROOT)).await?;
    let taken = Taken {
        started_at: frame.started_at.clone(),
        servers: frame.servers.clone(),
        topics,
        registry: frame.registry.clone().map(|r| (r.snapshot, r.report)),
        consumer_groups: frame.consumer_groups.clone(),
        files,
        parent: None,
    };
    let manifest = super::finish(config, store, backup_id, taken, lease).await?;
    match super::publish(store, manifest).await {
        Ok(manifest) => {
            tracing::info!(backup_id, "published the manifest");
            Ok((manifest, true))
        }
        Err(BackupError::AlreadyExists { .. }) => read_manifest(store, backup_id)
            .await?
            .map(|m| (m, false))
            .ok_or_else(|| BackupError::BadFile {
                path: format!("{backup_id}/{MANIFEST_FILE}"),
                reason: "it existed a moment ago and is gone now".into(),
            }),
        Err(e) => Err(e),
    }
}

/// Deletes everything under `folder`.
async fn clear(store: &Store, folder: &str) -> Result<(), BackupError> {
    let listed: Vec<_> = store
        .object_store()
        .list(Some(&store.path(folder)))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|source| BackupError::Storage {
            path: folder.to_owned(),
            source,
        })?;
    super::delete_all(store, listed).await
}
