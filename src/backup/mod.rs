//! `backup`: topics and registry state into a new backup folder. The manifest
//! is written last; a folder without one is an interrupted backup, which the
//! next run with the same `backup_id` clears and starts again (never mixes).

pub mod registry;
pub mod topics;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;

use crate::config::Config;
use crate::kafka::{self, Cluster, KafkaError};
use crate::manifest::{self, FORMAT_VERSION, MANIFEST_FILE, Manifest, SourceInfo, TopicManifest};
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
    #[error("cannot write `{path}` to storage: {source}")]
    Storage {
        path: String,
        source: object_store::Error,
    },
    #[error(transparent)]
    Kafka(#[from] KafkaError),
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
    #[error("the registry backup is incomplete: {0}")]
    MissingReferences(String),
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
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 16 * 1024 * 1024,
            partition_concurrency: 4,
            zstd_level: 1,
            progress: false,
        }
    }
}

/// Runs a whole backup as the configuration describes it.
pub async fn run(config: &Config, options: &BackupOptions) -> Result<Manifest, BackupError> {
    let backup_id = config
        .backup_id
        .as_ref()
        .ok_or(BackupError::Missing { key: "backup_id" })?
        .to_string();
    let source = config.source.as_ref().ok_or(BackupError::Missing {
        key: "source.bootstrap_servers",
    })?;
    let cluster = Cluster::new("source", &source.bootstrap_servers, &source.properties)?;
    let sr = &config.enterprise.schema_registry;
    if sr.enabled && sr.url.is_none() {
        return Err(BackupError::Missing {
            key: "enterprise.schema_registry.url",
        });
    }
    let location = Location::from_config(config.storage.as_ref())?;
    let store = location.open()?;
    let started_at = now();
    prepare_folder(&store, &backup_id).await?;

    let mut files = BTreeMap::new();
    // the registry first: records written meanwhile can only use IDs it
    // already had or IDs newer than the backup, never ones it lost
    let schema_registry = if sr.enabled {
        Some(backup_registry(sr, &store, &backup_id, &started_at, &mut files).await?)
    } else {
        None
    };
    let topics = backup_topics(
        &cluster,
        &store,
        &backup_id,
        &source.topics,
        options,
        &mut files,
    )
    .await?;

    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        backup_id: backup_id.clone(),
        started_at,
        finished_at: now(),
        source: SourceInfo {
            bootstrap_servers: cluster.servers.clone(),
        },
        topics,
        schema_registry,
        files,
    };
    let bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    let path = format!("{backup_id}/{MANIFEST_FILE}");
    store
        .object_store()
        .put(&store.path(&path), Bytes::from(bytes).into())
        .await
        .map_err(|source| BackupError::Storage { path, source })?;
    Ok(manifest)
}

/// Reads the registry state the configuration selects and writes it in the
/// reference layout under `schema-registry/`.
async fn backup_registry(
    sr: &crate::config::SchemaRegistry,
    store: &Store,
    backup_id: &str,
    started_at: &str,
    files: &mut BTreeMap<String, manifest::FileEntry>,
) -> Result<manifest::RegistryManifestRef, BackupError> {
    let registry_err = |source| BackupError::Registry {
        url: sr.url.as_ref().map(|u| u.to_string()).unwrap_or_default(),
        source,
    };
    let client = crate::registry::HttpRegistry::new(sr).map_err(registry_err)?;
    let (snapshot, report) = crate::registry::fetch(
        &client,
        &sr.backup,
        sr.schema_types.as_deref(),
        sr.max_concurrency,
    )
    .await
    .map_err(registry_err)?;
    if !report.missing_references.is_empty() {
        let list: Vec<String> = report
            .missing_references
            .iter()
            .map(|m| format!("{m:?}"))
            .collect();
        return Err(BackupError::MissingReferences(format!(
            "referenced schemas the registry does not serve: {}",
            list.join(", ")
        )));
    }
    tracing::info!(
        subjects = snapshot.subjects.len(),
        versions = snapshot.version_count(),
        requests = client.request_count(),
        method = ?report.method,
        "registry state read"
    );
    let (layout, schema_manifest) = registry::layout(&snapshot, Some(&report), started_at);
    for (path, bytes) in layout {
        manifest::put_file(store, backup_id, &path, Bytes::from(bytes), files)
            .await
            .map_err(|source| BackupError::Storage {
                path: format!("{backup_id}/{path}"),
                source,
            })?;
    }
    let schemas: BTreeSet<(String, u32)> = snapshot
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
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Refuses a finished backup of the same ID; clears what an interrupted one left.
async fn prepare_folder(store: &Store, backup_id: &str) -> Result<(), BackupError> {
    let manifest_path = store.path(&format!("{backup_id}/{MANIFEST_FILE}"));
    match store.object_store().head(&manifest_path).await {
        Ok(_) => {
            return Err(BackupError::AlreadyExists {
                backup_id: backup_id.to_owned(),
                location: store.to_string(),
            });
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(source) => {
            return Err(BackupError::Storage {
                path: format!("{backup_id}/{MANIFEST_FILE}"),
                source,
            });
        }
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
        for meta in leftovers {
            store
                .object_store()
                .delete(&meta.location)
                .await
                .map_err(|source| BackupError::Storage {
                    path: meta.location.to_string(),
                    source,
                })?;
        }
    }
    Ok(())
}

async fn backup_topics(
    cluster: &Cluster,
    store: &Store,
    backup_id: &str,
    selection: &crate::config::TopicSelection,
    options: &BackupOptions,
    files: &mut BTreeMap<String, manifest::FileEntry>,
) -> Result<BTreeMap<String, TopicManifest>, BackupError> {
    let metadata = cluster.metadata_consumer()?;
    let topics = kafka::list_topics(&metadata, cluster, selection)?;
    let admin = cluster.admin()?;
    let mut out = BTreeMap::new();
    let mut jobs = Vec::new();
    for topic in &topics {
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
        for &partition in &topic.partitions {
            let (low, high) = kafka::watermarks(&metadata, &topic.name, partition)?;
            jobs.push(PartitionJob {
                topic: topic.name.clone(),
                partition,
                low,
                high,
                segment_bytes: options.segment_bytes,
                zstd_level: options.zstd_level,
                stall_timeout: Duration::from_secs(120),
            });
        }
    }
    let total: u64 = jobs.iter().map(|j| (j.high - j.low).max(0) as u64).sum();
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
            let result =
                topics::backup_partition(&cluster, &store, &backup_id, &job, &progress, &runtime);
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
