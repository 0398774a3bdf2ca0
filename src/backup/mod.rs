//! `backup`: topics and registry state into a new backup folder. The manifest
//! is written last; a folder without one is an interrupted backup, which the
//! next run with the same `backup_id` clears and starts again (never mixes).
//!
//! The order is what makes a backup's records and schemas agree: the topics'
//! end offsets first, then the registry snapshot (every record taken was
//! written before it, so its ID was registered before it), then the records
//! up to those offsets, counting the schema IDs they carry; then every ID
//! the snapshot lacks (a version soft-deleted or left out by the selection)
//! is fetched and added. A backup that could not take every record or every
//! ID ([`Incomplete`]) fails and publishes no manifest, unless the
//! configuration allows it; then what is missing is recorded in the manifest.
//!
//! `backup --group` ([`group`]) shares one backup among processes: the same
//! steps, with the ends and the registry read once into `frame.json`, the
//! records taken partition by partition by whichever worker the consumer
//! group assigns, and the last steps ([`finish`]) run by the worker that
//! finds every partition done.

pub mod frame;
pub mod group;
pub mod groups;
pub mod ids;
pub mod incremental;
pub mod parts;
pub mod registry;
pub mod topics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;

use crate::config::{Config, KafkaSource};
use crate::kafka::{self, Cluster, EndOffsets, KafkaError, TopicInfo};
use crate::lease::Lease;
use crate::manifest::{self, FORMAT_VERSION, MANIFEST_FILE, Manifest, SourceInfo, TopicManifest};
use crate::model::RegistrySnapshot;
use crate::registry::{HttpRegistry, SelectionReport};
use crate::storage::{Location, StorageError, Store};
use topics::{PartitionJob, Progress};

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the configuration has no `{key}`, which a backup needs")]
    Missing { key: &'static str },
    #[error(
        "backup `{backup_id}` already exists in `{location}`\nhint: choose another `backup_id`, or delete the old backup first"
    )]
    AlreadyExists { backup_id: String, location: String },
    #[error(transparent)]
    Location(#[from] StorageError),
    #[error(transparent)]
    Lease(#[from] Box<crate::lease::LeaseError>),
    #[error(
        "another run took over the lease of backup `{backup_id}` while this one ran, so its files may be gone; no manifest was written\nhint: rerun the backup once the other run finished"
    )]
    LeaseLost { backup_id: String },
    #[error("cannot write `{path}` to storage: {source}")]
    Storage {
        path: String,
        source: object_store::Error,
    },
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(
        "the topic selection matches no topic of `{servers}` (include: {include}; exclude: {exclude})\nhint: check the patterns, and that the backup's principal may DESCRIBE the topics (a missing ACL hides them); `backup --allow-empty` backs up no topic on purpose"
    )]
    NoTopics {
        servers: String,
        include: String,
        exclude: String,
    },
    #[error("cannot back up `{topic}` partition {partition}: {reason}")]
    Consume {
        topic: String,
        partition: i32,
        reason: String,
    },
    #[error("a backup task failed: {0}")]
    Task(String),
    #[error("cannot back up the schema registry at `{url}`")]
    Registry {
        url: String,
        #[source]
        source: crate::registry::RegistryError,
    },
    #[error("{0}")]
    MissingReferences(String),
    #[error(
        "stopped on request: this worker of backup `{backup_id}` left its group; what it stored stays, and the other workers (or a rerun of `backup --group`) go on from there"
    )]
    Interrupted { backup_id: String, code: u8 },
    #[error(
        "{signal}: backup `{backup_id}` stopped and not published; its lease is released, so a rerun with this `backup_id` (a Job's retry) starts at once, clears what this run stored and backs up again"
    )]
    Stopped {
        backup_id: String,
        signal: &'static str,
        code: u8,
    },
    #[error(
        "`{path}` cannot be read: {reason}\nhint: it was not written by this version of kafka-backup, or was changed by hand"
    )]
    BadFile { path: String, reason: String },
    #[error(
        "backup `{backup_id}` in `{location}` is a group backup (`{backup_id}/frame.json`) that did not finish, so a single run will not clear it\nhint: run `kafka-backup backup --group` with the same configuration to finish it from its stored segments, or delete the folder `{backup_id}/` to start over"
    )]
    GroupFolder { backup_id: String, location: String },
    #[error(
        "backup `{backup_id}` in `{location}` was framed by {framed_by} at {framed_at} with a configuration that differs from this worker's:\n{differences}\nhint: every worker of a group backup needs the same configuration (`{backup_id}/frame.json` has the first worker's); start this one with it, or give it another `backup_id`"
    )]
    FrameMismatch {
        backup_id: String,
        location: String,
        framed_by: String,
        framed_at: String,
        differences: String,
    },
    #[error("incremental backup: {reason}")]
    Incremental { reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error(
        "consumer group `{group}`: {reason}\nhint: the backup's principal needs READ on the group and DESCRIBE on the topics"
    )]
    Group { group: String, reason: String },
    #[error(
        "backup `{backup_id}`: this worker of group `{group}` had nothing to do for {waited_secs}s while no partition advanced ({complete} of {all} complete; still to do: {missing})\nhint: are the other workers running? a worker killed without leaving the group keeps its partitions until the broker drops it from the group (`session.timeout.ms`); rerun `backup --group` with the same configuration to go on from the stored segments, or raise `--group-wait`"
    )]
    GroupStalled {
        backup_id: String,
        group: String,
        waited_secs: u64,
        complete: usize,
        all: usize,
        missing: String,
    },
    #[error(
        "cannot publish backup `{backup_id}`: `{topic}` partition {partition}: {reason}\nhint: no manifest was written; delete `{backup_id}/parts/{topic}/{partition}.json` and the folder `{backup_id}/kafka/{topic}/{partition}/`, then run `backup --group` again to back the partition up anew"
    )]
    BadChain {
        backup_id: String,
        topic: String,
        partition: i32,
        reason: String,
    },
    #[error(
        "backup `{backup_id}` is incomplete, so no manifest was written (the folder stays an interrupted backup, which `list` flags and the next run clears):\n{}",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    )]
    Incomplete {
        backup_id: String,
        problems: Vec<Incomplete>,
    },
}

/// What a backup could not take, found once every topic was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    /// Records carry schema IDs the registry does not serve.
    #[error(
        "records carry schema IDs the registry does not serve:\n{}\nhint: a raw key or value starting with 0x00 looks like a schema ID too; if these records were not written by a registry serializer, or their schemas are gone for good, set `enterprise.schema_registry.backup.allow_unknown_ids: true` (the IDs are then recorded in the manifest)",
        unknown_lines(.0)
    )]
    UnknownIds(BTreeMap<i32, Vec<ids::Carrier>>),
    /// Transactions stayed open past the wait: records were left out.
    #[error(
        "transactions still open after {wait_secs}s held back records:\n{}\nhint: let the producer finish or abort its transaction (or wait for `transaction.timeout.ms`), then run the backup again; raise `source.open_transaction_wait_secs`, or set `source.allow_open_transactions: true` to back up without those records",
        left_out_lines(.left_out)
    )]
    OpenTransactions {
        wait_secs: u64,
        left_out: Vec<LeftOut>,
    },
}

/// Records of one partition a backup did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub topic: String,
    pub partition: i32,
    /// First offset not taken.
    pub from: i64,
    /// The high watermark the backup aimed at (exclusive).
    pub to: i64,
}

fn unknown_lines(unknown: &BTreeMap<i32, Vec<ids::Carrier>>) -> String {
    let mut lines = Vec::new();
    for (id, carriers) in unknown {
        for c in carriers {
            lines.push(format!("  schema ID {id}: {c}"));
        }
    }
    lines.join("\n")
}

fn left_out_lines(left_out: &[LeftOut]) -> String {
    left_out
        .iter()
        .map(|l| {
            format!(
                "  `{}` partition {}: offsets {} to {} not taken",
                l.topic,
                l.partition,
                l.from,
                l.to - 1
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tuning of a backup run.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Uncompressed bytes after which a segment is closed and stored.
    pub segment_bytes: u64,
    /// Partitions consumed at once.
    pub partition_concurrency: usize,
    pub zstd_level: i32,
    /// Draw a progress bar (only on a terminal).
    pub progress: bool,
    /// A topic selection that matches nothing is a backup of no topic, not an error.
    pub allow_empty: bool,
    /// Take the backup ID's lease even from a run that still holds it.
    pub force_unlock: bool,
    /// Stop on SIGTERM or SIGINT, releasing the lease, with
    /// [`BackupError::Stopped`] (the command line's single runs; a library
    /// caller keeps its own signal handling).
    pub stop_on_signal: bool,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 16 * 1024 * 1024,
            partition_concurrency: 4,
            zstd_level: 1,
            progress: false,
            allow_empty: false,
            force_unlock: false,
            stop_on_signal: false,
        }
    }
}

/// The configuration's `backup_id`, with the keys every backup needs checked
/// (a registry URL when the registry is on).
pub(crate) fn backup_id(config: &Config) -> Result<String, BackupError> {
    let backup_id = config
        .backup_id
        .as_ref()
        .ok_or(BackupError::Missing { key: "backup_id" })?
        .to_string();
    let sr = &config.enterprise.schema_registry;
    if sr.enabled && sr.url.is_none() {
        return Err(BackupError::Missing {
            key: "enterprise.schema_registry.url",
        });
    }
    Ok(backup_id)
}

/// Creates `relative` holding `bytes` only if it does not exist: `false`
/// when it did (another run's stays).
pub(crate) async fn create_only(
    store: &Store,
    relative: &str,
    bytes: Vec<u8>,
) -> Result<bool, BackupError> {
    let put = store
        .object_store()
        .put_opts(
            &store.path(relative),
            Bytes::from(bytes).into(),
            object_store::PutOptions {
                mode: object_store::PutMode::Create,
                ..Default::default()
            },
        )
        .await;
    match put {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(source) => Err(BackupError::Storage {
            path: relative.to_owned(),
            source,
        }),
    }
}

/// Runs a whole backup as the configuration describes it. Without a
/// `source` block, a backup with the registry enabled is a registry-only one.
pub async fn run(config: &Config, options: &BackupOptions) -> Result<Manifest, BackupError> {
    let backup_id = backup_id(config)?;
    let sr = &config.enterprise.schema_registry;
    let source = match &config.source {
        Some(source) => Some((
            source,
            Cluster::new("source", &source.bootstrap_servers, &source.properties)?,
        )),
        None if sr.enabled => None,
        None => {
            return Err(BackupError::Missing {
                key: "source.bootstrap_servers",
            });
        }
    };
    let location = Location::from_config(config.storage.as_ref())?;
    let store = location.open()?;
    // a signal from here on stops the backup with its lease released (the
    // command line listens from its start: `crate::signals`)
    let _handling = options.stop_on_signal.then(crate::signals::handling);
    let stopped = |(signal, code): (&'static str, u8)| BackupError::Stopped {
        backup_id: backup_id.clone(),
        signal,
        code,
    };
    if options.stop_on_signal
        && let Some(signal) = crate::signals::received()
    {
        return Err(stopped(signal));
    }
    // one run per backup ID: another would clear this one's files as an
    // interrupted backup's
    let lease = Lease::acquire(
        &store,
        &format!("backup-{backup_id}"),
        &format!("backup `{backup_id}` in `{store}`"),
        "backup",
        options.force_unlock,
    )
    .await
    .map_err(Box::new)?;
    // everything up to the manifest may stop at a signal; the manifest's
    // create-only write then runs to its end, so "not published" is true
    // of a stopped backup and a published one is reported done
    let result = tokio::select! {
        biased;
        signal = crate::signals::requested(), if options.stop_on_signal => Err(stopped(signal)),
        result = take(config, options, &store, &backup_id, source, &lease) => result,
    };
    let result = match result {
        Ok(manifest) => publish(&store, manifest).await,
        Err(e) => Err(e),
    };
    lease.release().await;
    result
}

/// The backup itself, under its lease, up to the manifest it publishes.
async fn take(
    config: &Config,
    options: &BackupOptions,
    store: &Store,
    backup_id: &str,
    source: Option<(&KafkaSource, Cluster)>,
    lease: &Lease,
) -> Result<Manifest, BackupError> {
    let backup_id = backup_id.to_owned();
    let sr = &config.enterprise.schema_registry;
    let started_at = now();
    prepare_folder(store, &backup_id).await?;
    // 0. the backup this one continues, with its whole chain checked
    let parent = incremental::parent(config, store, &backup_id).await?;

    // 1. where each partition ends (and, just before, where each consumer
    //    group stands), before the registry is read
    let (selected, consumer_groups) = match &source {
        Some((source, cluster)) => select_topics(cluster, source, options.allow_empty)?,
        None => (Vec::new(), BTreeMap::new()),
    };
    // 2. the registry: every record below those ends uses an ID it has, or
    //    one deleted since (fetched in step 4)
    let registry = if sr.enabled {
        Some(read_registry(sr).await?)
    } else {
        None
    };
    // 3. the records
    let mut files = BTreeMap::new();
    let topics = match &source {
        Some((source, cluster)) => {
            backup_topics(
                cluster,
                store,
                &backup_id,
                source,
                selected,
                options,
                parent.as_ref(),
                &mut files,
            )
            .await?
        }
        None => BTreeMap::new(),
    };
    let servers = source
        .as_ref()
        .map(|(_, c)| c.servers.clone())
        .unwrap_or_default();
    let taken = Taken {
        started_at,
        servers,
        topics,
        registry: registry.map(|(_, snapshot, report)| (snapshot, report)),
        consumer_groups,
        files,
        parent: parent.clone(),
    };
    let manifest = finish(config, store, &backup_id, taken, lease).await?;
    if let Some(parent) = &parent {
        incremental::still_there(store, parent).await?;
    }
    Ok(manifest)
}

/// Everything a backup took before its last steps: the records (segments
/// in `files`, partitions in `topics`), the registry snapshot read after the
/// end offsets, and the groups' offsets read before them.
#[derive(Debug)]
pub struct Taken {
    pub started_at: String,
    /// The cluster read (empty for a registry-only backup).
    pub servers: String,
    pub topics: BTreeMap<String, TopicManifest>,
    pub registry: Option<(RegistrySnapshot, SelectionReport)>,
    pub consumer_groups: BTreeMap<String, manifest::GroupBackup>,
    pub files: BTreeMap<String, manifest::FileEntry>,
    /// The backup this one continues (`incremental_from`).
    pub parent: Option<incremental::Parent>,
}

/// Steps 4 and 5, then the registry part: the IDs the records carry that the
/// snapshot lacks are pulled in, what could not be taken fails the backup
/// (unless allowed), and the registry is written. Gives the manifest to
/// publish. A single run and the worker that completes a group backup both
/// end here, so that their manifests agree.
pub async fn finish(
    config: &Config,
    store: &Store,
    backup_id: &str,
    taken: Taken,
    lease: &Lease,
) -> Result<Manifest, BackupError> {
    let backup_id = backup_id.to_owned();
    let sr = &config.enterprise.schema_registry;
    let Taken {
        started_at,
        servers,
        topics,
        registry,
        consumer_groups,
        mut files,
        parent,
    } = taken;
    // the records of the whole chain: their IDs are what a restore of this
    // backup needs from its registry snapshot
    let chain_topics = match &parent {
        Some(p) => p.joined_topics(&backup_id, &topics, &files)?,
        None => topics.clone(),
    };
    // 4. the IDs the records carry that the snapshot lacks
    let mut problems = Vec::new();
    let registry = match registry {
        Some((mut snapshot, report)) => {
            let client = HttpRegistry::new(sr).map_err(|e| registry_error(sr, e))?;
            let missing = ids::missing_ids(&snapshot, &chain_topics);
            let mut pulled = ids::pull_in(&client, &mut snapshot, missing, sr.max_concurrency)
                .await
                .map_err(|source| registry_error(sr, source))?;
            let (unknown, raw) = ids::split_unknown(
                &snapshot,
                &chain_topics,
                std::mem::take(&mut pulled.unknown),
            );
            pulled.unknown = unknown;
            for field in &raw {
                tracing::warn!("{field}");
            }
            for p in &pulled.pulled_in {
                tracing::info!(
                    subject = p.subject,
                    version = p.version,
                    why = ?p.carried_by,
                    referenced_by = ?p.referenced_by,
                    "version pulled in for the schema IDs the records carry"
                );
            }
            if !pulled.unknown.is_empty() {
                if sr.backup.allow_unknown_ids {
                    tracing::warn!(
                        "{}",
                        Incomplete::UnknownIds(pulled.unknown.clone())
                            .to_string()
                            .lines()
                            .take_while(|l| !l.starts_with("hint:"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                } else {
                    problems.push(Incomplete::UnknownIds(pulled.unknown.clone()));
                }
            }
            Some((snapshot, report, pulled))
        }
        None => None,
    };
    // 5. transactions that did not finish in time
    let left_out: Vec<LeftOut> = topics
        .iter()
        .flat_map(|(topic, t)| {
            t.partitions.iter().filter_map(|(partition, p)| {
                p.left_out_from.map(|from| LeftOut {
                    topic: topic.clone(),
                    partition: *partition,
                    from,
                    to: p.high_watermark,
                })
            })
        })
        .collect();
    if let Some(source) = &config.source
        && !left_out.is_empty()
    {
        let incomplete = Incomplete::OpenTransactions {
            wait_secs: source.open_transaction_wait_secs,
            left_out,
        };
        if source.allow_open_transactions {
            tracing::warn!("{incomplete}");
        } else {
            problems.push(incomplete);
        }
    }
    if !problems.is_empty() {
        return Err(BackupError::Incomplete {
            backup_id,
            problems,
        });
    }

    let schema_registry = match registry {
        Some((snapshot, report, pulled)) => Some(
            write_registry(
                store,
                &backup_id,
                &started_at,
                &snapshot,
                &report,
                &pulled,
                &mut files,
            )
            .await?,
        ),
        None => None,
    };
    if lease.lost() {
        return Err(BackupError::LeaseLost { backup_id });
    }
    let encryption = store.key().map(|k| manifest::EncryptionInfo {
        cipher: crate::crypto::CIPHER.to_owned(),
        key_id: k.id.clone(),
        key_fingerprint: k.fingerprint.clone(),
    });
    Ok(Manifest {
        format_version: if encryption.is_some() {
            FORMAT_VERSION
        } else {
            manifest::PLAIN_FORMAT_VERSION
        },
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        backup_id,
        started_at,
        finished_at: now(),
        source: SourceInfo {
            bootstrap_servers: servers,
        },
        topics,
        schema_registry,
        consumer_groups,
        files,
        parent: parent.map(|p| p.reference),
        selection: config
            .source
            .as_ref()
            .map(|s| incremental::selection_record(&s.topics)),
        encryption,
    })
}

/// Writes the manifest create-only: a manifest that appeared meanwhile is
/// another run's ([`BackupError::AlreadyExists`]).
pub async fn publish(store: &Store, manifest: Manifest) -> Result<Manifest, BackupError> {
    let bytes = manifest::manifest_bytes(store, &manifest);
    let path = format!("{}/{MANIFEST_FILE}", manifest.backup_id);
    let put = store
        .object_store()
        .put_opts(
            &store.path(&path),
            Bytes::from(bytes).into(),
            object_store::PutOptions {
                mode: object_store::PutMode::Create,
                ..Default::default()
            },
        )
        .await;
    match put {
        Ok(_) => Ok(manifest),
        Err(object_store::Error::AlreadyExists { .. }) => Err(BackupError::AlreadyExists {
            backup_id: manifest.backup_id,
            location: store.to_string(),
        }),
        Err(source) => Err(BackupError::Storage { path, source }),
    }
}

fn registry_error(
    sr: &crate::config::SchemaRegistry,
    source: crate::registry::RegistryError,
) -> BackupError {
    BackupError::Registry {
        url: sr.url.as_ref().map(|u| u.to_string()).unwrap_or_default(),
        source,
    }
}

/// Reads the registry state the configuration selects.
async fn read_registry(
    sr: &crate::config::SchemaRegistry,
) -> Result<(HttpRegistry, RegistrySnapshot, SelectionReport), BackupError> {
    let client = HttpRegistry::new(sr).map_err(|e| registry_error(sr, e))?;
    let (snapshot, report) = crate::registry::fetch(
        &client,
        &sr.backup,
        &sr.protobuf,
        sr.schema_types.as_deref(),
        sr.max_concurrency,
    )
    .await
    .map_err(|e| registry_error(sr, e))?;
    if !report.missing_references.is_empty() {
        return Err(BackupError::MissingReferences(missing_references(
            &report.missing_references,
        )));
    }
    tracing::info!(
        subjects = snapshot.subjects.len(),
        versions = snapshot.version_count(),
        requests = client.request_count(),
        method = ?report.method,
        "registry state read"
    );
    Ok((client, snapshot, report))
}

/// What a backup without some referenced versions would lack, one line each,
/// and what to do: a version left out by the selection (`include_references:
/// false`, `protobuf.include_dependencies: false` for a Protobuf import, a
/// `subjects`/`exclude` pattern) is named as such, one the registry
/// does not serve as missing there.
fn missing_references(missing: &[crate::registry::MissingReference]) -> String {
    let mut out = String::from(
        "the backup would hold versions whose references it does not hold, so they could not be restored:",
    );
    let (mut left_out, mut imports_left_out, mut absent) = (false, false, false);
    for m in missing {
        let why = if m.exists {
            match m.from_type {
                crate::model::SchemaType::Protobuf => imports_left_out = true,
                _ => left_out = true,
            }
            "left out by the selection"
        } else {
            absent = true;
            "not served by the registry"
        };
        out.push_str(&format!(
            "\n  `{}` v{} imports `{}` from `{}` version {}: {why}",
            m.from_subject, m.from_version, m.name, m.subject, m.version
        ));
    }
    if left_out {
        out.push_str("\nhint: set `enterprise.schema_registry.backup.include_references: true` (the default) to take referenced versions whatever the selection, or select their subjects in `backup.subjects`");
    }
    if imports_left_out {
        out.push_str("\nhint: set `enterprise.schema_registry.protobuf.include_dependencies: true` to take the imports of Protobuf schemas whatever the selection (unset, it follows `backup.include_references`), or select their subjects in `backup.subjects`");
    }
    if absent {
        out.push_str("\nhint: a reference the registry does not serve points at a version deleted for good; leave the referencing subject out with `backup.exclude`");
    }
    out
}

/// Writes the registry part in the reference layout under `schema-registry/`.
async fn write_registry(
    store: &Store,
    backup_id: &str,
    started_at: &str,
    snapshot: &RegistrySnapshot,
    report: &SelectionReport,
    pulled: &ids::PullIn,
    files: &mut BTreeMap<String, manifest::FileEntry>,
) -> Result<manifest::RegistryManifestRef, BackupError> {
    let (layout, schema_manifest) =
        registry::layout(snapshot, Some(report), &pulled.pulled_in, started_at);
    for (path, bytes) in layout {
        manifest::put_file(store, backup_id, &path, Bytes::from(bytes), files)
            .await
            .map_err(|source| BackupError::Storage {
                path: format!("{backup_id}/{path}"),
                source,
            })?;
    }
    let schemas: std::collections::BTreeSet<(String, u32)> = snapshot
        .subjects
        .iter()
        .flat_map(|(name, s)| {
            let (context, _) = crate::model::split_context(name);
            s.versions.values().map(move |v| (context.to_owned(), v.id))
        })
        .collect();
    Ok(manifest::RegistryManifestRef {
        manifest: registry::SCHEMA_MANIFEST.to_owned(),
        subjects_count: schema_manifest.subjects.len() as u64,
        schemas_count: schemas.len() as u64,
        unknown_ids: pulled.unknown.keys().copied().collect(),
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether `relative` is in the store.
async fn exists(store: &Store, relative: &str) -> Result<bool, BackupError> {
    match store.object_store().head(&store.path(relative)).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(source) => Err(BackupError::Storage {
            path: relative.to_owned(),
            source,
        }),
    }
}

/// Refuses a finished backup of the same ID, and an unfinished group backup
/// (only `backup --group` goes on with it); clears what an interrupted
/// single run left.
async fn prepare_folder(store: &Store, backup_id: &str) -> Result<(), BackupError> {
    if exists(store, &format!("{backup_id}/{MANIFEST_FILE}")).await? {
        return Err(BackupError::AlreadyExists {
            backup_id: backup_id.to_owned(),
            location: store.to_string(),
        });
    }
    if exists(store, &format!("{backup_id}/{}", frame::FRAME_FILE)).await? {
        return Err(BackupError::GroupFolder {
            backup_id: backup_id.to_owned(),
            location: store.to_string(),
        });
    }
    let folder = store.path(backup_id);
    let leftovers: Vec<_> = store
        .object_store()
        .list(Some(&folder))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|source| BackupError::Storage {
            path: format!("{backup_id}/"),
            source,
        })?;
    if !leftovers.is_empty() {
        tracing::warn!(
            backup_id,
            files = leftovers.len(),
            "clearing what an interrupted backup left behind"
        );
        delete_all(store, leftovers).await?;
    }
    Ok(())
}

/// Deletes every object `listed` names, stopping at the first that fails.
pub(crate) async fn delete_all(
    store: &Store,
    listed: Vec<object_store::ObjectMeta>,
) -> Result<(), BackupError> {
    for meta in listed {
        store
            .object_store()
            .delete(&meta.location)
            .await
            .map_err(|source| BackupError::Storage {
                path: meta.location.to_string(),
                source,
            })?;
    }
    Ok(())
}

/// The selected topics with the end offsets of each partition, read now,
/// and the selected consumer groups' offsets on them, read just before.
/// No topic at all is an error unless `allow_empty`.
#[allow(clippy::type_complexity)]
fn select_topics(
    cluster: &Cluster,
    source: &KafkaSource,
    allow_empty: bool,
) -> Result<
    (
        Vec<(TopicInfo, Vec<EndOffsets>)>,
        BTreeMap<String, manifest::GroupBackup>,
    ),
    BackupError,
> {
    let selection = &source.topics;
    let committed = cluster.watermark_consumer(true)?;
    let uncommitted = cluster.watermark_consumer(false)?;
    let topics = kafka::list_topics(&committed, cluster, selection)?;
    if topics.is_empty() && !allow_empty {
        let list = |globs: &crate::config::OneOrMany<crate::config::Glob>| {
            let names: Vec<String> = globs.iter().map(|g| format!("`{}`", g.as_str())).collect();
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        return Err(BackupError::NoTopics {
            servers: cluster.servers.clone(),
            include: list(&selection.include),
            exclude: list(&selection.exclude),
        });
    }
    let groups = groups::read(cluster, &source.consumer_groups, &topics)?;
    let mut out = Vec::with_capacity(topics.len());
    for topic in topics {
        let ends = topic
            .partitions
            .iter()
            .map(|&p| kafka::end_offsets(&committed, &uncommitted, &topic.name, p))
            .collect::<Result<Vec<_>, _>>()?;
        out.push((topic, ends));
    }
    Ok((out, groups))
}

#[allow(clippy::too_many_arguments)]
async fn backup_topics(
    cluster: &Cluster,
    store: &Store,
    backup_id: &str,
    source: &KafkaSource,
    selected: Vec<(TopicInfo, Vec<EndOffsets>)>,
    options: &BackupOptions,
    parent: Option<&incremental::Parent>,
    files: &mut BTreeMap<String, manifest::FileEntry>,
) -> Result<BTreeMap<String, TopicManifest>, BackupError> {
    let admin = cluster.admin()?;
    let mut out = BTreeMap::new();
    let mut jobs = Vec::new();
    for (topic, ends) in &selected {
        let configs = kafka::topic_configs(&admin, &topic.name).await?;
        out.insert(
            topic.name.clone(),
            TopicManifest {
                partition_count: topic.partitions.len() as u32,
                replication_factor: topic.replication_factor as u32,
                configs,
                partitions: BTreeMap::new(),
            },
        );
        for (&partition, end) in topic.partitions.iter().zip(ends) {
            let (first, continues_from) =
                incremental::start(parent, &topic.name, partition, end.low, end.high)?;
            jobs.push(PartitionJob {
                topic: topic.name.clone(),
                partition,
                low: end.low,
                first,
                continues_from,
                high: end.high,
                last_stable: end.last_stable,
                transaction_wait: Duration::from_secs(source.open_transaction_wait_secs),
                segment_bytes: options.segment_bytes,
                zstd_level: options.zstd_level,
                stall_timeout: Duration::from_secs(120),
            });
        }
    }
    let total: u64 = jobs.iter().map(|j| (j.high - j.low).max(0) as u64).sum();
    let metrics = crate::metrics::global();
    for j in &jobs {
        metrics
            .lag
            .get_or_create(&metrics.topic(&j.topic))
            .inc_by((j.high - j.first).max(0));
    }
    let progress = Arc::new(Progress::default());
    let bar = options
        .progress
        .then(|| crate::progress::records_bar(total, Arc::clone(&progress)));

    let runtime = tokio::runtime::Handle::current();
    let results = futures::stream::iter(jobs.into_iter().map(|job| {
        let cluster = cluster.clone();
        let store = store.clone();
        let backup_id = backup_id.to_owned();
        let progress = Arc::clone(&progress);
        let runtime = runtime.clone();
        tokio::task::spawn_blocking(move || {
            // a single run is not stopped partition by partition: on a
            // signal `run` stops waiting, releases the lease and the process
            // exits without waiting for these tasks (a rerun clears what they
            // stored)
            let never = std::sync::atomic::AtomicBool::new(false);
            let result = topics::backup_partition(
                &cluster,
                &store,
                &backup_id,
                &job,
                topics::Stored::default(),
                &progress,
                &runtime,
                &never,
            )
            .map(|done| done.expect("a partition nobody stops runs to its end"));
            (job, result)
        })
    }))
    .buffer_unordered(options.partition_concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    if let Some(bar) = bar {
        bar.finish();
    }
    for joined in results {
        let (job, result) = joined.map_err(|e| BackupError::Task(e.to_string()))?;
        let (partition, segment_files) = result?;
        files.extend(segment_files);
        out.get_mut(&job.topic)
            .expect("every job's topic is listed")
            .partitions
            .insert(job.partition, partition);
    }
    tracing::info!(
        records = progress.records.load(Ordering::Relaxed),
        bytes = progress.bytes.load(Ordering::Relaxed),
        "topics backed up"
    );
    Ok(out)
}
