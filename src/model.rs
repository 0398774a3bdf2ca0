//! Domain types of a registry snapshot: the whole state of a Schema Registry
//! (subjects, versions, IDs, references, compatibility and mode) as plain,
//! ordered data.
//!
//! A snapshot holds no clock, no connection and no hash map, so that the
//! planner can be a pure function over two of them and so that the same state
//! always gives the same [`RegistrySnapshot::fingerprint`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::config::{Compatibility, SchemaType};

/// The prefix of a qualified subject name that names its context (`:.ctx:orders`).
const CONTEXT_MARK: &str = ":.";

/// The name of the default context, as `GET /contexts` lists it.
pub const DEFAULT_CONTEXT: &str = ".";

/// A registry mode (`GET /mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum Mode {
    /// Normal operation: registrations are checked and get new IDs.
    #[serde(rename = "READWRITE")]
    ReadWrite,
    /// Every write is refused.
    #[serde(rename = "READONLY")]
    ReadOnly,
    /// Read-only, also for the registry's own internal writes.
    #[serde(rename = "READONLY_OVERRIDE")]
    ReadOnlyOverride,
    /// Registrations carry their own ID and version, unchecked.
    #[serde(rename = "IMPORT")]
    Import,
    /// Writes are forwarded to another registry (global scope only).
    #[serde(rename = "FORWARD")]
    Forward,
}

impl Mode {
    /// The name the REST API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
            Mode::Forward => "FORWARD",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name the REST API uses for a compatibility level.
pub fn compatibility_name(level: Compatibility) -> &'static str {
    match level {
        Compatibility::Backward => "BACKWARD",
        Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
        Compatibility::Forward => "FORWARD",
        Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
        Compatibility::Full => "FULL",
        Compatibility::FullTransitive => "FULL_TRANSITIVE",
        Compatibility::None => "NONE",
    }
}

/// The name the REST API uses for a schema type (`schemaType`).
pub fn schema_type_name(schema_type: SchemaType) -> &'static str {
    match schema_type {
        SchemaType::Avro => "AVRO",
        SchemaType::Json => "JSON",
        SchemaType::Protobuf => "PROTOBUF",
    }
}

/// Compatibility level and mode set at one scope (global, a context, a subject).
/// `None` means "not set here": the scope above applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSettings {
    /// The scope's own compatibility level.
    #[serde(default)]
    pub compatibility: Option<Compatibility>,
    /// The scope's own mode.
    #[serde(default)]
    pub mode: Option<Mode>,
}

impl ScopeSettings {
    /// Neither a level nor a mode is set.
    pub fn is_empty(&self) -> bool {
        self.compatibility.is_none() && self.mode.is_none()
    }
}

/// A schema reference: `name` is the import name (Avro full name, `.proto`
/// path, JSON `$ref`), resolved to `subject` / `version`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// Import name as the referencing schema writes it.
    pub name: String,
    /// Referenced subject; without a context prefix it lives in the
    /// referencing subject's context (see [`resolve_reference_subject`]).
    pub subject: String,
    /// Referenced version, as served (`-1` would mean "latest").
    pub version: i32,
}

/// One version of a subject, exactly as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// Qualified subject name (`orders-value`, `:.ctx:orders`).
    pub subject: String,
    /// Version number inside the subject.
    pub version: u32,
    /// Schema ID (per context).
    pub id: u32,
    /// `AVRO` when the registry leaves `schemaType` out.
    pub schema_type: SchemaType,
    /// The schema text, byte for byte as served.
    pub schema: String,
    /// References in the order the registry keeps them.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// Soft-deleted (still holds its ID, hidden from normal reads).
    #[serde(default)]
    pub deleted: bool,
}

/// One subject: its versions and its own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectState {
    /// Qualified subject name.
    pub name: String,
    /// Versions by number.
    pub versions: BTreeMap<u32, SchemaVersion>,
    /// Subject-level compatibility, when set on the subject itself.
    #[serde(default)]
    pub compatibility: Option<Compatibility>,
    /// Subject-level mode, when set on the subject itself.
    #[serde(default)]
    pub mode: Option<Mode>,
}

impl SubjectState {
    /// An empty subject named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            versions: BTreeMap::new(),
            compatibility: None,
            mode: None,
        }
    }

    /// The highest version that is not soft-deleted.
    pub fn latest_live(&self) -> Option<&SchemaVersion> {
        self.versions.values().rev().find(|v| !v.deleted)
    }
}

/// The whole state of a registry (or the selected part of it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrySnapshot {
    /// Subjects by qualified name.
    pub subjects: BTreeMap<String, SubjectState>,
    /// Global compatibility level and mode.
    pub global: ScopeSettings,
    /// Contexts the registry knows (`.` is the default one).
    #[serde(default)]
    pub contexts: BTreeSet<String>,
    /// Levels and modes set on a whole context (`/config/:.ctx:`), keyed by
    /// context (`.ctx`); contexts with nothing set are left out.
    #[serde(default)]
    pub context_settings: BTreeMap<String, ScopeSettings>,
    /// The registry's version string, when it tells; not part of the fingerprint.
    #[serde(default)]
    pub server_version: Option<String>,
}

/// What the fingerprint is computed over: the state, without the server version.
#[derive(Serialize)]
struct Canonical<'a> {
    format: &'static str,
    global: &'a ScopeSettings,
    contexts: &'a BTreeSet<String>,
    context_settings: &'a BTreeMap<String, ScopeSettings>,
    subjects: &'a BTreeMap<String, SubjectState>,
}

impl RegistrySnapshot {
    /// The bytes the fingerprint is taken over: compact JSON, fields in a fixed
    /// order, maps sorted by key, no timestamps, no server version.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let canonical = Canonical {
            format: "kafka-backup/registry-snapshot/v1",
            global: &self.global,
            contexts: &self.contexts,
            context_settings: &self.context_settings,
            subjects: &self.subjects,
        };
        serde_json::to_vec(&canonical).expect("a snapshot always serializes")
    }

    /// SHA-256 (lowercase hex) of [`Self::canonical_bytes`]: equal state, equal
    /// fingerprint, whatever order the state was read or built in.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_bytes()))
    }

    /// Number of versions over all subjects.
    pub fn version_count(&self) -> usize {
        self.subjects.values().map(|s| s.versions.len()).sum()
    }

    /// The version `subject`/`version`, if the snapshot holds it.
    pub fn version(&self, subject: &str, version: u32) -> Option<&SchemaVersion> {
        self.subjects.get(subject)?.versions.get(&version)
    }
}

/// The context of a qualified subject name: `.ctx` for `:.ctx:orders`, `.`
/// for a name without a context prefix.
pub fn context_of(subject: &str) -> &str {
    split_context(subject).0
}

/// Splits `:.ctx:name` into (`.ctx`, `name`); a plain name is in `.`.
pub fn split_context(subject: &str) -> (&str, &str) {
    if let Some(rest) = subject.strip_prefix(':')
        && subject.starts_with(CONTEXT_MARK)
        && let Some(end) = rest.find(':')
    {
        return (&rest[..end], &rest[end + 1..]);
    }
    (DEFAULT_CONTEXT, subject)
}

/// The qualified subject a reference points to: a reference without a
/// context prefix resolves in the referencing subject's context.
pub fn resolve_reference_subject(referrer: &str, referenced: &str) -> String {
    if referenced.starts_with(CONTEXT_MARK) {
        return referenced.to_owned();
    }
    match context_of(referrer) {
        DEFAULT_CONTEXT => referenced.to_owned(),
        ctx => format!(":{ctx}:{referenced}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(subject: &str, v: u32, id: u32) -> SchemaVersion {
        SchemaVersion {
            subject: subject.into(),
            version: v,
            id,
            schema_type: SchemaType::Avro,
            schema: format!("{{\"type\":\"record\",\"name\":\"R{id}\",\"fields\":[]}}"),
            references: vec![],
            deleted: false,
        }
    }

    fn build(order: &[(&str, u32, u32)]) -> RegistrySnapshot {
        let mut snap = RegistrySnapshot::default();
        for &(s, v, id) in order {
            snap.subjects
                .entry(s.to_owned())
                .or_insert_with(|| SubjectState::new(s))
                .versions
                .insert(v, version(s, v, id));
            snap.contexts.insert(context_of(s).to_owned());
        }
        snap
    }

    #[test]
    fn fingerprint_does_not_depend_on_insertion_order() {
        let a = build(&[("b", 1, 1), ("a", 2, 3), ("a", 1, 2), (":.x:c", 1, 1)]);
        let b = build(&[(":.x:c", 1, 1), ("a", 1, 2), ("b", 1, 1), ("a", 2, 3)]);
        assert_eq!(a.canonical_bytes(), b.canonical_bytes());
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
    }

    #[test]
    fn fingerprint_sees_every_change_but_not_the_server_version() {
        let base = build(&[("a", 1, 1)]);
        let mut other = base.clone();
        other.server_version = Some("7.5.0".into());
        assert_eq!(base.fingerprint(), other.fingerprint());

        type Change = Box<dyn Fn(&mut RegistrySnapshot)>;
        let changes: Vec<Change> = vec![
            Box::new(|s| s.global.mode = Some(Mode::Import)),
            Box::new(|s| s.global.compatibility = Some(Compatibility::None)),
            Box::new(|s| {
                s.subjects
                    .get_mut("a")
                    .unwrap()
                    .versions
                    .get_mut(&1)
                    .unwrap()
                    .deleted = true
            }),
            Box::new(|s| {
                s.subjects
                    .get_mut("a")
                    .unwrap()
                    .versions
                    .get_mut(&1)
                    .unwrap()
                    .id = 2
            }),
            Box::new(|s| {
                s.subjects
                    .get_mut("a")
                    .unwrap()
                    .versions
                    .get_mut(&1)
                    .unwrap()
                    .schema
                    .push(' ')
            }),
            Box::new(|s| s.subjects.get_mut("a").unwrap().mode = Some(Mode::ReadOnly)),
            Box::new(|s| {
                s.context_settings.insert(
                    ".x".into(),
                    ScopeSettings {
                        compatibility: Some(Compatibility::Full),
                        mode: None,
                    },
                );
            }),
        ];
        for change in changes {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(base.fingerprint(), changed.fingerprint(), "{changed:?}");
        }
    }

    #[test]
    fn contexts_split_and_references_resolve_in_the_referrer_context() {
        assert_eq!(split_context(":.ctx:orders"), (".ctx", "orders"));
        assert_eq!(split_context("orders"), (".", "orders"));
        assert_eq!(split_context(":.ctx:"), (".ctx", ""));
        assert_eq!(split_context(":notctx"), (".", ":notctx"));
        assert_eq!(
            resolve_reference_subject(":.ctx:orders", "common"),
            ":.ctx:common"
        );
        assert_eq!(
            resolve_reference_subject(":.ctx:orders", ":.other:c"),
            ":.other:c"
        );
        assert_eq!(resolve_reference_subject("orders", "common"), "common");
    }

    #[test]
    fn modes_use_the_rest_names() {
        for mode in [
            Mode::ReadWrite,
            Mode::ReadOnly,
            Mode::ReadOnlyOverride,
            Mode::Import,
            Mode::Forward,
        ] {
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
            assert_eq!(serde_json::from_str::<Mode>(&json).unwrap(), mode);
        }
    }
}
