//! Gathering the planner's inputs: the backup's registry snapshot (from
//! storage) and the target registry's live snapshot (over HTTP). The planner
//! itself never does I/O; this is the step before it.

use crate::backup::registry::{LayoutError, SchemaManifest, restore_snapshot};
use crate::config::{Config, IncludeVersions, OneOrMany, RegistryBackup};
use crate::manifest::{BackupReader, ReadError};
use crate::model::RegistrySnapshot;
use crate::registry::{HttpRegistry, RegistryError};
use crate::storage::{Location, StorageError};

/// Why the planner's inputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("the configuration has no `{key}`, which a plan needs")]
    Missing { key: &'static str },
    #[error(transparent)]
    Location(#[from] StorageError),
    #[error(transparent)]
    Backup(#[from] ReadError),
    #[error(
        "backup `{backup_id}` holds no registry state (it was taken without `enterprise.schema_registry.enabled`)"
    )]
    NoRegistry { backup_id: String },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("cannot read the target registry at `{url}`")]
    Target {
        url: String,
        #[source]
        source: RegistryError,
    },
}

/// The backup's side: its registry snapshot and schema manifest.
pub async fn backup_snapshot(
    config: &Config,
) -> Result<(RegistrySnapshot, SchemaManifest), GatherError> {
    let backup_id = config
        .backup_id
        .as_ref()
        .ok_or(GatherError::Missing { key: "backup_id" })?;
    let store = Location::from_config(config.storage.as_ref())?.open()?;
    let reader = BackupReader::open(&store, backup_id.as_str()).await?;
    if reader.manifest.schema_registry.is_none() {
        return Err(GatherError::NoRegistry {
            backup_id: backup_id.to_string(),
        });
    }
    Ok(restore_snapshot(&reader).await?)
}

/// The target's side: its whole live state (every subject, soft-deleted
/// versions included, since they hold IDs and version numbers), and the
/// number of HTTP requests it took.
pub async fn target_snapshot(config: &Config) -> Result<(RegistrySnapshot, u64), GatherError> {
    let sr = &config.enterprise.schema_registry;
    let url = sr
        .url
        .as_ref()
        .ok_or(GatherError::Missing {
            key: "enterprise.schema_registry.url",
        })?
        .to_string();
    let target_err = |source| GatherError::Target {
        url: url.clone(),
        source,
    };
    let client = HttpRegistry::new(sr).map_err(target_err)?;
    let everything = RegistryBackup {
        subjects: RegistryBackup::default().subjects,
        exclude: OneOrMany::default(),
        include_soft_deleted: true,
        include_versions: IncludeVersions::All,
        include_references: true,
        allow_unknown_ids: false,
    };
    let (snapshot, _) = crate::registry::fetch(
        &client,
        &everything,
        &crate::config::Protobuf::default(),
        None,
        sr.max_concurrency,
    )
    .await
    .map_err(target_err)?;
    Ok((snapshot, client.request_count()))
}
