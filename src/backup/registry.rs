//! The registry part of a backup, in the reference page's layout:
//!
//! ```text
//! schema-registry/
//! ├── _schemas.json                 schema manifest: subjects, versions, id_mapping
//! ├── config/global.json            global (and per-context) compatibility and mode
//! └── subjects/<subject>/
//!     ├── metadata.json             name, compatibility, mode, versions with refs
//!     └── v<N>.avsc|.json|.proto    the schema text exactly as served
//! ```
//!
//! [`layout`] turns a snapshot into those files and [`restore_snapshot`] turns
//! the files back into the same snapshot, checking each against the other.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{
    Compatibility, Mode, Reference, RegistrySnapshot, SchemaType, SchemaVersion, ScopeSettings,
    SubjectState,
};
use crate::registry::SelectionReport;

/// Folder of the registry part inside a backup.
pub const ROOT: &str = "schema-registry";
pub const SCHEMA_MANIFEST: &str = "schema-registry/_schemas.json";
pub const GLOBAL_CONFIG: &str = "schema-registry/config/global.json";
pub const LAYOUT_VERSION: u32 = 1;

/// A subject name becomes one folder name: bytes outside `[A-Za-z0-9_-]` and
/// a leading `.` are written `=XX` (hex), so the folder name decodes back to
/// the exact subject, holds no `/`, and is never `.` or `..`. (`=` rather than
/// `%`, which object stores escape a second time.) Names whose encoding is
/// longer than a file name may be get a shortened form with `+` and a hash of
/// the full name (collision-free); their exact name is in `metadata.json`.
pub fn subject_folder(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for (i, b) in subject.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    if out.is_empty() {
        return "=".to_owned(); // the empty subject: `=` alone decodes to nothing
    }
    const MAX: usize = 180;
    if out.len() > MAX {
        let hash = crate::segment::sha256_hex(subject.as_bytes());
        let mut cut = MAX - 18;
        // never cut an escape in half
        while out.as_bytes()[..cut]
            .iter()
            .rev()
            .take(2)
            .any(|b| *b == b'%')
        {
            cut -= 1;
        }
        out = format!("{}+{}", &out[..cut], &hash[..16]);
    }
    out
}

/// The subject name a short folder name stands for (`None` for hashed names).
pub fn decode_subject_folder(folder: &str) -> Option<String> {
    if folder.contains('+') {
        return None;
    }
    if folder == "=" {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(folder.len());
    let raw = folder.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'=' {
            let hex = folder.get(i + 1..i + 3)?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(bytes).ok()
}

fn extension(schema_type: SchemaType) -> &'static str {
    match schema_type {
        SchemaType::Avro => "avsc",
        SchemaType::Json => "json",
        SchemaType::Protobuf => "proto",
    }
}

/// `_schemas.json`: the seed's schema manifest, plus what a reader needs to
/// check the other files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaManifest {
    pub layout_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry_version: Option<String>,
    pub backup_timestamp: String,
    /// Fingerprint of the backed-up state (see `RegistrySnapshot::fingerprint`).
    pub fingerprint: String,
    pub subjects: Vec<SubjectEntry>,
    /// Schema ID to the first file holding it (contexts: `:.ctx:` + ID).
    pub id_mapping: BTreeMap<String, String>,
    /// Versions taken although the selection left them out, and why: a
    /// selected schema references them, or backed-up records carry their ID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pulled_in: Vec<PulledInEntry>,
}

/// A version the selection did not take, taken anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PulledInEntry {
    pub subject: String,
    pub version: u32,
    /// Taken versions referencing it (`"<subject> v<N>"`).
    pub referenced_by: Vec<String>,
    /// Why records need it: `"schema ID 7 is carried by records of
    /// `orders` (value, 12 record(s))"`, one entry per ID it holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried_by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectEntry {
    pub name: String,
    /// Folder under `schema-registry/subjects/`.
    pub folder: String,
    /// Type of the latest version.
    pub schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<Compatibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    pub versions: Vec<VersionEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    pub version: u32,
    pub id: u32,
    pub schema_type: SchemaType,
    /// Relative to `schema-registry/`.
    pub schema_file: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// `subjects/<subject>/metadata.json`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<Compatibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    pub versions: Vec<VersionEntry>,
}

/// `config/global.json`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<Compatibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    pub contexts: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context_settings: BTreeMap<String, ScopeSettings>,
}

fn json(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("layout types always serialize");
    bytes.push(b'\n');
    bytes
}

/// The files of the registry part, by path relative to the backup folder,
/// plus the schema manifest they were made with. `id_pulled_in`: versions
/// added for the schema IDs records carry (see `backup::ids`).
pub fn layout(
    snapshot: &RegistrySnapshot,
    report: Option<&SelectionReport>,
    id_pulled_in: &[PulledInEntry],
    backup_timestamp: &str,
) -> (BTreeMap<String, Vec<u8>>, SchemaManifest) {
    let mut files = BTreeMap::new();
    let mut subjects = Vec::new();
    let mut id_mapping = BTreeMap::new();
    for (name, subject) in &snapshot.subjects {
        let folder = subject_folder(name);
        let versions: Vec<VersionEntry> = subject
            .versions
            .values()
            .map(|v| {
                let schema_file = format!(
                    "subjects/{folder}/v{}.{}",
                    v.version,
                    extension(v.schema_type)
                );
                files.insert(
                    format!("{ROOT}/{schema_file}"),
                    v.schema.clone().into_bytes(),
                );
                let (context, _) = crate::model::split_context(name);
                let key = if context == crate::model::DEFAULT_CONTEXT {
                    v.id.to_string()
                } else {
                    format!(":{context}:{}", v.id)
                };
                id_mapping.entry(key).or_insert_with(|| schema_file.clone());
                VersionEntry {
                    version: v.version,
                    id: v.id,
                    schema_type: v.schema_type,
                    schema_file,
                    references: v.references.clone(),
                    deleted: v.deleted,
                }
            })
            .collect();
        let metadata = SubjectMetadata {
            name: name.clone(),
            compatibility: subject.compatibility,
            mode: subject.mode,
            versions: versions.clone(),
        };
        files.insert(
            format!("{ROOT}/subjects/{folder}/metadata.json"),
            json(&metadata),
        );
        subjects.push(SubjectEntry {
            name: name.clone(),
            folder,
            schema_type: subject
                .versions
                .values()
                .next_back()
                .map_or(SchemaType::Avro, |v| v.schema_type),
            compatibility: subject.compatibility,
            mode: subject.mode,
            versions,
        });
    }
    let global = GlobalConfig {
        compatibility: snapshot.global.compatibility,
        mode: snapshot.global.mode,
        contexts: snapshot.contexts.clone(),
        context_settings: snapshot.context_settings.clone(),
    };
    files.insert(GLOBAL_CONFIG.to_owned(), json(&global));
    let pulled_in = report
        .map(|r| {
            r.pulled_in
                .iter()
                .filter(|p| !r.selected.contains(&p.subject))
                .map(|p| PulledInEntry {
                    subject: p.subject.clone(),
                    version: p.version,
                    referenced_by: p
                        .referenced_by
                        .iter()
                        .map(|r| format!("{} v{}", r.subject, r.version))
                        .collect(),
                    carried_by: Vec::new(),
                })
                .collect()
        })
        .unwrap_or_default();
    let pulled_in = merge_pulled_in(pulled_in, id_pulled_in);
    let manifest = SchemaManifest {
        layout_version: LAYOUT_VERSION,
        schema_registry_version: snapshot.server_version.clone(),
        backup_timestamp: backup_timestamp.to_owned(),
        fingerprint: snapshot.fingerprint(),
        subjects,
        id_mapping,
        pulled_in,
    };
    files.insert(SCHEMA_MANIFEST.to_owned(), json(&manifest));
    (files, manifest)
}

/// Both kinds of pulled-in versions, one entry per version, sorted.
fn merge_pulled_in(
    by_reference: Vec<PulledInEntry>,
    by_id: &[PulledInEntry],
) -> Vec<PulledInEntry> {
    let mut merged: BTreeMap<(String, u32), PulledInEntry> = BTreeMap::new();
    for entry in by_reference.into_iter().chain(by_id.iter().cloned()) {
        match merged.entry((entry.subject.clone(), entry.version)) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(entry);
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                let e = slot.get_mut();
                e.referenced_by.extend(entry.referenced_by);
                e.referenced_by.sort();
                e.referenced_by.dedup();
                e.carried_by.extend(entry.carried_by);
                e.carried_by.sort();
                e.carried_by.dedup();
            }
        }
    }
    merged.into_values().collect()
}

/// Why the registry part of a backup cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Read(#[from] crate::manifest::ReadError),
    #[error("`{path}` is not valid: {reason}")]
    Invalid { path: String, reason: String },
}

/// Reads the registry part back into the snapshot it was written from; each
/// file is checked against the backup manifest, and the files against each other.
pub async fn restore_snapshot(
    reader: &crate::manifest::BackupReader,
) -> Result<(RegistrySnapshot, SchemaManifest), LayoutError> {
    let invalid = |path: &str, reason: String| LayoutError::Invalid {
        path: format!("{}/{path}", reader.manifest.backup_id),
        reason,
    };
    let manifest: SchemaManifest = serde_json::from_slice(&reader.read(SCHEMA_MANIFEST).await?)
        .map_err(|e| invalid(SCHEMA_MANIFEST, e.to_string()))?;
    if manifest.layout_version > LAYOUT_VERSION {
        return Err(invalid(
            SCHEMA_MANIFEST,
            format!(
                "layout version {} is newer than this tool reads",
                manifest.layout_version
            ),
        ));
    }
    let global: GlobalConfig = serde_json::from_slice(&reader.read(GLOBAL_CONFIG).await?)
        .map_err(|e| invalid(GLOBAL_CONFIG, e.to_string()))?;
    let mut snapshot = RegistrySnapshot {
        subjects: BTreeMap::new(),
        global: ScopeSettings {
            compatibility: global.compatibility,
            mode: global.mode,
        },
        contexts: global.contexts,
        context_settings: global.context_settings,
        server_version: manifest.schema_registry_version.clone(),
    };
    for entry in &manifest.subjects {
        let meta_path = format!("{ROOT}/subjects/{}/metadata.json", entry.folder);
        let metadata: SubjectMetadata = serde_json::from_slice(&reader.read(&meta_path).await?)
            .map_err(|e| invalid(&meta_path, e.to_string()))?;
        if metadata.name != entry.name || metadata.versions != entry.versions {
            return Err(invalid(
                &meta_path,
                format!(
                    "it disagrees with `{SCHEMA_MANIFEST}` about subject `{}`",
                    entry.name
                ),
            ));
        }
        let mut subject = SubjectState::new(entry.name.clone());
        subject.compatibility = metadata.compatibility;
        subject.mode = metadata.mode;
        for v in &metadata.versions {
            let path = format!("{ROOT}/{}", v.schema_file);
            let text = String::from_utf8(reader.read(&path).await?.to_vec())
                .map_err(|_| invalid(&path, "the schema text is not UTF-8".into()))?;
            subject.versions.insert(
                v.version,
                SchemaVersion {
                    subject: entry.name.clone(),
                    version: v.version,
                    id: v.id,
                    schema_type: v.schema_type,
                    schema: text,
                    references: v.references.clone(),
                    deleted: v.deleted,
                },
            );
        }
        snapshot.subjects.insert(entry.name.clone(), subject);
    }
    let fingerprint = snapshot.fingerprint();
    if fingerprint != manifest.fingerprint {
        return Err(invalid(
            SCHEMA_MANIFEST,
            format!(
                "the files give fingerprint `{fingerprint}`, the manifest says `{}`",
                manifest.fingerprint
            ),
        ));
    }
    Ok((snapshot, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_subject_names_stay_in_one_folder_and_decode_back() {
        let long = "x".repeat(300);
        let names = [
            "orders-value",
            "../x",
            "..",
            ".",
            "a/b",
            ":.ctx:orders",
            "ünïcødé-✓",
            "%41",
            "=41",
            "a%2Fb",
            "a+b",
            "",
            " spaced name ",
            "back\\slash",
            long.as_str(),
        ];
        let mut seen = BTreeSet::new();
        for name in names {
            let folder = subject_folder(name);
            assert!(
                !folder.contains('/') && !folder.contains('\\'),
                "{name} -> {folder}"
            );
            assert!(
                folder != "." && folder != ".." && !folder.is_empty(),
                "{name} -> {folder}"
            );
            assert!(folder.len() <= 180, "{name} -> {} bytes", folder.len());
            assert!(seen.insert(folder.clone()), "collision on {folder}");
            if name.len() < 50 {
                assert_eq!(
                    decode_subject_folder(&folder).as_deref(),
                    Some(name),
                    "{folder}"
                );
            }
        }
        assert_eq!(subject_folder("orders-value"), "orders-value");
        assert_eq!(subject_folder(":.ctx:orders"), "=3A.ctx=3Aorders");
        // nothing an object store would escape again
        for name in names {
            let folder = subject_folder(name);
            let part = object_store::path::PathPart::from(folder.as_str());
            assert_eq!(part.as_ref(), folder, "{name}");
        }
        // two long names differing only at the end do not collide
        let a = format!("{}a", "y".repeat(400));
        let b = format!("{}b", "y".repeat(400));
        assert_ne!(subject_folder(&a), subject_folder(&b));
        assert_eq!(decode_subject_folder(&subject_folder(&a)), None);
    }
}
