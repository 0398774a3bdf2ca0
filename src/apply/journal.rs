//! The apply journal: `<backup_id>/apply/<target>/<plan digest>/journal.json`
//! in the backup's storage (`<target>`: the target registry's URL made a
//! file name, see [`target_key`]), written after every step, so that a killed
//! or failed apply rerun skips what is done, and a second apply of a finished
//! plan to a target still as it left it changes nothing. Beside it,
//! `id-map.json`: the final source-to-target ID map, and `plan.json`: the plan,
//! so that what an interrupted apply left temporary can be put back.
//!
//! Two targets in the same state get the same plan digest: the target in the
//! path keeps their journals apart.
//!
//! Writes are conditional where the store allows it: the first journal is
//! created with `PutMode::Create` (two applies of one plan started at once:
//! the second fails), later ones with `PutMode::Update` on the last e-tag.
//! Stores without conditional updates (the local file system) get a plain
//! overwrite instead.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::model::DEFAULT_CONTEXT;
use crate::storage::Store;

/// `format` of every journal this version writes.
pub const JOURNAL_FORMAT: &str = "kafka-backup/apply-journal/v1";

/// Source context, then source ID, to target ID.
pub type IdMap = BTreeMap<String, BTreeMap<u32, u32>>;

/// What an apply of one plan has done so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// [`JOURNAL_FORMAT`].
    pub format: String,
    /// Digest of the plan it belongs to.
    pub plan_digest: String,
    /// Steps that succeeded (and are not to be run again).
    pub done: BTreeSet<u32>,
    /// IDs the target assigned so far (registrations without an explicit ID).
    pub assigned_ids: IdMap,
    /// Every step is done.
    pub finished: bool,
    /// The target registry's URL (config checks keep credentials out of
    /// it): which registry an interrupted apply may have left temporary
    /// settings in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The target's fingerprint once every step was done: a finished plan
    /// is "already applied" only to a target still in that state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_target_fingerprint: Option<String>,
}

impl Journal {
    pub fn new(plan_digest: &str) -> Self {
        Self {
            format: JOURNAL_FORMAT.to_owned(),
            plan_digest: plan_digest.to_owned(),
            done: BTreeSet::new(),
            assigned_ids: IdMap::new(),
            finished: false,
            target: None,
            final_target_fingerprint: None,
        }
    }
}

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read the apply journal `{path}`")]
    Read {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("the apply journal `{path}` is not readable JSON: {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "the apply journal `{path}` was written by another apply meanwhile\nhint: two applies of the same plan ran at once; wait for the other one, then rerun"
    )]
    Concurrent { path: String },
    #[error("cannot write `{path}`")]
    Write {
        path: String,
        #[source]
        source: object_store::Error,
    },
}

/// Where one plan's journal and ID map live, and the state of the last write.
pub struct JournalStore {
    store: Store,
    folder: String,
    last: Option<UpdateVersion>,
    conditional: bool,
    /// The next save overwrites the journal there (see [`Self::forget_version`]).
    replace: bool,
    /// Whether `id-map.json` is written (`restore.id_mapping`).
    keep_id_map: bool,
}

impl JournalStore {
    /// The folder `<backup_id>/apply/<target key>/<digest>/` of `store`.
    pub fn new(store: Store, backup_id: &str, target: &str, plan_digest: &str) -> Self {
        Self {
            store,
            folder: format!("{backup_id}/apply/{}/{plan_digest}", target_key(target)),
            last: None,
            conditional: true,
            replace: false,
            keep_id_map: true,
        }
    }

    /// The same store, writing no `id-map.json` (`restore.id_mapping: false`:
    /// no source-to-target map is kept; the journal still records the IDs
    /// the target assigned, so that a rerun goes on).
    pub fn without_id_map(mut self) -> Self {
        self.keep_id_map = false;
        self
    }

    /// Whether `id-map.json` is written.
    pub fn keeps_id_map(&self) -> bool {
        self.keep_id_map
    }

    /// `<backup_id>/apply/<target key>/<digest>/<name>`, as shown to people.
    pub fn display(&self, name: &str) -> String {
        format!(
            "{}/{}/{name}",
            self.store.to_string().trim_end_matches('/'),
            self.folder
        )
    }

    fn path(&self, name: &str) -> object_store::path::Path {
        self.store.path(&format!("{}/{name}", self.folder))
    }

    /// The journal, `None` when this plan was never applied here.
    pub async fn load(&mut self) -> Result<Option<Journal>, JournalError> {
        let path = self.path("journal.json");
        let shown = self.display("journal.json");
        let got = match self.store.object_store().get(&path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => {
                return Err(JournalError::Read {
                    path: shown,
                    source,
                });
            }
        };
        self.last = Some(UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        });
        let bytes = got.bytes().await.map_err(|source| JournalError::Read {
            path: shown.clone(),
            source,
        })?;
        let journal: Journal =
            serde_json::from_slice(&bytes).map_err(|e| JournalError::Invalid {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        if journal.format != JOURNAL_FORMAT {
            return Err(JournalError::Invalid {
                path: shown,
                reason: format!("format `{}`, expected `{JOURNAL_FORMAT}`", journal.format),
            });
        }
        Ok(Some(journal))
    }

    /// Writes the journal: created the first time, then updated.
    pub async fn save(&mut self, journal: &Journal) -> Result<(), JournalError> {
        let mut bytes = serde_json::to_vec_pretty(journal).expect("a journal serializes");
        bytes.push(b'\n');
        let path = self.path("journal.json");
        let shown = self.display("journal.json");
        let mode = match (&self.last, self.conditional) {
            (None, _) if self.replace => PutMode::Overwrite,
            (None, _) => PutMode::Create,
            (Some(v), true) => PutMode::Update(v.clone()),
            (Some(_), false) => PutMode::Overwrite,
        };
        let payload = PutPayload::from(Bytes::from(bytes));
        let put = |mode| {
            self.store.object_store().put_opts(
                &path,
                payload.clone(),
                PutOptions {
                    mode,
                    ..Default::default()
                },
            )
        };
        let result = match put(mode).await {
            Err(object_store::Error::NotImplemented { .. }) => {
                // no conditional update here (local files): overwrite
                self.conditional = false;
                put(PutMode::Overwrite).await
            }
            other => other,
        };
        match result {
            Ok(done) => {
                self.last = Some(UpdateVersion {
                    e_tag: done.e_tag,
                    version: done.version,
                });
                Ok(())
            }
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(JournalError::Concurrent { path: shown }),
            Err(source) => Err(JournalError::Write {
                path: shown,
                source,
            }),
        }
    }

    /// Forgets the journal loaded last: the next save replaces it (a
    /// finished plan applied anew) rather than updating it.
    pub fn forget_version(&mut self) {
        self.last = None;
        self.replace = true;
    }

    /// The plan kept beside the journal (`plan.json`), `None` when there is none.
    pub async fn load_plan(&self) -> Result<Option<Vec<u8>>, JournalError> {
        match self.store.object_store().get(&self.path("plan.json")).await {
            Ok(got) => got.bytes().await.map(|b| Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => Err(e),
        }
        .map_err(|source| JournalError::Read {
            path: self.display("plan.json"),
            source,
        })
    }

    /// Keeps the plan file beside the journal (`plan.json`), so that the
    /// temporary settings of an interrupted apply can be put back later.
    pub async fn save_plan(&self, bytes: &[u8]) -> Result<(), JournalError> {
        self.store
            .object_store()
            .put(
                &self.path("plan.json"),
                PutPayload::from(Bytes::from(bytes.to_vec())),
            )
            .await
            .map(|_| ())
            .map_err(|source| JournalError::Write {
                path: self.display("plan.json"),
                source,
            })
    }

    /// Writes `id-map.json` (see [`id_map_json`]), unless told not to keep one.
    pub async fn save_id_map(&self, map: &IdMap) -> Result<(), JournalError> {
        if !self.keep_id_map {
            return Ok(());
        }
        let bytes = id_map_json(map);
        self.store
            .object_store()
            .put(
                &self.path("id-map.json"),
                PutPayload::from(Bytes::from(bytes)),
            )
            .await
            .map(|_| ())
            .map_err(|source| JournalError::Write {
                path: self.display("id-map.json"),
                source,
            })
    }
}

/// The folder name of a target registry: its URL, readable where it is
/// plain, with a short hash of the exact URL so that two never share one.
pub fn target_key(target: &str) -> String {
    crate::restore::journal::file_name(target)
}

/// The plan digests applied to `target` that have a journal folder.
pub async fn applied_plans(
    store: &Store,
    backup_id: &str,
    target: &str,
) -> Result<Vec<String>, JournalError> {
    let key = target_key(target);
    let prefix = store.path(&format!("{backup_id}/apply/{key}"));
    let listed = store
        .object_store()
        .list_with_delimiter(Some(&prefix))
        .await
        .map_err(|source| JournalError::Read {
            path: format!(
                "{}/{backup_id}/apply/{key}/",
                store.to_string().trim_end_matches('/')
            ),
            source,
        })?;
    let mut digests: Vec<String> = listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_owned))
        .collect();
    digests.sort();
    Ok(digests)
}

/// The ID map in the seed's format, `{"1": 1, "5": 2}`, IDs of another
/// context keyed `":.ctx:5"`; keys in context, then numeric order.
pub fn id_map_json(map: &IdMap) -> Vec<u8> {
    let mut out = String::from("{");
    let mut first = true;
    for (ctx, ids) in map {
        for (source, target) in ids {
            let key = if ctx == DEFAULT_CONTEXT {
                source.to_string()
            } else {
                format!(":{ctx}:{source}")
            };
            out.push_str(if first { "\n  " } else { ",\n  " });
            first = false;
            out.push_str(&format!("{}: {target}", serde_json::Value::String(key)));
        }
    }
    out.push_str(if first { "}\n" } else { "\n}\n" });
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_map_reads_back_as_an_id_mapping_file() {
        let mut map = IdMap::new();
        map.entry(".".into())
            .or_default()
            .extend([(1, 1), (5, 2), (2, 3)]);
        map.entry(".dr".into()).or_default().insert(5, 7);
        let bytes = id_map_json(&map);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "{\n  \"1\": 1,\n  \"2\": 3,\n  \"5\": 2,\n  \":.dr:5\": 7\n}\n"
        );
        let parsed = crate::plan::parse_id_mapping_file(&bytes).unwrap();
        assert_eq!(parsed, map);
        assert_eq!(id_map_json(&IdMap::new()), b"{}\n");
    }
}
