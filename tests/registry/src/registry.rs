//! The registry state machine: subjects, versions, IDs, references, configs and modes.
//!
//! Pure and synchronous: every REST operation is one method taking plain values and
//! returning plain values or a [`RegistryError`]. The rules follow Confluent Schema
//! Registry (see the crate README for the sources of each rule).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::dialect::{Dialect, karapace_json};
use crate::error::{RegistryError, Result};
use crate::schema::{self, ResolvedRef};
use crate::types::{
    Compatibility, DEFAULT_CONTEXT, Mode, QualifiedSubject, Reference, SchemaType, VersionId,
    context_prefix,
};

/// A schema as submitted to register, look up or check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaRequest {
    /// Schema text.
    pub schema: Option<String>,
    /// `schemaType`; absent means AVRO.
    pub schema_type: Option<String>,
    /// References to other subjects' versions.
    pub references: Vec<Reference>,
    /// Explicit id (IMPORT mode only).
    pub id: Option<i32>,
    /// Explicit version (IMPORT mode only).
    pub version: Option<i32>,
}

/// The stored content of a schema: what makes two registrations "the same schema".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    /// Type.
    pub schema_type: SchemaType,
    /// Text served back.
    pub text: String,
    /// Identity key (see [`schema::Parsed::canonical`]; in the Karapace dialect the stored
    /// text of Avro and JSON Schema).
    pub canonical: String,
    /// What the schema means ([`schema::Parsed::canonical`] in every dialect): lookups
    /// match on it.
    pub meaning: String,
    /// References as given (relative to the subject's context).
    pub references: Vec<Reference>,
}

impl StoredSchema {
    fn same_content(&self, other: &StoredSchema) -> bool {
        self.schema_type == other.schema_type
            && self.canonical == other.canonical
            && self.references == other.references
    }

    fn same_meaning(&self, other: &StoredSchema) -> bool {
        self.schema_type == other.schema_type
            && self.meaning == other.meaning
            && self.references == other.references
    }
}

/// One subject version as returned by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRecord {
    /// Qualified subject name.
    pub subject: String,
    /// Version within the subject.
    pub version: i32,
    /// Schema id within the subject's context.
    pub id: i32,
    /// Content.
    pub schema: StoredSchema,
    /// Soft-deleted.
    pub deleted: bool,
}

#[derive(Debug, Clone)]
struct VersionEntry {
    id: i32,
    schema: StoredSchema,
    deleted: bool,
}

#[derive(Debug, Default)]
struct Context {
    /// Subject name within the context → version → entry.
    subjects: BTreeMap<String, BTreeMap<i32, VersionEntry>>,
    /// Highest id ever assigned or imported in this context.
    max_id: i32,
}

impl Context {
    fn id_in_use(&self, id: i32) -> bool {
        self.subjects
            .values()
            .any(|vs| vs.values().any(|e| e.id == id))
    }

    fn schema_by_id(&self, id: i32) -> Option<(&String, i32, &VersionEntry)> {
        self.subjects
            .iter()
            .flat_map(|(s, vs)| vs.iter().map(move |(v, e)| (s, *v, e)))
            .find(|(_, _, e)| e.id == id)
    }

    fn id_for_content(&self, content: &StoredSchema) -> Option<i32> {
        self.subjects
            .values()
            .flat_map(|vs| vs.values())
            .filter(|e| e.schema.same_content(content))
            .map(|e| e.id)
            .min()
    }
}

/// Which subjects a listing covers.
struct SubjectFilter {
    /// `None` means every context.
    context: Option<String>,
    prefix: String,
}

impl SubjectFilter {
    fn parse(prefix: &str) -> Self {
        if let Some(rest) = prefix.strip_prefix(":*:") {
            return Self {
                context: None,
                prefix: rest.to_string(),
            };
        }
        let q = QualifiedSubject::parse(prefix);
        Self {
            context: Some(q.context),
            prefix: q.name,
        }
    }

    fn matches(&self, context: &str, name: &str) -> bool {
        self.context.as_deref().is_none_or(|c| c == context) && name.starts_with(&self.prefix)
    }
}

/// Whether a listing includes live versions, deleted ones, or only deleted ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletedFilter {
    /// Live only.
    Live,
    /// Live and soft-deleted.
    IncludeDeleted,
    /// Soft-deleted only.
    DeletedOnly,
}

impl DeletedFilter {
    /// From the `deleted` and `deletedOnly` query flags.
    pub fn from_flags(deleted: bool, deleted_only: bool) -> Self {
        if deleted_only {
            Self::DeletedOnly
        } else if deleted {
            Self::IncludeDeleted
        } else {
            Self::Live
        }
    }

    fn includes(self, deleted: bool) -> bool {
        match self {
            Self::Live => !deleted,
            Self::IncludeDeleted => true,
            Self::DeletedOnly => deleted,
        }
    }
}

/// The in-memory registry.
#[derive(Debug)]
pub struct Registry {
    contexts: BTreeMap<String, Context>,
    /// Scope key (`""` global, `:.ctx:` context, qualified subject) → level.
    configs: HashMap<String, Compatibility>,
    /// Scope key → mode.
    modes: HashMap<String, Mode>,
    default_compatibility: Compatibility,
    dialect: Dialect,
    /// Karapace: subjects a config write made known without a version.
    config_subjects: BTreeSet<String>,
    /// Karapace: every id ever given out, with its content (never pruned).
    ids_ever: BTreeMap<i32, StoredSchema>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Confluent's rendering of a schema key in 42206 messages.
fn schema_key(subject: &str, version: i32) -> String {
    format!("{{magic=1,keytype=SCHEMA,subject={subject},version={version}}}")
}

fn scope_key(q: &QualifiedSubject) -> String {
    if q.is_default_context_scope() {
        String::new()
    } else {
        q.qualified()
    }
}

impl Registry {
    /// An empty registry: global level BACKWARD, global mode READWRITE, default context only.
    pub fn new() -> Self {
        Self::with_dialect(Dialect::Confluent)
    }

    /// An empty registry behaving like `dialect` (see [`crate::dialect`]).
    pub fn with_dialect(dialect: Dialect) -> Self {
        let mut contexts = BTreeMap::new();
        contexts.insert(DEFAULT_CONTEXT.to_string(), Context::default());
        Self {
            contexts,
            configs: HashMap::new(),
            modes: HashMap::new(),
            default_compatibility: Compatibility::Backward,
            dialect,
            config_subjects: BTreeSet::new(),
            ids_ever: BTreeMap::new(),
        }
    }

    /// The dialect this registry speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn karapace(&self) -> bool {
        self.dialect.is_karapace()
    }

    /// A subject name split into context and name; Karapace has no contexts, so there
    /// every name is a plain subject of the default context.
    fn subject_of(&self, raw: &str) -> QualifiedSubject {
        if self.karapace() {
            QualifiedSubject {
                context: DEFAULT_CONTEXT.to_string(),
                name: raw.to_string(),
            }
        } else {
            QualifiedSubject::parse(raw)
        }
    }

    /// Karapace: whether its subject table holds `q` (any version, or a config write).
    fn karapace_knows(&self, q: &QualifiedSubject) -> bool {
        self.versions(q).is_some_and(|vs| !vs.is_empty())
            || self.config_subjects.contains(&q.qualified())
    }

    fn versions(&self, q: &QualifiedSubject) -> Option<&BTreeMap<i32, VersionEntry>> {
        self.contexts.get(&q.context)?.subjects.get(&q.name)
    }

    fn has_subject(&self, q: &QualifiedSubject, include_deleted: bool) -> bool {
        self.versions(q)
            .is_some_and(|vs| vs.values().any(|e| include_deleted || !e.deleted))
    }

    fn record(q: &QualifiedSubject, version: i32, entry: &VersionEntry) -> SchemaRecord {
        SchemaRecord {
            subject: q.qualified(),
            version,
            id: entry.id,
            schema: entry.schema.clone(),
            deleted: entry.deleted,
        }
    }

    // ----- modes and configs -------------------------------------------------------------

    fn scope_chain(q: &QualifiedSubject) -> Vec<String> {
        let mut chain = Vec::new();
        if !q.is_context_only() {
            chain.push(q.qualified());
        }
        if q.context != DEFAULT_CONTEXT {
            chain.push(context_prefix(&q.context));
        }
        chain.push(String::new());
        chain
    }

    /// The mode that applies to `subject` (its own, its context's, the global one, READWRITE).
    pub fn mode_in_scope(&self, subject: &str) -> Mode {
        let q = self.subject_of(subject);
        Self::scope_chain(&q)
            .iter()
            .find_map(|k| self.modes.get(k).copied())
            .unwrap_or(Mode::ReadWrite)
    }

    /// The level that applies to `subject`.
    pub fn compatibility_in_scope(&self, subject: &str) -> Compatibility {
        let q = self.subject_of(subject);
        Self::scope_chain(&q)
            .iter()
            .find_map(|k| self.configs.get(k).copied())
            .unwrap_or(self.default_compatibility)
    }

    /// `GET /config[/{subject}]`.
    pub fn get_config(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Compatibility> {
        let q = self.subject_of(subject.unwrap_or(""));
        let key = scope_key(&q);
        if key.is_empty() {
            return Ok(self
                .configs
                .get("")
                .copied()
                .unwrap_or(self.default_compatibility));
        }
        if self.karapace() && !self.karapace_knows(&q) {
            return Err(RegistryError::SubjectNotFound(key));
        }
        match self.configs.get(&key) {
            Some(level) => Ok(*level),
            None if default_to_global => Ok(self.compatibility_in_scope(&key)),
            None => Err(RegistryError::SubjectCompatibilityNotConfigured(key)),
        }
    }

    fn check_not_read_only(&self, subject: Option<&str>) -> Result<()> {
        let name = subject.unwrap_or("");
        if self.mode_in_scope(name).is_read_only() {
            let q = self.subject_of(name);
            return Err(RegistryError::OperationNotPermitted(format!(
                "Subject {} in context {} is in read-only mode",
                subject
                    .map(|_| q.qualified())
                    .unwrap_or_else(|| "null".into()),
                context_prefix(&q.context)
            )));
        }
        Ok(())
    }

    /// `PUT /config[/{subject}]`.
    pub fn set_config(&mut self, subject: Option<&str>, level: Compatibility) -> Result<()> {
        let q = self.subject_of(subject.unwrap_or(""));
        let key = scope_key(&q);
        self.check_not_read_only((!key.is_empty()).then_some(key.as_str()))?;
        if self.karapace() && !key.is_empty() {
            self.config_subjects.insert(key.clone());
        }
        self.configs.insert(key, level);
        Ok(())
    }

    /// `DELETE /config[/{subject}]`: returns the removed level (Karapace: the global level,
    /// and the subject becomes known even when it had no level).
    pub fn delete_config(&mut self, subject: Option<&str>) -> Result<Compatibility> {
        let q = self.subject_of(subject.unwrap_or(""));
        let key = scope_key(&q);
        self.check_not_read_only((!key.is_empty()).then_some(key.as_str()))?;
        if self.karapace() && !key.is_empty() {
            self.configs.remove(&key);
            self.config_subjects.insert(key);
            return self.get_config(None, false);
        }
        if key.is_empty() {
            return Ok(self
                .configs
                .remove("")
                .unwrap_or(self.default_compatibility));
        }
        self.configs
            .remove(&key)
            .ok_or(RegistryError::SubjectNotFound(key))
    }

    /// `GET /mode[/{subject}]`.
    pub fn get_mode(&self, subject: Option<&str>, default_to_global: bool) -> Result<Mode> {
        let q = self.subject_of(subject.unwrap_or(""));
        let key = scope_key(&q);
        if key.is_empty() {
            return Ok(self.modes.get("").copied().unwrap_or(Mode::ReadWrite));
        }
        if self.karapace() {
            // no subject modes: the global one for any subject it knows
            return match self.karapace_knows(&q) {
                true => self.get_mode(None, false),
                false => Err(RegistryError::SubjectNotFound(key)),
            };
        }
        match self.modes.get(&key) {
            Some(mode) => Ok(*mode),
            None if default_to_global => Ok(self.mode_in_scope(&key)),
            None => Err(RegistryError::SubjectModeNotConfigured(key)),
        }
    }

    /// `PUT /mode[/{subject}][?force=true]`.
    ///
    /// Switching to IMPORT needs the scope to hold no live subject (unless `force`); the
    /// scope's soft-deleted versions are then removed for good, as Confluent does.
    pub fn set_mode(&mut self, subject: Option<&str>, mode: Mode, force: bool) -> Result<()> {
        let q = self.subject_of(subject.unwrap_or(""));
        let key = scope_key(&q);
        if mode == Mode::Import && self.mode_in_scope(&key) != Mode::Import && !force {
            let in_scope: Vec<QualifiedSubject> = self
                .contexts
                .iter()
                .flat_map(|(c, ctx)| {
                    ctx.subjects.keys().map(move |n| QualifiedSubject {
                        context: c.clone(),
                        name: n.clone(),
                    })
                })
                .filter(|s| {
                    if key.is_empty() {
                        true
                    } else if q.is_context_only() {
                        s.context == q.context
                    } else {
                        *s == q
                    }
                })
                .collect();
            if in_scope.iter().any(|s| self.has_subject(s, false)) {
                return Err(RegistryError::OperationNotPermitted(
                    "Cannot import since found existing subjects".into(),
                ));
            }
            for s in &in_scope {
                for version in self
                    .versions(s)
                    .map(|vs| vs.keys().copied().collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    if !self.referenced_by_ids(s, version, true).is_empty() {
                        return Err(RegistryError::ReferenceExists(schema_key(
                            &s.qualified(),
                            version,
                        )));
                    }
                }
            }
            for s in &in_scope {
                if let Some(ctx) = self.contexts.get_mut(&s.context) {
                    ctx.subjects.remove(&s.name);
                }
            }
        }
        self.modes.insert(key, mode);
        Ok(())
    }

    /// `DELETE /mode[/{subject}]`: returns the removed mode.
    pub fn delete_mode(&mut self, subject: Option<&str>) -> Result<Mode> {
        let q = self.subject_of(subject.unwrap_or(""));
        let key = scope_key(&q);
        if key.is_empty() {
            return Ok(self.modes.remove("").unwrap_or(Mode::ReadWrite));
        }
        self.modes
            .remove(&key)
            .ok_or(RegistryError::SubjectNotFound(key))
    }

    // ----- reading -----------------------------------------------------------------------

    /// `GET /contexts`.
    pub fn contexts(&self) -> Vec<String> {
        self.contexts.keys().cloned().collect()
    }

    /// `GET /subjects`: `prefix` defaults to `:*:` (every context).
    pub fn list_subjects(&self, prefix: Option<&str>, filter: DeletedFilter) -> Vec<String> {
        let f = SubjectFilter::parse(prefix.unwrap_or(":*:"));
        let mut out = Vec::new();
        for (context, ctx) in &self.contexts {
            for (name, versions) in &ctx.subjects {
                if versions.is_empty() || !f.matches(context, name) {
                    continue;
                }
                let all_deleted = versions.values().all(|e| e.deleted);
                if filter.includes(all_deleted) {
                    out.push(
                        QualifiedSubject {
                            context: context.clone(),
                            name: name.clone(),
                        }
                        .qualified(),
                    );
                }
            }
        }
        if self.karapace() && filter == DeletedFilter::IncludeDeleted {
            // its subject table: subjects a config write made known are listed too
            for s in &self.config_subjects {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
            out.sort();
        }
        out
    }

    /// `GET /subjects/{subject}/versions`.
    pub fn list_versions(&self, subject: &str, filter: DeletedFilter) -> Result<Vec<i32>> {
        let q = self.subject_of(subject);
        if !self.has_subject(&q, filter != DeletedFilter::Live) {
            return Err(RegistryError::SubjectNotFound(q.qualified()));
        }
        Ok(self
            .versions(&q)
            .map(|vs| {
                vs.iter()
                    .filter(|(_, e)| filter.includes(e.deleted))
                    .map(|(v, _)| *v)
                    .collect()
            })
            .unwrap_or_default())
    }

    fn resolve_version(
        &self,
        q: &QualifiedSubject,
        version: VersionId,
        include_deleted: bool,
    ) -> Option<(i32, &VersionEntry)> {
        let versions = self.versions(q)?;
        match version {
            VersionId::Latest => versions
                .iter()
                .rev()
                .find(|(_, e)| include_deleted || !e.deleted)
                .map(|(v, e)| (*v, e)),
            VersionId::Number(n) => versions
                .get(&n)
                .filter(|e| include_deleted || !e.deleted)
                .map(|e| (n, e)),
        }
    }

    /// `GET /subjects/{subject}/versions/{version}[?deleted=true]`.
    pub fn get_version(
        &self,
        subject: &str,
        version: VersionId,
        include_deleted: bool,
    ) -> Result<SchemaRecord> {
        let q = self.subject_of(subject);
        match self.resolve_version(&q, version, include_deleted) {
            Some((v, e)) => Ok(Self::record(&q, v, e)),
            None if !self.has_subject(&q, include_deleted) => {
                Err(RegistryError::SubjectNotFound(q.qualified()))
            }
            None => Err(RegistryError::VersionNotFound(version.as_i64())),
        }
    }

    /// Ids of schemas (in the referenced subject's context) whose references point at
    /// `subject`/`version`; with `include_deleted` false only referrers with a live version.
    fn referenced_by_ids(
        &self,
        q: &QualifiedSubject,
        version: i32,
        include_deleted: bool,
    ) -> BTreeSet<i32> {
        let mut ids = BTreeSet::new();
        for (context, ctx) in &self.contexts {
            for (name, versions) in &ctx.subjects {
                let referrer = QualifiedSubject {
                    context: context.clone(),
                    name: name.clone(),
                };
                for entry in versions.values() {
                    if !include_deleted && entry.deleted {
                        continue;
                    }
                    let points_here = entry.schema.references.iter().any(|r| {
                        let target = referrer.qualify_reference(&r.subject);
                        target == *q && self.reference_version(&target, r.version) == Some(version)
                    });
                    if points_here {
                        ids.insert(entry.id);
                    }
                }
            }
        }
        ids
    }

    fn referencing_subjects(
        &self,
        q: &QualifiedSubject,
        version: i32,
        include_deleted: bool,
    ) -> BTreeSet<String> {
        let mut subjects = BTreeSet::new();
        for (context, ctx) in &self.contexts {
            for (name, versions) in &ctx.subjects {
                let referrer = QualifiedSubject {
                    context: context.clone(),
                    name: name.clone(),
                };
                let refers = versions.values().any(|entry| {
                    (include_deleted || !entry.deleted)
                        && entry.schema.references.iter().any(|r| {
                            let target = referrer.qualify_reference(&r.subject);
                            target == *q
                                && self.reference_version(&target, r.version) == Some(version)
                        })
                });
                if refers {
                    subjects.insert(referrer.qualified());
                }
            }
        }
        subjects
    }

    fn reference_version(&self, target: &QualifiedSubject, version: i32) -> Option<i32> {
        if version == -1 {
            self.resolve_version(target, VersionId::Latest, false)
                .map(|(v, _)| v)
        } else {
            Some(version)
        }
    }

    /// `GET /subjects/{subject}/versions/{version}/referencedby`.
    pub fn referenced_by(
        &self,
        subject: &str,
        version: VersionId,
        include_deleted: bool,
    ) -> Result<Vec<i32>> {
        // Karapace resolves the version among the live ones only
        let record = self.get_version(subject, version, !self.karapace())?;
        let q = self.subject_of(subject);
        Ok(self
            .referenced_by_ids(&q, record.version, include_deleted)
            .into_iter()
            .collect())
    }

    /// `GET /schemas`: every version under the prefix (default context when absent).
    pub fn list_schemas(
        &self,
        prefix: Option<&str>,
        include_deleted: bool,
        latest_only: bool,
    ) -> Vec<SchemaRecord> {
        let f = SubjectFilter::parse(prefix.unwrap_or(""));
        let mut out = Vec::new();
        for (context, ctx) in &self.contexts {
            for (name, versions) in &ctx.subjects {
                if !f.matches(context, name) {
                    continue;
                }
                let q = QualifiedSubject {
                    context: context.clone(),
                    name: name.clone(),
                };
                let chosen: Vec<(&i32, &VersionEntry)> = if self.karapace() {
                    // Karapace's `find_schemas`: the latest version whatever its state,
                    // then `deleted=true` *drops* the soft-deleted ones
                    let all: Vec<(&i32, &VersionEntry)> = versions.iter().collect();
                    let picked: Vec<(&i32, &VersionEntry)> = if latest_only {
                        all.last().copied().into_iter().collect()
                    } else {
                        all
                    };
                    picked
                        .into_iter()
                        .filter(|(_, e)| !include_deleted || !e.deleted)
                        .collect()
                } else {
                    let visible: Vec<(&i32, &VersionEntry)> = versions
                        .iter()
                        .filter(|(_, e)| include_deleted || !e.deleted)
                        .collect();
                    if latest_only {
                        visible.last().copied().into_iter().collect()
                    } else {
                        visible
                    }
                };
                out.extend(chosen.into_iter().map(|(v, e)| Self::record(&q, *v, e)));
            }
        }
        out
    }

    /// Which context an id lookup uses: the subject's (trying every context for an
    /// unqualified subject that is not found in the default one), else the default context.
    fn id_lookup(
        &self,
        id: i32,
        subject: Option<&str>,
    ) -> Option<(QualifiedSubject, i32, &VersionEntry)> {
        let find = |context: &str,
                    prefer: Option<&str>|
         -> Option<(QualifiedSubject, i32, &VersionEntry)> {
            let ctx = self.contexts.get(context)?;
            if let Some(name) = prefer
                && let Some((v, e)) = ctx
                    .subjects
                    .get(name)
                    .and_then(|vs| vs.iter().find(|(_, e)| e.id == id))
            {
                return Some((
                    QualifiedSubject {
                        context: context.into(),
                        name: name.into(),
                    },
                    *v,
                    e,
                ));
            }
            ctx.schema_by_id(id).map(|(n, v, e)| {
                (
                    QualifiedSubject {
                        context: context.into(),
                        name: n.clone(),
                    },
                    v,
                    e,
                )
            })
        };
        match subject {
            None => find(DEFAULT_CONTEXT, None),
            Some(raw) => {
                let q = self.subject_of(raw);
                let prefer = (!q.name.is_empty()).then_some(q.name.as_str());
                if q.context != DEFAULT_CONTEXT || q.name.is_empty() {
                    return find(&q.context, prefer);
                }
                find(DEFAULT_CONTEXT, prefer).or_else(|| {
                    self.contexts
                        .keys()
                        .filter(|c| c.as_str() != DEFAULT_CONTEXT)
                        .find_map(|c| find(c, prefer).filter(|(s, _, _)| s.name == q.name))
                })
            }
        }
    }

    /// `GET /schemas/ids/{id}[?subject=]`: the content plus one subject/version holding it.
    ///
    /// Karapace never forgets an id: one whose every version was deleted for good is still
    /// found, as a record without subject (`""`) and version (0).
    pub fn schema_by_id(&self, id: i32, subject: Option<&str>) -> Result<SchemaRecord> {
        if self.karapace() {
            return match self.id_lookup(id, None) {
                Some((q, v, e)) => Ok(Self::record(&q, v, e)),
                None => self
                    .ids_ever
                    .get(&id)
                    .map(|schema| SchemaRecord {
                        subject: String::new(),
                        version: 0,
                        id,
                        schema: schema.clone(),
                        deleted: true,
                    })
                    .ok_or(RegistryError::SchemaNotFound),
            };
        }
        self.id_lookup(id, subject)
            .map(|(q, v, e)| Self::record(&q, v, e))
            .ok_or(RegistryError::SchemaIdNotFound(i64::from(id)))
    }

    /// `GET /schemas/ids/{id}/versions`: (subject, version) pairs holding the id's content.
    pub fn versions_for_id(
        &self,
        id: i32,
        subject: Option<&str>,
        include_deleted: bool,
    ) -> Result<Vec<(String, i32)>> {
        let Some((q, _, entry)) = self.id_lookup(id, subject) else {
            // Karapace lists what holds the id: nothing, for an unknown one
            return match self.karapace() {
                true => Ok(Vec::new()),
                false => Err(RegistryError::SchemaNotFound),
            };
        };
        let ctx = self
            .contexts
            .get(&q.context)
            .ok_or(RegistryError::SchemaNotFound)?;
        let mut out = Vec::new();
        for (name, versions) in &ctx.subjects {
            for (v, e) in versions {
                if e.id == id
                    && e.schema.same_content(&entry.schema)
                    && (include_deleted || !e.deleted)
                {
                    out.push((
                        QualifiedSubject {
                            context: q.context.clone(),
                            name: name.clone(),
                        }
                        .qualified(),
                        *v,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// `GET /schemas/ids/{id}/subjects`.
    pub fn subjects_for_id(
        &self,
        id: i32,
        subject: Option<&str>,
        include_deleted: bool,
    ) -> Result<Vec<String>> {
        let mut subjects: Vec<String> = Vec::new();
        for (s, _) in self.versions_for_id(id, subject, include_deleted)? {
            if !subjects.contains(&s) {
                subjects.push(s);
            }
        }
        Ok(subjects)
    }

    /// The text of `record` in the `format` a read asked for (`?format=`; Confluent
    /// `ParsedSchema.formattedString`), references resolved in the record's context.
    pub fn formatted(&self, record: &SchemaRecord, format: &str) -> Result<String> {
        if format.trim().is_empty() {
            return Ok(record.schema.text.clone());
        }
        let q = self.subject_of(&record.subject);
        let refs = self.resolve_refs(&q, &record.schema.references, record.schema.schema_type)?;
        schema::formatted(
            record.schema.schema_type,
            &record.schema.text,
            &refs,
            format,
        )
    }

    // ----- parsing helpers ---------------------------------------------------------------

    /// Resolves `refs` of a schema under `referrer`, transitively, dependencies first.
    fn resolve_refs(
        &self,
        referrer: &QualifiedSubject,
        refs: &[Reference],
        schema_type: SchemaType,
    ) -> Result<Vec<ResolvedRef>> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        self.resolve_into(referrer, refs, schema_type, &mut out, &mut seen, 0)?;
        Ok(out)
    }

    fn resolve_into(
        &self,
        referrer: &QualifiedSubject,
        refs: &[Reference],
        schema_type: SchemaType,
        out: &mut Vec<ResolvedRef>,
        seen: &mut BTreeSet<(String, i32)>,
        depth: usize,
    ) -> Result<()> {
        if depth > 64 {
            return Err(RegistryError::InvalidSchema(format!(
                "Invalid schema of type {}, details: reference chain too deep",
                schema_type.as_str()
            )));
        }
        for r in refs {
            let target = referrer.qualify_reference(&r.subject);
            let version = if r.version == -1 {
                VersionId::Latest
            } else {
                VersionId::Number(r.version)
            };
            let found = if r.version == -1 || r.version > 0 {
                self.resolve_version(&target, version, true)
            } else {
                None
            };
            let Some((v, entry)) = found else {
                return Err(RegistryError::InvalidSchema(format!(
                    "Invalid schema of type {}, details: No schema reference found for subject \"{}\" and version {}",
                    schema_type.as_str(),
                    r.subject,
                    r.version
                )));
            };
            if !seen.insert((target.qualified(), v)) {
                continue;
            }
            self.resolve_into(
                &target,
                &entry.schema.references,
                schema_type,
                out,
                seen,
                depth + 1,
            )?;
            out.push(ResolvedRef {
                name: r.name.clone(),
                schema_type: entry.schema.schema_type,
                text: entry.schema.text.clone(),
            });
        }
        Ok(())
    }

    fn parse_request(
        &self,
        q: &QualifiedSubject,
        request: &SchemaRequest,
        normalize: bool,
    ) -> Result<(StoredSchema, Vec<ResolvedRef>)> {
        let schema_type = SchemaType::parse(request.schema_type.as_deref())?;
        let text = request.schema.as_deref().unwrap_or("");
        if text.trim().is_empty() {
            return Err(RegistryError::InvalidSchema("Empty schema".into()));
        }
        let resolved = self.resolve_refs(q, &request.references, schema_type)?;
        let parsed = schema::parse(schema_type, text, &resolved, normalize)?;
        let (text, canonical, meaning) = match schema_type {
            // Karapace stores the submitted JSON re-encoded (sorted keys, compact) and
            // tells schemas apart by that text; its lookup compares parsed Avro schemas,
            // and JSON Schemas as JSON values (which the sorted text already is)
            SchemaType::Avro | SchemaType::Json if self.karapace() => {
                let value: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
                let stored = karapace_json(&value);
                let meaning = match schema_type {
                    SchemaType::Avro => parsed.canonical,
                    _ => stored.clone(),
                };
                (stored.clone(), stored, meaning)
            }
            _ => (parsed.stored, parsed.canonical.clone(), parsed.canonical),
        };
        Ok((
            StoredSchema {
                schema_type,
                text,
                canonical,
                meaning,
                references: request.references.clone(),
            },
            resolved,
        ))
    }

    fn entry_refs(&self, q: &QualifiedSubject, entry: &VersionEntry) -> Vec<ResolvedRef> {
        self.resolve_refs(q, &entry.schema.references, entry.schema.schema_type)
            .unwrap_or_default()
    }

    /// Incompatibility messages of `new` against the live versions of `q` under `level`,
    /// in Confluent's shape (details, then old version, old schema, level).
    fn compatibility_errors(
        &self,
        q: &QualifiedSubject,
        level: Compatibility,
        new: &StoredSchema,
        new_refs: &[ResolvedRef],
        only_version: Option<i32>,
    ) -> Vec<String> {
        if level == Compatibility::None {
            return Vec::new();
        }
        let Some(versions) = self.versions(q) else {
            return Vec::new();
        };
        let live: Vec<(i32, &VersionEntry)> = versions
            .iter()
            .filter(|(v, e)| !e.deleted && only_version.is_none_or(|o| o == **v))
            .map(|(v, e)| (*v, e))
            .collect();
        let targets: Vec<(i32, &VersionEntry)> = if level.is_transitive() {
            live.into_iter().rev().collect()
        } else {
            live.last().copied().into_iter().collect()
        };
        let mut out = Vec::new();
        for (version, old) in targets {
            let old_refs = self.entry_refs(q, old);
            let mut errors = Vec::new();
            if old.schema.schema_type != new.schema_type {
                errors.push(format!(
                    "{{errorType:'SCHEMA_TYPE_CHANGED', description:'The schema type changed from {} to {}'}}",
                    old.schema.schema_type.as_str(),
                    new.schema_type.as_str()
                ));
            } else {
                if level.checks_backward() {
                    for e in schema::incompatibilities(
                        new.schema_type,
                        &new.text,
                        new_refs,
                        &old.schema.text,
                        &old_refs,
                    ) {
                        errors.push(format!("{{errorType:'READER_INCOMPATIBLE', description:'The new schema cannot read data written with the old schema: {e}'}}"));
                    }
                }
                if level.checks_forward() {
                    for e in schema::incompatibilities(
                        new.schema_type,
                        &old.schema.text,
                        &old_refs,
                        &new.text,
                        new_refs,
                    ) {
                        errors.push(format!("{{errorType:'WRITER_INCOMPATIBLE', description:'The old schema cannot read data written with the new schema: {e}'}}"));
                    }
                }
            }
            if !errors.is_empty() {
                out.extend(errors);
                out.push(format!("{{oldSchemaVersion: {version}}}"));
                out.push(format!("{{oldSchema: '{}'}}", old.schema.text));
                out.push(format!("{{compatibility: '{}'}}", level.as_str()));
                break;
            }
        }
        out
    }

    // ----- writing -----------------------------------------------------------------------

    /// `POST /subjects/{subject}`: the version of `subject` holding this schema.
    pub fn lookup(
        &self,
        subject: &str,
        request: &SchemaRequest,
        normalize: bool,
        include_deleted: bool,
    ) -> Result<SchemaRecord> {
        let q = self.subject_of(subject);
        let (content, _) = self.parse_request(&q, request, normalize)?;
        let found = self.versions(&q).and_then(|vs| {
            vs.iter()
                .rev()
                .find(|(_, e)| (include_deleted || !e.deleted) && e.schema.same_meaning(&content))
        });
        match found {
            Some((v, e)) => Ok(Self::record(&q, *v, e)),
            None if !self.has_subject(&q, include_deleted) => {
                Err(RegistryError::SubjectNotFound(q.qualified()))
            }
            None => Err(RegistryError::SchemaNotFound),
        }
    }

    /// `POST /compatibility/subjects/{subject}/versions[/{version}]`: incompatibility
    /// messages (empty = compatible). `version` `None` checks as a registration would.
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: Option<VersionId>,
        request: &SchemaRequest,
        normalize: bool,
    ) -> Result<Vec<String>> {
        let q = self.subject_of(subject);
        let only = match version {
            None => None,
            Some(v) => match self.resolve_version(&q, v, false) {
                Some((n, _)) => Some(n),
                // Karapace: 40402 for any version it cannot find, `latest` included
                None if v == VersionId::Latest && !self.karapace() => {
                    return self
                        .parse_request(&q, request, normalize)
                        .map(|_| Vec::new());
                }
                None => return Err(RegistryError::VersionNotFound(v.as_i64())),
            },
        };
        let (content, refs) = self.parse_request(&q, request, normalize)?;
        let level = self.compatibility_in_scope(&q.qualified());
        let level = match (version, level) {
            // A check against one named version compares with exactly that version.
            (Some(_), l) if l.is_transitive() => match l {
                Compatibility::BackwardTransitive => Compatibility::Backward,
                Compatibility::ForwardTransitive => Compatibility::Forward,
                _ => Compatibility::Full,
            },
            (_, l) => l,
        };
        Ok(self.compatibility_errors(&q, level, &content, &refs, only))
    }

    fn context_label(q: &QualifiedSubject) -> String {
        context_prefix(&q.context)
    }

    /// `POST /subjects/{subject}/versions`: registers (or finds) the schema.
    pub fn register(
        &mut self,
        subject: &str,
        request: &SchemaRequest,
        normalize: bool,
    ) -> Result<SchemaRecord> {
        let q = self.subject_of(subject);
        let qualified = q.qualified();
        if q.name.is_empty() {
            return Err(RegistryError::InvalidSubject(subject.to_string()));
        }
        let mode = self.mode_in_scope(&qualified);
        let requested_id = request.id.filter(|id| *id >= 0);
        let requested_version = request.version.filter(|v| *v > 0);
        let (content, refs) = self.parse_request(&q, request, normalize)?;

        // Already registered under this subject: return it, even in READONLY (as Confluent does).
        if let Some(vs) = self.versions(&q)
            && let Some((v, e)) = vs
                .iter()
                .rev()
                .find(|(_, e)| !e.deleted && e.schema.same_content(&content))
        {
            let same_id = requested_id.is_none_or(|id| id == e.id);
            if requested_version.is_none() && same_id {
                return Ok(Self::record(&q, *v, e));
            }
            if requested_version == Some(*v) && requested_id == Some(e.id) {
                return Ok(Self::record(&q, *v, e));
            }
        }

        let context = Self::context_label(&q);
        if mode.is_read_only() {
            return Err(RegistryError::OperationNotPermitted(format!(
                "Subject {qualified} in context {context} is in read-only mode"
            )));
        }
        match (requested_id, mode) {
            (Some(_), m) if m != Mode::Import => {
                return Err(RegistryError::OperationNotPermitted(format!(
                    "Subject {qualified} in context {context} is not in import mode"
                )));
            }
            (None, m) if m != Mode::ReadWrite => {
                return Err(RegistryError::OperationNotPermitted(format!(
                    "Subject {qualified} in context {context} is not in read-write mode"
                )));
            }
            _ => {}
        }

        let ctx = self.contexts.get(&q.context);
        let existing_id = if self.karapace() {
            // Karapace finds the content among every id it ever gave out
            self.ids_ever
                .iter()
                .find(|(_, schema)| schema.same_content(&content))
                .map(|(id, _)| *id)
        } else {
            ctx.and_then(|c| c.id_for_content(&content))
        };
        let mut schema_id = requested_id;
        if let Some(eid) = existing_id
            && requested_id.is_none_or(|id| id == eid)
        {
            schema_id = Some(eid);
        }

        if mode != Mode::Import {
            let level = self.compatibility_in_scope(&qualified);
            let errors = self.compatibility_errors(&q, level, &content, &refs, None);
            if !errors.is_empty() {
                return Err(RegistryError::Incompatible {
                    subject: qualified,
                    details: errors,
                });
            }
        }

        let versions = self.versions(&q);
        let next_version = versions
            .and_then(|vs| vs.keys().next_back().copied())
            .unwrap_or(0)
            + 1;
        let version = match requested_version {
            None => next_version,
            Some(v) if mode == Mode::Import => v,
            Some(v) if v == next_version => v,
            Some(_) => {
                return Err(RegistryError::InvalidSchema(
                    "Version is not one more than previous version".into(),
                ));
            }
        };

        let ctx = self.contexts.entry(q.context.clone()).or_default();
        let id = match schema_id {
            Some(id) => {
                if let Some((_, _, holder)) = ctx.schema_by_id(id)
                    && !holder.schema.same_content(&content)
                {
                    return Err(RegistryError::OperationNotPermitted(format!(
                        "Overwrite new schema with id {id} in context {context} is not permitted."
                    )));
                }
                id
            }
            None => {
                let mut candidate = ctx.max_id + 1;
                while ctx.id_in_use(candidate) {
                    candidate += 1;
                }
                candidate
            }
        };
        ctx.max_id = ctx.max_id.max(id);

        // Older soft-deleted versions with the same id are dropped for good unless referenced
        // (not by Karapace, which keeps them).
        let stale: Vec<i32> = ctx
            .subjects
            .get(&q.name)
            .filter(|_| !self.dialect.is_karapace())
            .map(|vs| {
                vs.iter()
                    .filter(|(v, e)| e.deleted && e.id == id && **v < version)
                    .map(|(v, _)| *v)
                    .collect()
            })
            .unwrap_or_default();
        let stale: Vec<i32> = stale
            .into_iter()
            .filter(|v| self.referenced_by_ids(&q, *v, true).is_empty())
            .collect();
        if self.karapace() {
            self.ids_ever.entry(id).or_insert_with(|| content.clone());
        }
        let ctx = self.contexts.entry(q.context.clone()).or_default();
        let versions = ctx.subjects.entry(q.name.clone()).or_default();
        for v in stale {
            versions.remove(&v);
        }
        let entry = VersionEntry {
            id,
            schema: content,
            deleted: false,
        };
        let record = Self::record(&q, version, &entry);
        versions.insert(version, entry);
        Ok(record)
    }

    /// `DELETE /subjects/{subject}/versions/{version}[?permanent=true]`.
    pub fn delete_version(
        &mut self,
        subject: &str,
        version: VersionId,
        permanent: bool,
    ) -> Result<i32> {
        let q = self.subject_of(subject);
        let qualified = q.qualified();
        if let VersionId::Number(n) = version
            && !permanent
            && self
                .versions(&q)
                .and_then(|vs| vs.get(&n))
                .is_some_and(|e| e.deleted)
        {
            return Err(RegistryError::VersionSoftDeleted(qualified, i64::from(n)));
        }
        let resolved = self
            .resolve_version(&q, version, false)
            .or_else(|| {
                if permanent {
                    self.resolve_version(&q, version, true)
                } else {
                    None
                }
            })
            .map(|(v, e)| (v, e.deleted));
        let Some((v, deleted)) = resolved else {
            return Err(if self.has_subject(&q, true) {
                RegistryError::VersionNotFound(version.as_i64())
            } else {
                RegistryError::SubjectNotFound(qualified)
            });
        };
        self.check_not_read_only(Some(&qualified))?;
        if !self.referenced_by_ids(&q, v, permanent).is_empty() {
            return Err(RegistryError::ReferenceExists(schema_key(&qualified, v)));
        }
        if permanent && !deleted {
            return Err(RegistryError::VersionNotSoftDeleted(
                qualified,
                i64::from(v),
            ));
        }
        let ctx = self.contexts.entry(q.context.clone()).or_default();
        let versions = ctx.subjects.entry(q.name.clone()).or_default();
        if permanent {
            versions.remove(&v);
            if versions.is_empty() {
                ctx.subjects.remove(&q.name);
                self.modes.remove(&qualified);
                self.configs.remove(&qualified);
                self.config_subjects.remove(&qualified);
            }
        } else if let Some(e) = versions.get_mut(&v) {
            e.deleted = true;
        }
        Ok(v)
    }

    /// `DELETE /subjects/{subject}[?permanent=true]`: the versions deleted.
    pub fn delete_subject(&mut self, subject: &str, permanent: bool) -> Result<Vec<i32>> {
        let q = self.subject_of(subject);
        let qualified = q.qualified();
        if !self.has_subject(&q, true) {
            return Err(RegistryError::SubjectNotFound(qualified));
        }
        if !permanent && !self.has_subject(&q, false) {
            return Err(RegistryError::SubjectSoftDeleted(qualified));
        }
        self.check_not_read_only(Some(&qualified))?;
        let targets: Vec<(i32, bool)> = self
            .versions(&q)
            .map(|vs| {
                vs.iter()
                    .filter(|(_, e)| permanent || !e.deleted)
                    .map(|(v, e)| (*v, e.deleted))
                    .collect()
            })
            .unwrap_or_default();
        for (v, deleted) in &targets {
            let mut referrers = self.referencing_subjects(&q, *v, permanent);
            referrers.remove(&qualified);
            if !referrers.is_empty() {
                return Err(RegistryError::ReferenceExists(schema_key(&qualified, *v)));
            }
            if permanent && !deleted {
                return Err(RegistryError::SubjectNotSoftDeleted(qualified));
            }
        }
        let ctx = self.contexts.entry(q.context.clone()).or_default();
        if permanent {
            ctx.subjects.remove(&q.name);
            self.modes.remove(&qualified);
            self.configs.remove(&qualified);
            self.config_subjects.remove(&qualified);
        } else if let Some(vs) = ctx.subjects.get_mut(&q.name) {
            vs.values_mut().for_each(|e| e.deleted = true);
        }
        Ok(targets.into_iter().map(|(v, _)| v).collect())
    }
}

#[cfg(test)]
mod tests;
