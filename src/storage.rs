//! Where backups live: one `object_store` code path for a local folder (the
//! default), `file://`, `s3://`, `gs://`, `az://` and `memory://`.
//!
//! A [`Location`] is only a description (URL plus options) and can be checked
//! without touching anything; [`Location::open`] makes the store.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

use crate::config::{Backend, Storage};

/// Why a storage location cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage location `{location}` is not valid: {reason}")]
    BadLocation { location: String, reason: String },
    #[error("cannot open storage `{location}`: {source}")]
    Open {
        location: String,
        source: object_store::Error,
    },
    #[error("cannot create the local storage folder `{}`: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage.encryption: {reason}")]
    Key { reason: String },
}

/// The encryption key of a location, compared by fingerprint.
#[derive(Clone, Debug, Default)]
pub struct KeySlot(pub Option<Arc<crate::crypto::Key>>);

impl PartialEq for KeySlot {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref().map(|k| &k.fingerprint) == other.0.as_ref().map(|k| &k.fingerprint)
    }
}

impl Eq for KeySlot {}

/// Where the backups of one configuration are: a URL and the backend options.
#[derive(Clone, PartialEq, Eq)]
pub struct Location {
    url: Url,
    options: BTreeMap<String, String>,
    key: KeySlot,
}

/// The default when a configuration names no storage: a folder beside the
/// working directory.
pub const DEFAULT_LOCAL_PATH: &str = "kafka-backups";

const SCHEMES: &[&str] = &[
    "file", "memory", "s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss",
];

impl Location {
    /// A path (`./backups`, `/srv/backups`) or a URL (`s3://bucket/prefix`).
    pub fn parse(text: &str) -> Result<Self, StorageError> {
        let bad = |reason: String| StorageError::BadLocation {
            location: text.to_owned(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(bad("it is empty".into()));
        }
        match Url::parse(text) {
            Ok(url) if url.scheme().len() > 1 => {
                if !SCHEMES.contains(&url.scheme()) {
                    return Err(bad(format!(
                        "scheme `{}` is not supported (use a path, file://, s3://, gs://, az:// or memory://)",
                        url.scheme()
                    )));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(bad(
                        "credentials do not belong in the URL: use the usual environment variables or `storage.options`"
                            .into(),
                    ));
                }
                if matches!(
                    url.scheme(),
                    "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss"
                ) && url.host_str().is_none_or(str::is_empty)
                {
                    return Err(bad("the URL names no bucket or container".into()));
                }
                Ok(Self {
                    url,
                    options: BTreeMap::new(),
                    key: KeySlot::default(),
                })
            }
            // no scheme, or a one-letter one (a Windows drive): a local path
            _ => Self::local(FsPath::new(text)).map_err(|e| bad(e.to_string())),
        }
    }

    fn local(path: &FsPath) -> Result<Self, StorageError> {
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|source| StorageError::CreateDir {
                    path: path.to_owned(),
                    source,
                })?
                .join(path)
        };
        let normalised = normalise(&absolute);
        let url =
            Url::from_directory_path(&normalised).map_err(|()| StorageError::BadLocation {
                location: path.display().to_string(),
                reason: "not an absolute path".into(),
            })?;
        Ok(Self {
            url,
            options: BTreeMap::new(),
            key: KeySlot::default(),
        })
    }

    /// The location a configuration's `storage:` block names (the local
    /// default when there is none).
    pub fn from_config(storage: Option<&Storage>) -> Result<Self, StorageError> {
        let Some(storage) = storage else {
            return Self::parse(DEFAULT_LOCAL_PATH);
        };
        let mut location = if let Some(url) = &storage.url {
            Self::parse(url.as_str())?
        } else {
            let prefix = storage
                .prefix
                .as_ref()
                .map(|p| p.as_str().trim_matches('/').to_owned())
                .unwrap_or_default();
            let bucket = storage.bucket.as_ref().map(|b| b.as_str()).unwrap_or("");
            match storage.backend.unwrap_or(Backend::Filesystem) {
                Backend::Filesystem => {
                    let base = storage
                        .path
                        .as_ref()
                        .map(|p| p.as_str())
                        .unwrap_or(DEFAULT_LOCAL_PATH);
                    let path = FsPath::new(base).join(&prefix);
                    Self::parse(&path.display().to_string())?
                }
                Backend::Memory => Self::parse(&format!("memory:///{prefix}"))?,
                Backend::S3 => Self::parse(&format!("s3://{bucket}/{prefix}"))?,
                Backend::Gcs => Self::parse(&format!("gs://{bucket}/{prefix}"))?,
                Backend::Azure => Self::parse(&format!("az://{bucket}/{prefix}"))?,
            }
        };
        if let Some(region) = &storage.region {
            location
                .options
                .insert("aws_region".into(), region.to_string());
        }
        if let Some(endpoint) = &storage.endpoint {
            location
                .options
                .insert("aws_endpoint".into(), endpoint.to_string());
        }
        if let Some(allow) = storage.allow_http {
            location
                .options
                .insert("aws_allow_http".into(), allow.to_string());
        }
        for (k, v) in &storage.options {
            location.options.insert(k.clone(), v.0.to_string());
        }
        if let Some(e) = &storage.encryption {
            location.key = KeySlot(Some(Arc::new(load_key(e)?)));
        }
        Ok(location)
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The location with `key` for sealing and opening backups.
    pub fn with_key(mut self, key: crate::crypto::Key) -> Self {
        self.key = KeySlot(Some(Arc::new(key)));
        self
    }

    pub fn is_local(&self) -> bool {
        self.url.scheme() == "file"
    }

    /// Opens the store. Cloud backends read their credentials from the usual
    /// environment variables (`AWS_ACCESS_KEY_ID`, `GOOGLE_APPLICATION_CREDENTIALS`,
    /// `AZURE_STORAGE_ACCOUNT_NAME`, ...) and then from `storage.options`.
    pub fn open(&self) -> Result<Store, StorageError> {
        let open_err = |source| StorageError::Open {
            location: self.to_string(),
            source,
        };
        let mut local = None;
        if self.is_local() {
            let dir = self
                .url
                .to_file_path()
                .map_err(|()| StorageError::BadLocation {
                    location: self.to_string(),
                    reason: "not a local path".into(),
                })?;
            std::fs::create_dir_all(&dir).map_err(|source| StorageError::CreateDir {
                path: dir.clone(),
                source,
            })?;
            local = Some(dir);
        }
        let mut options: BTreeMap<String, String> = BTreeMap::new();
        if matches!(self.url.scheme(), "s3" | "s3a") {
            options.extend(env_options("AWS_"));
        } else if self.url.scheme() == "gs" {
            options.extend(env_options("GOOGLE_"));
        } else if matches!(self.url.scheme(), "az" | "adl" | "azure" | "abfs" | "abfss") {
            options.extend(env_options("AZURE_"));
        }
        options.extend(self.options.clone());
        let (store, prefix) = object_store::parse_url_opts(&self.url, options).map_err(open_err)?;
        Ok(Store {
            inner: Arc::from(store),
            prefix,
            display: self.to_string(),
            local,
            key: self.key.0.clone(),
        })
    }
}

/// The key `storage.encryption` gives (read from `key_file` when set).
pub fn load_key(e: &crate::config::Encryption) -> Result<crate::crypto::Key, StorageError> {
    let text = match (&e.key, &e.key_file) {
        (Some(key), None) => key.expose().to_owned(),
        (None, Some(file)) => {
            std::fs::read_to_string(file.as_str()).map_err(|err| StorageError::Key {
                reason: format!("cannot read `key_file` `{file}`: {err}"),
            })?
        }
        _ => {
            return Err(StorageError::Key {
                reason: "give exactly one of `key` and `key_file`".into(),
            });
        }
    };
    crate::crypto::Key::parse(&text, e.key_id.as_ref().map(|t| t.as_str()))
        .map_err(|reason| StorageError::Key { reason })
}

/// The environment variables a backend reads, lower-cased as object_store's
/// option keys are (`AWS_REGION` -> `aws_region`).
fn env_options(prefix: &str) -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// Removes `.` and `..` from an absolute path without touching the disk.
fn normalise(path: &FsPath) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_local()
            && let Ok(path) = self.url.to_file_path()
        {
            return write!(f, "{}", path.display());
        }
        f.write_str(self.url.as_str())
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // options may hold credentials: show their names only
        f.debug_struct("Location")
            .field("url", &self.url.as_str())
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// An opened store and the prefix every backup of this location lives under.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    display: String,
    /// The folder of a local (`file://`) location.
    local: Option<PathBuf>,
    /// The key backups are sealed with (`storage.encryption`).
    key: Option<Arc<crate::crypto::Key>>,
}

impl Store {
    /// The folder of a local location: object stores have no folders, but
    /// a file system keeps the emptied ones (`prune` removes them).
    pub fn local_dir(&self) -> Option<&FsPath> {
        self.local.as_deref()
    }

    /// The encryption key of this location, when one is configured.
    pub fn key(&self) -> Option<&crate::crypto::Key> {
        self.key.as_deref()
    }

    /// `bytes` as stored at `<backup_id>/<relative>`: sealed when the
    /// location has a key.
    pub fn seal(&self, path: &str, bytes: Vec<u8>) -> Vec<u8> {
        match &self.key {
            Some(key) => key.seal(path, &bytes),
            None => bytes,
        }
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The path of `relative` (slash-separated, already safe) under the prefix.
    pub fn path(&self, relative: &str) -> Path {
        let mut path = self.prefix.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        path
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// A backup ID becomes one folder name: keep it to characters every store
/// takes, so that it can never walk outside its prefix.
pub fn check_backup_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("a backup ID cannot be empty".into());
    }
    if id.len() > 200 {
        return Err(format!(
            "a backup ID has at most 200 characters, this one has {}",
            id.len()
        ));
    }
    if id.starts_with('.') {
        return Err(format!("backup ID `{id}` cannot start with `.`"));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "backup ID `{id}` holds `{bad}`: use letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use object_store::{ObjectStoreExt, PutPayload};

    #[test]
    fn paths_and_urls_parse() {
        let local = Location::parse("/srv/backups/../b").unwrap();
        assert_eq!(local.url().as_str(), "file:///srv/b/");
        assert_eq!(local.to_string(), "/srv/b/");
        let s3 = Location::parse("s3://bucket/prod").unwrap();
        assert_eq!(s3.url().as_str(), "s3://bucket/prod");
        assert!(
            Location::parse("ftp://x/y")
                .unwrap_err()
                .to_string()
                .contains("scheme `ftp`")
        );
        assert!(
            Location::parse("s3://key:secret@bucket/x")
                .unwrap_err()
                .to_string()
                .contains("credentials")
        );
        assert!(
            Location::parse("s3:///x")
                .unwrap_err()
                .to_string()
                .contains("no bucket")
        );
        assert!(Location::parse("").is_err());
    }

    #[test]
    fn backup_ids_stay_in_their_folder() {
        assert!(check_backup_id("full-backup-with-schemas").is_ok());
        assert!(check_backup_id("2024.12.01_a").is_ok());
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", "ü"] {
            assert!(check_backup_id(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn local_and_memory_share_one_code_path() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        for location in [
            Location::parse(nested.to_str().unwrap()).unwrap(),
            Location::parse("memory:///prefix").unwrap(),
        ] {
            let store = location.open().unwrap();
            let path = store.path("backup-1/manifest.json");
            store
                .object_store()
                .put(&path, PutPayload::from(Bytes::from_static(b"{}")))
                .await
                .unwrap();
            let got = store
                .object_store()
                .get(&path)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(&got[..], b"{}");
        }
        assert!(nested.join("backup-1/manifest.json").is_file());
    }
}
