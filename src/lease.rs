//! Leases: one run at a time per resource (a backup ID, a target registry, a
//! target cluster), kept in the backup's storage under `leases/`, so that two
//! runs cannot trample each other: two backups with one ID deleting each
//! other's files, two applies writing the same target.
//!
//! A lease is an object created with `PutMode::Create` (one creator wins),
//! holding who has it (host, process, start) and until when; the holder
//! renews it while it runs (a conditional update on the last version) and
//! deletes it at the end. Another run finds it and is refused, naming the
//! holder, unless the lease ran out, or its holder is a process of this host
//! that is gone (`kill -9`), or `--force-unlock` says the holder is gone.
//! Taking over is a conditional update too: of two runs taking over, one wins.
//!
//! Where a store cannot update conditionally (the local file system creates
//! exclusively but cannot compare versions), renewals and take-overs
//! overwrite; the tool says so once, since two runs taking over an expired
//! lease at the same instant could then both believe they hold it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::storage::Store;

/// How long a lease lasts without renewal.
pub const TTL: Duration = Duration::from_secs(60);

/// `format` of every lease this version writes.
pub const LEASE_FORMAT: &str = "kafka-backup/lease/v1";

/// What a lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub format: String,
    /// What is leased (`backup nightly-1`, `registry http://...`).
    pub resource: String,
    pub host: String,
    pub pid: u32,
    /// The command that holds it (`backup`, `apply`).
    pub command: String,
    pub started_at: String,
    pub expires_at: String,
    /// Tells this holder's lease from a later one at the same path.
    pub token: String,
}

/// Why a lease could not be had or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "{resource} is in use by `{command}` on host `{host}` (process {pid}, since {started_at}; its lease `{path}` runs until {expires_at} unless renewed)\nhint: wait for it to finish; if that run is gone for good (its machine lost), rerun with `--force-unlock`"
    )]
    Held {
        resource: String,
        command: String,
        host: String,
        pid: u32,
        started_at: String,
        expires_at: String,
        path: String,
    },
    #[error(
        "{resource}: another run took over the lease `{path}` at the same time as this one\nhint: wait for that run to finish"
    )]
    Raced { resource: String, path: String },
    #[error("cannot read or write the lease `{path}`")]
    Storage {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("the lease `{path}` is not readable: {reason}\nhint: delete it if no run holds it")]
    Invalid { path: String, reason: String },
}

/// A lease held by this run; renewed in the background until released.
pub struct Lease {
    store: Store,
    relative: String,
    record: LeaseRecord,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes the lease at `leases/<name>.json` for `resource`, or says who
    /// holds it. `force` takes it from a live holder (`--force-unlock`).
    pub async fn acquire(
        store: &Store,
        name: &str,
        resource: &str,
        command: &str,
        force: bool,
    ) -> Result<Self, LeaseError> {
        let relative = format!("leases/{name}.json");
        let path = store.path(&relative);
        let shown = format!("{}/{relative}", store.to_string().trim_end_matches('/'));
        let storage = |source| LeaseError::Storage {
            path: shown.clone(),
            source,
        };
        let now = Utc::now();
        let record = LeaseRecord {
            format: LEASE_FORMAT.to_owned(),
            resource: resource.to_owned(),
            host: host_name(),
            pid: std::process::id(),
            command: command.to_owned(),
            started_at: stamp(now),
            expires_at: stamp(now + TTL),
            token: format!("{:016x}", fastrand::u64(..)),
        };
        // a lease released between our create and our read of it is free:
        // create again (a few times: each round needs another run to take
        // and release it in between)
        let mut attempts = 0;
        let created = loop {
            attempts += 1;
            match put(store, &path, &record, PutMode::Create).await {
                Ok(version) => break Ok(version),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(storage(e)),
            }
            match store.object_store().get(&path).await {
                Err(object_store::Error::NotFound { .. }) if attempts < 5 => {}
                got => break Err(got.map_err(storage)?),
            }
        };
        let version = match created {
            Ok(v) => v,
            Err(got) => {
                let held = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await.map_err(storage)?;
                let other: LeaseRecord =
                    serde_json::from_slice(&bytes).map_err(|e| LeaseError::Invalid {
                        path: shown.clone(),
                        reason: e.to_string(),
                    })?;
                if !(force || other.gone(now)) {
                    return Err(LeaseError::Held {
                        resource: other.resource,
                        command: other.command,
                        host: other.host,
                        pid: other.pid,
                        started_at: other.started_at,
                        expires_at: other.expires_at,
                        path: shown,
                    });
                }
                tracing::warn!(
                    "taking over the lease `{shown}` of `{}` on `{}` (process {}): {}",
                    other.command,
                    other.host,
                    other.pid,
                    if force {
                        "--force-unlock"
                    } else {
                        "its holder is gone"
                    }
                );
                match put(store, &path, &record, PutMode::Update(held)).await {
                    Err(object_store::Error::Precondition { .. }) => {
                        return Err(LeaseError::Raced {
                            resource: record.resource,
                            path: shown,
                        });
                    }
                    other => other.map_err(storage)?,
                }
            }
        };
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew(
            store.clone(),
            path,
            record.clone(),
            version,
            lost.clone(),
        ));
        Ok(Self {
            store: store.clone(),
            relative,
            record,
            lost,
            renewer,
        })
    }

    /// Refuses when a live run holds a lease named `leases/<name>.json` for
    /// a name `matches` takes (one that ran out, or whose holder of this
    /// host is gone, counts as free): for runs that exclude each other
    /// without sharing one lease (an apply without `--shard` and the shards
    /// of one, into the same cluster). `resource` says what the holder's
    /// lease covers, for the message.
    pub async fn refuse_if_held(
        store: &Store,
        matches: impl Fn(&str) -> bool,
        resource: impl Fn(&str) -> String,
    ) -> Result<(), LeaseError> {
        let held = Self::live(store, matches).await?;
        match held.into_iter().next() {
            Some((name, other)) => Err(LeaseError::Held {
                resource: resource(&name),
                command: other.command,
                host: other.host,
                pid: other.pid,
                started_at: other.started_at,
                expires_at: other.expires_at,
                path: format!(
                    "{}/leases/{name}.json",
                    store.to_string().trim_end_matches('/')
                ),
            }),
            None => Ok(()),
        }
    }

    /// The leases of `store` whose name `matches` takes and whose holder may
    /// still be running (not run out, not a gone process of this host), by name.
    pub async fn live(
        store: &Store,
        matches: impl Fn(&str) -> bool,
    ) -> Result<std::collections::BTreeMap<String, LeaseRecord>, LeaseError> {
        let prefix = store.path("leases");
        let shown =
            |name: &str| format!("{}/leases/{name}", store.to_string().trim_end_matches('/'));
        let listed = store
            .object_store()
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|source| LeaseError::Storage {
                path: shown(""),
                source,
            })?;
        let now = Utc::now();
        let mut out = std::collections::BTreeMap::new();
        for object in &listed.objects {
            let Some(file) = object.location.filename() else {
                continue;
            };
            let Some(name) = file.strip_suffix(".json").filter(|n| matches(n)) else {
                continue;
            };
            let bytes = match store.object_store().get(&object.location).await {
                Ok(got) => got.bytes().await,
                // released since the listing
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => Err(e),
            }
            .map_err(|source| LeaseError::Storage {
                path: shown(file),
                source,
            })?;
            let other: LeaseRecord =
                serde_json::from_slice(&bytes).map_err(|e| LeaseError::Invalid {
                    path: shown(file),
                    reason: e.to_string(),
                })?;
            if !other.gone(now) {
                out.insert(name.to_owned(), other);
            }
        }
        Ok(out)
    }

    /// Whether another run took the lease over (this one must stop writing).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Stops renewing and deletes the lease (when it is still this run's).
    pub async fn release(self) {
        self.renewer.abort();
        let path = self.store.path(&self.relative);
        let still_ours = match self.store.object_store().get(&path).await {
            Ok(got) => got
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<LeaseRecord>(&b).ok())
                .is_some_and(|r| r.token == self.record.token),
            Err(_) => false,
        };
        if still_ours && let Err(e) = self.store.object_store().delete(&path).await {
            tracing::warn!("cannot delete the lease `{}`: {e}", self.relative);
        }
    }
}

impl LeaseRecord {
    /// Whether its holder can no longer be running: the lease ran out, or
    /// it names a process of this host that does not exist.
    pub fn gone(&self, now: DateTime<Utc>) -> bool {
        let expired = DateTime::parse_from_rfc3339(&self.expires_at)
            .map(|t| t.with_timezone(&Utc) < now)
            .unwrap_or(true);
        expired
            || (self.host == host_name()
                && self.pid != std::process::id()
                && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists())
    }
}

/// Renews the lease every third of its time until aborted; marks it lost
/// when another run took it over.
async fn renew(
    store: Store,
    path: object_store::path::Path,
    mut record: LeaseRecord,
    mut version: UpdateVersion,
    lost: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(TTL / 3).await;
        record.expires_at = stamp(Utc::now() + TTL);
        match put(&store, &path, &record, PutMode::Update(version.clone())).await {
            Ok(v) => version = v,
            Err(object_store::Error::Precondition { .. }) => {
                tracing::error!("the lease `{path}` was taken over by another run");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!("cannot renew the lease `{path}`: {e}"),
        }
    }
}

/// Writes `record` with `mode`; a store that cannot update conditionally
/// overwrites instead (said once).
async fn put(
    store: &Store,
    path: &object_store::path::Path,
    record: &LeaseRecord,
    mode: PutMode,
) -> Result<UpdateVersion, object_store::Error> {
    let bytes = serde_json::to_vec_pretty(record).expect("a lease serializes");
    let payload = PutPayload::from(Bytes::from(bytes));
    let attempt = |mode| {
        store.object_store().put_opts(
            path,
            payload.clone(),
            PutOptions {
                mode,
                ..Default::default()
            },
        )
    };
    let done = match attempt(mode.clone()).await {
        Err(object_store::Error::NotImplemented { .. }) if matches!(mode, PutMode::Update(_)) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(
                    "this storage cannot update a lease conditionally: it is overwritten instead, so two runs taking over an expired lease at the same instant could both go on"
                );
            });
            attempt(PutMode::Overwrite).await?
        }
        other => other?,
    };
    Ok(UpdateVersion {
        e_tag: done.e_tag,
        version: done.version,
    })
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// This machine's name, as leases record it.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Location;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Location::parse(dir.path().to_str().unwrap())
            .unwrap()
            .open()
            .unwrap();
        (dir, store)
    }

    fn record(host: &str, pid: u32, expires: DateTime<Utc>) -> LeaseRecord {
        LeaseRecord {
            format: LEASE_FORMAT.into(),
            resource: "backup b1".into(),
            host: host.into(),
            pid,
            command: "backup".into(),
            started_at: stamp(Utc::now()),
            expires_at: stamp(expires),
            token: "t".into(),
        }
    }

    async fn plant(store: &Store, r: &LeaseRecord) {
        store
            .object_store()
            .put(
                &store.path("leases/b.json"),
                PutPayload::from(serde_json::to_vec(r).unwrap()),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_held_lease_refuses_a_second_run_and_is_free_after_release() {
        let (_dir, store) = store();
        let first = Lease::acquire(&store, "b", "backup b1", "backup", false)
            .await
            .unwrap();
        let err = Lease::acquire(&store, "b", "backup b1", "backup", false)
            .await
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(
            text.starts_with("backup b1 is in use by `backup` on host")
                && text.contains(&format!("(process {}", std::process::id()))
                && text.contains("--force-unlock"),
            "{text}"
        );
        first.release().await;
        Lease::acquire(&store, "b", "backup b1", "backup", false)
            .await
            .unwrap()
            .release()
            .await;
    }

    #[tokio::test]
    async fn a_live_lease_of_a_matching_name_refuses_a_run_that_excludes_it() {
        let (_dir, store) = store();
        let unsharded = |n: &str| n == "cluster-c";
        let shards = |n: &str| n.starts_with("cluster-c-shard-");
        let said = |n: &str| format!("`{n}`");
        // nothing held
        Lease::refuse_if_held(&store, shards, said).await.unwrap();
        let shard = Lease::acquire(&store, "cluster-c-shard-1-of-3", "s1", "apply", false)
            .await
            .unwrap();
        let other = Lease::acquire(&store, "cluster-d", "d", "apply", false)
            .await
            .unwrap();
        let err = Lease::refuse_if_held(&store, shards, said)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`cluster-c-shard-1-of-3` is in use by `apply` on host")
                && err.contains("leases/cluster-c-shard-1-of-3.json"),
            "{err}"
        );
        // another name, or another cluster, is no matter
        Lease::refuse_if_held(&store, unsharded, said)
            .await
            .unwrap();
        Lease::refuse_if_held(&store, |n| n.starts_with("cluster-d-shard-"), said)
            .await
            .unwrap();
        shard.release().await;
        other.release().await;
        Lease::refuse_if_held(&store, shards, said).await.unwrap();
        // a holder that is gone holds nothing
        let gone = record("elsewhere", 1, Utc::now() - chrono::Duration::seconds(1));
        store
            .object_store()
            .put(
                &store.path("leases/cluster-c-shard-0-of-3.json"),
                PutPayload::from(serde_json::to_vec(&gone).unwrap()),
            )
            .await
            .unwrap();
        Lease::refuse_if_held(&store, shards, said).await.unwrap();
    }

    #[tokio::test]
    async fn an_expired_lease_a_dead_local_holder_or_force_is_taken_over() {
        let (_dir, store) = store();
        let later = Utc::now() + chrono::Duration::seconds(600);
        // ran out
        plant(
            &store,
            &record("elsewhere", 1, Utc::now() - chrono::Duration::seconds(1)),
        )
        .await;
        Lease::acquire(&store, "b", "backup b1", "backup", false)
            .await
            .unwrap()
            .release()
            .await;
        // a process of this host that does not exist (pid beyond the kernel's limit)
        plant(&store, &record(&host_name(), u32::MAX - 1, later)).await;
        Lease::acquire(&store, "b", "backup b1", "backup", false)
            .await
            .unwrap()
            .release()
            .await;
        // alive elsewhere: refused, unless forced
        plant(&store, &record("elsewhere", 1, later)).await;
        assert!(
            Lease::acquire(&store, "b", "backup b1", "backup", false)
                .await
                .is_err()
        );
        Lease::acquire(&store, "b", "backup b1", "backup", true)
            .await
            .unwrap()
            .release()
            .await;
    }
}
