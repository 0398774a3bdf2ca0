//! Steps 4 to 6 of the planner: target versions and IDs of the
//! registrations, then the flat, ordered list of steps.
//!
//! [`build`] first decides every registration (`decide_registrations`: its
//! target version, its references in target terms, its ID), checks the IDs
//! records keep (`check_kept_ids`) and makes the ID map (`map_ids`). Then
//! it lays the steps out in phases over one `Build`, each step after the
//! steps it depends on; each phase's doc comment says what it guarantees:
//! 1. `set_temporary_settings`: per subject that is written to, a temporary
//!    mode (IMPORT for forced or pinned IDs, READWRITE when the target's
//!    mode would refuse writes) and a temporary level `NONE`, so that the
//!    backup's history cannot be rejected;
//! 2. `delete_target_versions`: deletions (`overwrite`), referrers before
//!    what they reference, each soft then hard; a subject deleted for good
//!    loses its own level and mode, so its temporary level is set again
//!    after it;
//! 3. `register_versions`: registrations, references first, then each
//!    subject's versions in order, ties by target subject and version; a
//!    subject that mixes pinned and unpinned IDs switches mode between them;
//! 4. `soft_delete_versions`: versions soft-deleted in the backup are
//!    registered for their ID, then soft-deleted again;
//! 5. `put_back_subject_settings`: per subject, the final level then the
//!    final mode: the backup's (or `set_compatibility`), or the target's
//!    previous one when only a temporary value was set. An IMPORT or
//!    READONLY mode is therefore always the last write to its subject;
//! 6. `restore_global_settings`: with `restore_global_settings`, the global
//!    and per-context level and mode.
//!
//! Steps are made only by the constructors of `Steps`, one per kind of step.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::diff::{Decision, Decisions};
use super::ids::{IdHow, IdMapEntry, TargetId};
use super::select::{Key, RefTo, Selection, SubjectInfo};
use super::{
    Action, Conflict, ConflictKind, PlanError, PlanOptions, Request, RequestBody, SourceVersion,
    Step, StepKind, SubjectOutcome, SubjectSummary, Totals,
};
use crate::canonical::ContentKey;
use crate::config::{Compatibility, Strategy};
use crate::graph::DependencyGraph;
use crate::model::{
    DEFAULT_CONTEXT, Mode, Reference, RegistrySnapshot, SchemaType, SchemaVersion, ScopeSettings,
    SubjectState, compatibility_name, context_of, resolve_reference_subject, schema_type_name,
    split_context,
};

/// What [`build`] hands back to [`super::plan`].
#[derive(Debug, Clone)]
pub struct Built {
    /// Totals line.
    pub totals: Totals,
    /// All conflicts, sorted.
    pub conflicts: Vec<Conflict>,
    /// Ordered steps.
    pub steps: Vec<Step>,
    /// Per subject summary.
    pub subjects: Vec<SubjectSummary>,
    /// The ID map.
    pub id_mapping: BTreeMap<String, BTreeMap<u32, IdMapEntry>>,
}

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn seg(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// A registration, decided.
#[derive(Debug, Clone)]
struct Registration {
    key: Key,
    target_version: u32,
    /// `id` sent in IMPORT mode.
    import_id: Option<u32>,
    target_id: TargetId,
    how: IdHow,
    references: Vec<Reference>,
    replace: bool,
    reason: String,
}

/// A setting as it applies to `subject` in the target: its own, else its
/// context's, else the global one.
fn effective<T>(
    target: &RegistrySnapshot,
    subject: &str,
    of_subject: impl Fn(&crate::model::SubjectState) -> Option<T>,
    of_scope: impl Fn(&crate::model::ScopeSettings) -> Option<T>,
) -> Option<T> {
    target
        .subjects
        .get(subject)
        .and_then(&of_subject)
        .or_else(|| {
            target
                .context_settings
                .get(context_of(subject))
                .and_then(&of_scope)
        })
        .or_else(|| of_scope(&target.global))
}

fn effective_mode(target: &RegistrySnapshot, subject: &str) -> Mode {
    effective(target, subject, |s| s.mode, |c| c.mode).unwrap_or(Mode::ReadWrite)
}

/// The level a subject gets from its context or the global scope (after
/// its own is deleted).
fn scope_compat(target: &RegistrySnapshot, subject: &str) -> Compatibility {
    target
        .context_settings
        .get(context_of(subject))
        .and_then(|c| c.compatibility)
        .or(target.global.compatibility)
        .unwrap_or(Compatibility::Backward)
}

/// The mode a subject gets from its context or the global scope.
fn scope_mode(target: &RegistrySnapshot, subject: &str) -> Mode {
    target
        .context_settings
        .get(context_of(subject))
        .and_then(|c| c.mode)
        .or(target.global.mode)
        .unwrap_or(Mode::ReadWrite)
}

fn effective_compat(target: &RegistrySnapshot, subject: &str) -> Compatibility {
    effective(target, subject, |s| s.compatibility, |c| c.compatibility)
        .unwrap_or(Compatibility::Backward)
}

/// How a reference to `subject` is written from `referrer` in the target.
fn reference_subject(referrer: &str, subject: &str) -> String {
    let (ctx, name) = split_context(subject);
    if ctx == context_of(referrer) {
        name.to_owned()
    } else {
        format!(":{ctx}:{name}")
    }
}

fn show_compat(c: Option<Compatibility>) -> String {
    c.map_or_else(
        || "(not set)".to_owned(),
        |c| compatibility_name(c).to_owned(),
    )
}

fn show_mode(m: Option<Mode>) -> String {
    m.map_or_else(|| "(not set)".to_owned(), |m| m.as_str().to_owned())
}

/// Where a setting applies: one subject, one context, or the whole registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At<'s> {
    Subject(&'s str),
    Context(&'s str),
    Global,
}

impl At<'_> {
    /// The scope's end of a `/config` or `/mode` path: `/orders-value`,
    /// `/%3A.ctx%3A`, or nothing for the global scope.
    fn path(self) -> String {
        match self {
            At::Subject(s) => format!("/{}", seg(s)),
            At::Context(c) => format!("/{}", seg(&format!(":{c}:"))),
            At::Global => String::new(),
        }
    }

    fn subject(self) -> Option<String> {
        match self {
            At::Subject(s) => Some(s.to_owned()),
            At::Context(_) | At::Global => None,
        }
    }

    fn context(self) -> Option<String> {
        match self {
            At::Context(c) => Some(c.to_owned()),
            At::Subject(_) | At::Global => None,
        }
    }
}

/// A step with no id yet, no subject, version or source; the constructors
/// of [`Steps`] fill in what their kind of step has.
fn new_step(
    kind: StepKind,
    action: Action,
    request: Request,
    depends_on: Vec<u32>,
    reason: String,
) -> Step {
    Step {
        id: 0,
        kind,
        action,
        subject: None,
        context: None,
        version: None,
        source: None,
        request,
        depends_on,
        reason,
    }
}

fn request(method: &str, path: String, body: Option<RequestBody>) -> Request {
    Request {
        method: method.to_owned(),
        path,
        body,
    }
}

fn mode_body(mode: Mode) -> Option<RequestBody> {
    Some(RequestBody {
        mode: Some(mode),
        ..Default::default()
    })
}

fn compatibility_body(level: Compatibility) -> Option<RequestBody> {
    Some(RequestBody {
        compatibility: Some(level),
        ..Default::default()
    })
}

fn force_query(force: bool) -> &'static str {
    if force { "?force=true" } else { "" }
}

/// The steps so far, in run order. Steps are only made by the constructors
/// below, one per kind of step: they alone build the requests.
#[derive(Default)]
struct Steps {
    list: Vec<Step>,
    by_subject: BTreeMap<String, Vec<u32>>,
}

impl Steps {
    /// Adds `step` as the next one (its id is its position, from 1), its
    /// dependencies sorted and without duplicates.
    fn push(&mut self, mut step: Step) -> u32 {
        let id = self.list.len() as u32 + 1;
        step.id = id;
        step.depends_on.sort_unstable();
        step.depends_on.dedup();
        if let Some(s) = &step.subject {
            self.by_subject.entry(s.clone()).or_default().push(id);
        }
        self.list.push(step);
        id
    }

    /// [`StepKind::SetMode`]: a temporary `mode` on `subject`.
    fn set_mode(
        &mut self,
        subject: &str,
        mode: Mode,
        force: bool,
        depends_on: Vec<u32>,
        reason: String,
    ) -> u32 {
        let path = format!("/mode/{}{}", seg(subject), force_query(force));
        self.push(Step {
            subject: Some(subject.to_owned()),
            ..new_step(
                StepKind::SetMode,
                Action::Update,
                request("PUT", path, mode_body(mode)),
                depends_on,
                reason,
            )
        })
    }

    /// [`StepKind::SetCompatibility`]: the temporary level `NONE` on
    /// `subject` (now `from`), so that the backup's history is not rejected;
    /// `why` comes first in the reason.
    fn temporary_none(
        &mut self,
        subject: &str,
        from: Compatibility,
        depends_on: Vec<u32>,
        why: &str,
    ) -> u32 {
        let path = format!("/config/{}", seg(subject));
        self.push(Step {
            subject: Some(subject.to_owned()),
            ..new_step(
                StepKind::SetCompatibility,
                Action::Update,
                request("PUT", path, compatibility_body(Compatibility::None)),
                depends_on,
                format!(
                    "~ set compatibility {subject} {} -> NONE: {why}the backup's history must not be rejected (temporary, put back at the end)",
                    compatibility_name(from)
                ),
            )
        })
    }

    /// [`StepKind::Register`]: `reg`, the backed-up `version` under its target
    /// subject, version and (in IMPORT mode) ID.
    fn register(
        &mut self,
        reg: &Registration,
        version: &SchemaVersion,
        depends_on: Vec<u32>,
        reason: String,
    ) -> u32 {
        let subject = reg.key.target.as_str();
        let body = RequestBody {
            schema: Some(version.schema.clone()),
            schema_type: (version.schema_type != SchemaType::Avro)
                .then(|| schema_type_name(version.schema_type).to_owned()),
            references: reg.references.clone(),
            id: reg.import_id,
            version: reg.import_id.map(|_| reg.target_version),
            ..Default::default()
        };
        let action = if reg.replace {
            Action::Replace
        } else {
            Action::Create
        };
        self.push(Step {
            subject: Some(subject.to_owned()),
            version: Some(reg.target_version),
            source: Some(SourceVersion {
                subject: reg.key.source.clone(),
                version: reg.key.version,
                id: version.id,
            }),
            ..new_step(
                StepKind::Register,
                action,
                request(
                    "POST",
                    format!("/subjects/{}/versions", seg(subject)),
                    Some(body),
                ),
                depends_on,
                reason,
            )
        })
    }

    /// [`StepKind::DeleteVersion`]: `subject` `version`, soft or `permanent`.
    fn delete_version(
        &mut self,
        action: Action,
        subject: &str,
        version: u32,
        permanent: bool,
        depends_on: Vec<u32>,
        reason: String,
    ) -> u32 {
        let path = format!(
            "/subjects/{}/versions/{version}{}",
            seg(subject),
            permanent_query(permanent)
        );
        self.push(Step {
            subject: Some(subject.to_owned()),
            version: Some(version),
            ..new_step(
                StepKind::DeleteVersion,
                action,
                request("DELETE", path, None),
                depends_on,
                reason,
            )
        })
    }

    /// [`StepKind::DeleteSubject`]: all of `subject`, soft or `permanent`.
    fn delete_subject(
        &mut self,
        action: Action,
        subject: &str,
        permanent: bool,
        depends_on: Vec<u32>,
        reason: String,
    ) -> u32 {
        let path = format!("/subjects/{}{}", seg(subject), permanent_query(permanent));
        self.push(Step {
            subject: Some(subject.to_owned()),
            ..new_step(
                StepKind::DeleteSubject,
                action,
                request("DELETE", path, None),
                depends_on,
                reason,
            )
        })
    }

    /// [`StepKind::RestoreCompatibility`]: the final `level` of a scope;
    /// `None` removes the scope's own level.
    fn restore_compatibility(
        &mut self,
        at: At<'_>,
        level: Option<Compatibility>,
        depends_on: Vec<u32>,
        reason: String,
    ) -> u32 {
        let path = format!("/config{}", at.path());
        let request = match level {
            Some(c) => request("PUT", path, compatibility_body(c)),
            None => request("DELETE", path, None),
        };
        self.push(Step {
            subject: at.subject(),
            context: at.context(),
            ..new_step(
                StepKind::RestoreCompatibility,
                Action::Update,
                request,
                depends_on,
                reason,
            )
        })
    }

    /// [`StepKind::RestoreMode`]: the final `mode` of a scope; `None` removes
    /// the scope's own mode.
    fn restore_mode(
        &mut self,
        at: At<'_>,
        mode: Option<Mode>,
        force: bool,
        depends_on: Vec<u32>,
        reason: String,
    ) -> u32 {
        let path = format!("/mode{}{}", at.path(), force_query(force));
        let request = match mode {
            Some(m) => request("PUT", path, mode_body(m)),
            None => request("DELETE", path, None),
        };
        self.push(Step {
            subject: at.subject(),
            context: at.context(),
            ..new_step(
                StepKind::RestoreMode,
                Action::Update,
                request,
                depends_on,
                reason,
            )
        })
    }

    /// [`StepKind::DeleteSubject`] or [`StepKind::DeleteVersion`]: the soft
    /// or `permanent` delete of `unit`.
    fn delete(
        &mut self,
        unit: &Unit<'_>,
        action: Action,
        permanent: bool,
        depends_on: Vec<u32>,
        reason: String,
    ) -> u32 {
        match *unit {
            Unit::Subject(s) => self.delete_subject(action, s, permanent, depends_on, reason),
            Unit::Version(s, n) => self.delete_version(action, s, n, permanent, depends_on, reason),
        }
    }

    /// The steps on `subject` so far.
    fn of(&self, subject: &str) -> Vec<u32> {
        self.by_subject.get(subject).cloned().unwrap_or_default()
    }
}

/// What one delete removes from the target: a whole subject (when every
/// version of it goes) or one version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Unit<'a> {
    Subject(&'a str),
    Version(&'a str, u32),
}

fn permanent_query(permanent: bool) -> &'static str {
    if permanent { "?permanent=true" } else { "" }
}

/// The planner's inputs, as every part of this module reads them.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    selection: &'a Selection<'a>,
    decisions: &'a Decisions,
    backup: &'a RegistrySnapshot,
    target: &'a RegistrySnapshot,
    options: &'a PlanOptions,
}

impl<'a> Inputs<'a> {
    /// Whether the plan deletes target `subject` `version` for good.
    fn deleted_for_good(&self, subject: &str, version: u32) -> bool {
        self.decisions
            .deletions
            .get(subject)
            .is_some_and(|d| d.contains_key(&version))
    }

    /// The delete that removes target `subject` `version`, if the plan
    /// deletes it: the whole subject when all its versions go.
    fn delete_unit(&self, subject: &str, version: u32) -> Option<Unit<'a>> {
        let (name, versions) = self.decisions.deletions.get_key_value(subject)?;
        if !versions.contains_key(&version) {
            return None;
        }
        let all = self.target.subjects[subject]
            .versions
            .keys()
            .all(|v| versions.contains_key(v));
        Some(if all {
            Unit::Subject(name)
        } else {
            Unit::Version(name, version)
        })
    }
}

/// Per target version, the target versions that reference it.
type Referrers = BTreeMap<(String, u32), Vec<(String, u32)>>;

/// Lookups over the target's versions (looked up only, never iterated, so
/// the hash maps' order never shows in a plan).
struct TargetIndex<'a> {
    /// Per target context and content, the lowest ID a version that stays
    /// holds it under.
    content_ids: HashMap<(String, &'a ContentKey), u32>,
    /// Per target context and ID, the target versions holding it.
    id_holders: HashMap<(String, u32), Vec<(&'a str, u32)>>,
    /// Per target version, the target versions that reference it.
    referrers: Referrers,
}

impl<'a> TargetIndex<'a> {
    fn new(inputs: Inputs<'a>) -> Self {
        let Inputs {
            target, decisions, ..
        } = inputs;
        let mut index = TargetIndex {
            content_ids: HashMap::new(),
            id_holders: HashMap::new(),
            referrers: BTreeMap::new(),
        };
        for subject in target.subjects.values() {
            let ctx = context_of(&subject.name).to_owned();
            for v in subject.versions.values() {
                let ck = &decisions.target_keys[&(subject.name.clone(), v.version)];
                index
                    .id_holders
                    .entry((ctx.clone(), v.id))
                    .or_default()
                    .push((subject.name.as_str(), v.version));
                if !inputs.deleted_for_good(&subject.name, v.version) {
                    index
                        .content_ids
                        .entry((ctx.clone(), ck))
                        .and_modify(|id| *id = (*id).min(v.id))
                        .or_insert(v.id);
                }
                for r in &v.references {
                    let to = resolve_reference_subject(&subject.name, &r.subject);
                    let version = if r.version >= 1 {
                        r.version as u32
                    } else {
                        target
                            .subjects
                            .get(&to)
                            .and_then(|s| s.latest_live())
                            .map_or(0, |l| l.version)
                    };
                    index
                        .referrers
                        .entry((to, version))
                        .or_default()
                        .push((subject.name.clone(), v.version));
                }
            }
        }
        index
    }
}

/// The pass that decides each registration's target version and ID,
/// visiting them in registration order (a registration's references are
/// decided before it).
struct RegistrationPass<'a, 'p> {
    inputs: Inputs<'a>,
    index: &'p TargetIndex<'a>,
    conflicts: &'p mut Vec<Conflict>,
    /// The registrations decided so far.
    registrations: BTreeMap<Key, Registration>,
    /// Per target subject, the version numbers taken: the target's (but
    /// the ones deleted for good) and the registrations' so far.
    used_versions: BTreeMap<String, BTreeSet<u32>>,
    /// Per target context and content, the ID its first registration gets.
    planned_content: HashMap<(String, ContentKey), (TargetId, IdHow)>,
    /// Per target context and ID sent in IMPORT mode, the content and the
    /// version first registered under it.
    planned_ids: HashMap<(String, u32), (ContentKey, Key)>,
}

/// Decides the target version and ID of every registration.
///
/// An ID is the source one with `force_ids`, the pinned one from
/// `id_mapping_file`, the ID the target (or an earlier registration in the
/// same context) already gives the same content, or else one the registry
/// assigns. A forced or pinned ID held by other content is an
/// [`ConflictKind::IdTaken`] conflict; two contents forced onto one ID are an
/// [`ConflictKind::IdClash`]; a reference to a version that stays different
/// in the target is a [`ConflictKind::ReferenceDiverged`].
fn decide_registrations(
    inputs: Inputs<'_>,
    index: &TargetIndex<'_>,
    conflicts: &mut Vec<Conflict>,
) -> BTreeMap<Key, Registration> {
    let mut pass = RegistrationPass {
        inputs,
        index,
        conflicts,
        registrations: BTreeMap::new(),
        used_versions: BTreeMap::new(),
        planned_content: HashMap::new(),
        planned_ids: HashMap::new(),
    };
    for key in &inputs.selection.order {
        if let Some(Decision::Register { replace, reason }) = inputs.decisions.by_node.get(key) {
            pass.decide(key, *replace, reason);
        }
    }
    pass.registrations
}

impl RegistrationPass<'_, '_> {
    /// Decides `key`'s registration (the versions it references are
    /// decided already).
    fn decide(&mut self, key: &Key, replace: bool, reason: &str) {
        let tctx = context_of(&key.target).to_owned();
        let (references, ck) = self.target_content(key);
        let (target_id, how, import_id) = self.choose_id(key, &tctx, &ck);
        if let Some(id) = import_id {
            self.check_import_id(key, id, how, &tctx, &ck);
        }
        self.planned_content
            .entry((tctx, ck))
            .or_insert((target_id, how));
        let target_version = self.target_version(key, import_id.is_some());
        self.registrations.insert(
            key.clone(),
            Registration {
                key: key.clone(),
                target_version,
                import_id,
                target_id,
                how,
                references,
                replace,
                reason: reason.to_owned(),
            },
        );
    }

    /// The version's references in target terms (renamed, and pointing to
    /// the target versions that will hold them), and its content key with
    /// those references.
    fn target_content(&mut self, key: &Key) -> (Vec<Reference>, ContentKey) {
        let node = &self.inputs.selection.nodes[key];
        let mut ck_refs = Vec::with_capacity(node.refs.len());
        let mut references = Vec::with_capacity(node.refs.len());
        for r in &node.refs {
            let (subject, version) = match &r.to {
                RefTo::Node(to) => (to.target.clone(), self.referenced_version(key, to)),
                RefTo::External {
                    subject, version, ..
                } => (subject.clone(), *version),
            };
            ck_refs.push((r.name.clone(), subject.clone(), i64::from(version)));
            references.push(Reference {
                name: r.name.clone(),
                subject: reference_subject(&key.target, &subject),
                version: version as i32,
            });
        }
        let ck = ContentKey {
            schema_type: node.version.schema_type,
            canonical: self.inputs.decisions.canonical[key].clone(),
            references: ck_refs,
        };
        (references, ck)
    }

    /// The target version that will hold the restored version `to`, which
    /// `key` references: its registration's, or the target's version that
    /// already holds it. When the target's stays different, the reference
    /// would point to other content: a conflict.
    fn referenced_version(&mut self, key: &Key, to: &Key) -> u32 {
        let decision = self.inputs.decisions.by_node.get(to);
        match (decision, self.registrations.get(to)) {
            (_, Some(reg)) => reg.target_version,
            (Some(d), None) => match d.kept_target() {
                Some((tv, _)) => tv,
                None => {
                    self.conflicts.push(Conflict {
                        kind: ConflictKind::ReferenceDiverged,
                        subject: Some(key.target.clone()),
                        version: Some(key.version),
                        id: None,
                        message: format!(
                            "`{key}` references `{to}`, which stays different in the target"
                        ),
                        details: vec![format!(
                            "registering `{}` would point it to the target's `{}` v{}",
                            key.target, to.target, to.version
                        )],
                        hint: "settle the referenced version's conflict first (or restore with `strategy: overwrite`)".to_owned(),
                    });
                    to.version
                }
            },
            (None, None) => to.version,
        }
    }

    /// The registration's target ID, how it is chosen, and the ID sent in
    /// IMPORT mode (forced or pinned IDs only).
    fn choose_id(&self, key: &Key, tctx: &str, ck: &ContentKey) -> (TargetId, IdHow, Option<u32>) {
        let options = self.inputs.options;
        let source_id = self.inputs.selection.nodes[key].version.id;
        let pinned = options
            .pinned_ids
            .get(context_of(&key.source))
            .and_then(|m| m.get(&source_id))
            .copied();
        if options.force_ids {
            (TargetId::Known(source_id), IdHow::Forced, Some(source_id))
        } else if let Some(p) = pinned {
            (TargetId::Known(p), IdHow::Pinned, Some(p))
        } else if let Some(&id) = self.index.content_ids.get(&(tctx.to_owned(), ck)) {
            (TargetId::Known(id), IdHow::Existing, None)
        } else if let Some(&(id, how)) = self.planned_content.get(&(tctx.to_owned(), ck.clone())) {
            (id, how, None)
        } else {
            (TargetId::AfterApply, IdHow::Assigned, None)
        }
    }

    /// Conflicts of an ID sent in IMPORT mode: held in the target by other
    /// content, or sent earlier in this plan with other content.
    fn check_import_id(&mut self, key: &Key, id: u32, how: IdHow, tctx: &str, ck: &ContentKey) {
        let source_id = self.inputs.selection.nodes[key].version.id;
        let target_keys = &self.inputs.decisions.target_keys;
        let what = if how == IdHow::Forced {
            "`force_ids` keeps source ID"
        } else {
            "`id_mapping_file` pins ID"
        };
        let holders: Vec<String> = self
            .index
            .id_holders
            .get(&(tctx.to_owned(), id))
            .into_iter()
            .flatten()
            .filter(|(s, v)| target_keys[&((*s).to_owned(), *v)] != *ck)
            .map(|(s, v)| format!("target `{s}` v{v} holds id {id} with other content"))
            .collect();
        if !holders.is_empty() {
            self.conflicts.push(Conflict {
                kind: ConflictKind::IdTaken,
                subject: Some(key.target.clone()),
                version: Some(key.version),
                id: Some(id),
                message: format!(
                    "{what} {id} for `{key}`, but the target's context `{tctx}` holds {id} with another schema"
                ),
                details: holders,
                hint: if how == IdHow::Forced {
                    "restore into an empty registry (or context), or drop `force_ids` and let `rewrite_ids` move the records".to_owned()
                } else {
                    format!("pin source ID {source_id} to a free target ID in `id_mapping_file`")
                },
            });
        }
        match self.planned_ids.get(&(tctx.to_owned(), id)) {
            Some((other, first)) if other != ck => self.conflicts.push(Conflict {
                kind: ConflictKind::IdClash,
                subject: Some(key.target.clone()),
                version: Some(key.version),
                id: Some(id),
                message: format!(
                    "`{first}` and `{key}` would both be registered as id {id} in context `{tctx}`, with different schemas"
                ),
                details: Vec::new(),
                hint: "give one of them another target ID (`id_mapping_file`), or restore the contexts apart (`context_mapping`)".to_owned(),
            }),
            Some(_) => {}
            None => {
                self.planned_ids
                    .insert((tctx.to_owned(), id), (ck.clone(), key.clone()));
            }
        }
    }

    /// The version number a registration gets: the registry numbers versions
    /// itself (the highest taken + 1), except in IMPORT mode, where the
    /// backup's number is kept when the subject does not hold it.
    fn target_version(&mut self, key: &Key, import: bool) -> u32 {
        let inputs = self.inputs;
        let used = self
            .used_versions
            .entry(key.target.clone())
            .or_insert_with(|| {
                inputs
                    .target
                    .subjects
                    .get(&key.target)
                    .map(|s| {
                        s.versions
                            .keys()
                            .copied()
                            .filter(|&n| !inputs.deleted_for_good(&key.target, n))
                            .collect()
                    })
                    .unwrap_or_default()
            });
        let next = used.last().map_or(1, |m| m + 1);
        let target_version = if import && !used.contains(&key.version) {
            key.version
        } else {
            next
        };
        used.insert(target_version);
        target_version
    }
}

/// With `force_ids` and without `rewrite_ids`, records keep their source
/// IDs: a restored version the target already holds under another ID would
/// leave them pointing to the wrong schema ([`ConflictKind::IdDisagreement`]).
fn check_kept_ids(inputs: Inputs<'_>, conflicts: &mut Vec<Conflict>) {
    let Inputs {
        selection,
        decisions,
        options,
        ..
    } = inputs;
    if !options.force_ids || options.rewrite_ids {
        return;
    }
    for (key, d) in &decisions.by_node {
        let source_id = selection.nodes[key].version.id;
        if let Some((tv, tid)) = d.kept_target()
            && tid != source_id
        {
            conflicts.push(Conflict {
                kind: ConflictKind::IdDisagreement,
                subject: Some(key.target.clone()),
                version: Some(tv),
                id: Some(source_id),
                message: format!(
                    "`{key}` is already in the target as `{}` v{tv} under id {tid}, not its source id {source_id}",
                    key.target,
                ),
                details: Vec::new(),
                hint: "records keep their IDs (`force_ids` without `rewrite_ids`): set `rewrite_ids: true`, or remove the target's copy".to_owned(),
            });
        }
    }
}

/// The source-to-target ID map. A record carries only its ID, so every
/// restored version with one source ID must land on one target ID in one
/// context; where two would not, an [`ConflictKind::IdDisagreement`]. A
/// version that is not restored (skipped, in conflict) maps nowhere and
/// never disagrees.
fn map_ids(
    inputs: Inputs<'_>,
    registrations: &BTreeMap<Key, Registration>,
    conflicts: &mut Vec<Conflict>,
) -> BTreeMap<String, BTreeMap<u32, IdMapEntry>> {
    let mut id_mapping: BTreeMap<String, BTreeMap<u32, IdMapEntry>> = BTreeMap::new();
    for (key, d) in &inputs.decisions.by_node {
        let source_id = inputs.selection.nodes[key].version.id;
        let tctx = context_of(&key.target).to_owned();
        let (target_id, how, used_by) = id_map_entry(key, d, registrations);
        let entries = id_mapping
            .entry(context_of(&key.source).to_owned())
            .or_default();
        let Some(entry) = entries.get_mut(&source_id) else {
            entries.insert(
                source_id,
                IdMapEntry {
                    target_context: tctx,
                    target_id,
                    how,
                    used_by: vec![used_by],
                },
            );
            continue;
        };
        entry.used_by.push(used_by);
        entry.used_by.sort();
        entry.used_by.dedup();
        if target_id == TargetId::Unmapped {
            continue;
        }
        if entry.target_id == TargetId::Unmapped {
            entry.target_id = target_id;
            entry.how = how;
            entry.target_context = tctx;
            continue;
        }
        let agree = entry.target_context == tctx
            && (entry.target_id == target_id
                || (target_id == TargetId::AfterApply
                    && how == IdHow::Assigned
                    && entry.target_id == TargetId::AfterApply));
        if !agree {
            conflicts.push(Conflict {
                kind: ConflictKind::IdDisagreement,
                subject: Some(key.target.clone()),
                version: Some(key.version),
                id: Some(source_id),
                message: format!(
                    "source id {source_id} would point to {} in `{}` and to {target_id} in `{tctx}`",
                    entry.target_id, entry.target_context
                ),
                details: entry.used_by.clone(),
                hint: "a record carries only the ID: every version with one source ID must land on one target ID".to_owned(),
            });
        }
    }
    id_mapping
}

/// Where one restored version's source ID points, how, and the target
/// version (or backed-up one) that uses it.
fn id_map_entry(
    key: &Key,
    decision: &Decision,
    registrations: &BTreeMap<Key, Registration>,
) -> (TargetId, IdHow, String) {
    match decision {
        Decision::Unchanged {
            target_version,
            target_id,
            ..
        }
        | Decision::SoftDelete {
            target_version,
            target_id,
        } => (
            TargetId::Known(*target_id),
            IdHow::Existing,
            format!("{} v{target_version}", key.target),
        ),
        Decision::Skipped {
            matched: Some((v, id)),
        } => (
            TargetId::Known(*id),
            IdHow::Existing,
            format!("{} v{v}", key.target),
        ),
        Decision::Skipped { matched: None } => {
            (TargetId::Unmapped, IdHow::Skipped, key.to_string())
        }
        Decision::Conflict => (TargetId::Unmapped, IdHow::Conflict, key.to_string()),
        Decision::Register { .. } => {
            let reg = &registrations[key];
            (
                reg.target_id,
                reg.how,
                format!("{} v{}", key.target, reg.target_version),
            )
        }
    }
}

/// Decides target versions and IDs, and lays out the steps, phase by phase.
pub fn build(
    selection: &Selection<'_>,
    decisions: &Decisions,
    backup: &RegistrySnapshot,
    target: &RegistrySnapshot,
    options: &PlanOptions,
) -> Result<Built, PlanError> {
    let inputs = Inputs {
        selection,
        decisions,
        backup,
        target,
        options,
    };
    let index = TargetIndex::new(inputs);
    let mut conflicts = decisions.conflicts.clone();
    let registrations = decide_registrations(inputs, &index, &mut conflicts);
    check_kept_ids(inputs, &mut conflicts);
    let id_mapping = map_ids(inputs, &registrations, &mut conflicts);

    let mut build = Build::new(inputs, &registrations, conflicts);
    build.set_temporary_settings();
    build.delete_target_versions(&index.referrers)?;
    build.register_versions();
    build.soft_delete_versions();
    build.put_back_subject_settings();
    if options.restore_global_settings {
        build.restore_global_settings();
    }
    Ok(build.finish(id_mapping))
}

/// A version the backup holds soft-deleted, to soft-delete in the target.
#[derive(Debug, Clone, Copy)]
struct SoftDelete<'a> {
    key: &'a Key,
    /// The target version to soft-delete.
    target_version: u32,
    /// Registered by this plan first (for its ID); else already live in
    /// the target.
    registered: bool,
}

/// The steps being laid out, phase by phase, and what the phases tell each
/// other.
struct Build<'a> {
    inputs: Inputs<'a>,
    registrations: &'a BTreeMap<Key, Registration>,
    /// Per target subject, its registrations in registration order.
    regs_of: BTreeMap<&'a str, Vec<&'a Registration>>,
    /// Per target subject, its versions to soft-delete, in registration order.
    soft_of: BTreeMap<&'a str, Vec<SoftDelete<'a>>>,
    /// The subjects the plan writes to: registrations, soft and hard deletes.
    written: BTreeSet<&'a str>,
    conflicts: Vec<Conflict>,
    steps: Steps,
    totals: Totals,
    /// The mode each written subject is in at this point of the plan.
    current_mode: BTreeMap<&'a str, Mode>,
    /// Subjects given a temporary mode; phase 5 puts it back.
    temp_mode: BTreeSet<&'a str>,
    /// Subjects given the temporary level `NONE`; phase 5 puts it back.
    temp_compat: BTreeSet<&'a str>,
    /// Per subject, its temporary-setting steps: every later write to the
    /// subject waits for them.
    prepare: BTreeMap<&'a str, Vec<u32>>,
    /// Per subject, its hard deletes: its registrations wait for them.
    hard_deletes: BTreeMap<&'a str, Vec<u32>>,
    /// The registration step of each registered version.
    registered: BTreeMap<&'a Key, u32>,
    /// Per subject, its last registration step so far.
    last_registration: BTreeMap<&'a str, u32>,
}

impl<'a> Build<'a> {
    fn new(
        inputs: Inputs<'a>,
        registrations: &'a BTreeMap<Key, Registration>,
        conflicts: Vec<Conflict>,
    ) -> Self {
        let Inputs {
            selection,
            decisions,
            ..
        } = inputs;
        let mut regs_of: BTreeMap<&str, Vec<&Registration>> = BTreeMap::new();
        let mut soft_of: BTreeMap<&str, Vec<SoftDelete>> = BTreeMap::new();
        for key in &selection.order {
            let subject = key.target.as_str();
            if let Some(r) = registrations.get(key) {
                regs_of.entry(subject).or_default().push(r);
            }
            let soft = match decisions.by_node.get(key) {
                Some(Decision::SoftDelete { target_version, .. }) => Some((*target_version, false)),
                Some(Decision::Register { .. }) if selection.nodes[key].version.deleted => {
                    Some((registrations[key].target_version, true))
                }
                _ => None,
            };
            if let Some((target_version, registered)) = soft {
                soft_of.entry(subject).or_default().push(SoftDelete {
                    key,
                    target_version,
                    registered,
                });
            }
        }
        let written = regs_of
            .keys()
            .chain(soft_of.keys())
            .copied()
            .chain(decisions.deletions.keys().map(String::as_str))
            .collect();
        Build {
            inputs,
            registrations,
            regs_of,
            soft_of,
            written,
            conflicts,
            steps: Steps::default(),
            totals: Totals::default(),
            current_mode: BTreeMap::new(),
            temp_mode: BTreeSet::new(),
            temp_compat: BTreeSet::new(),
            prepare: BTreeMap::new(),
            hard_deletes: BTreeMap::new(),
            registered: BTreeMap::new(),
            last_registration: BTreeMap::new(),
        }
    }

    /// `subject`'s registrations, in registration order.
    fn regs(&self, subject: &str) -> &[&'a Registration] {
        self.regs_of
            .get(subject)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// `subject`'s temporary-setting steps so far.
    fn prepared(&self, subject: &str) -> Vec<u32> {
        self.prepare.get(subject).cloned().unwrap_or_default()
    }

    /// Phase 1: every subject the plan writes to is made writable before
    /// its first write.
    ///
    /// Afterwards each written subject is in the mode its first
    /// registration needs: IMPORT when that registration carries its ID
    /// (with `force=true` when the subject has live versions), READWRITE when
    /// it gets its ID from the registry. A subject that is only deleted from
    /// keeps READWRITE or IMPORT and leaves any other mode for READWRITE. A
    /// subject with a registration the registry checks for compatibility
    /// (one without an ID of its own) is at level `NONE`. Each temporary
    /// setting is recorded for phase 5 to put back, and every later write to
    /// the subject waits for it.
    fn set_temporary_settings(&mut self) {
        let written: Vec<&'a str> = self.written.iter().copied().collect();
        for s in written {
            self.set_temporary_mode(s);
            let level = effective_compat(self.inputs.target, s);
            self.set_temporary_none(s, level, Vec::new(), "");
        }
    }

    /// Phase 1's mode on `s`, when its current mode would refuse the first write.
    fn set_temporary_mode(&mut self, s: &'a str) {
        let target = self.inputs.target;
        let regs = self.regs(s);
        let effective = effective_mode(target, s);
        let needed = match regs.first() {
            Some(r) if r.import_id.is_some() => Mode::Import,
            _ => Mode::ReadWrite,
        };
        let writable = effective == needed
            || (regs.is_empty() && matches!(effective, Mode::ReadWrite | Mode::Import));
        self.current_mode.insert(s, effective);
        if writable {
            return;
        }
        let live = target
            .subjects
            .get(s)
            .map_or(0, |t| t.versions.values().filter(|v| !v.deleted).count());
        let force = needed == Mode::Import && live > 0;
        let why = if needed == Mode::Import {
            "registrations keep their IDs"
        } else {
            "the current mode refuses writes"
        };
        let force_note = if force {
            format!("; `force=true`: the subject has {live} live version(s)")
        } else {
            String::new()
        };
        let id = self.steps.set_mode(
            s,
            needed,
            force,
            Vec::new(),
            format!(
                "~ set mode {s} {effective} -> {needed}: {why} (temporary, put back at the end){force_note}"
            ),
        );
        self.prepare.entry(s).or_default().push(id);
        self.current_mode.insert(s, needed);
        self.temp_mode.insert(s);
    }

    /// The temporary level `NONE` on `s`, now at `level`, when one of its
    /// registrations is checked for compatibility and `level` could reject it.
    fn set_temporary_none(&mut self, s: &'a str, level: Compatibility, after: Vec<u32>, why: &str) {
        let checked = self.regs(s).iter().any(|r| r.import_id.is_none());
        if checked && level != Compatibility::None {
            let id = self.steps.temporary_none(s, level, after, why);
            self.prepare.entry(s).or_default().push(id);
            self.temp_compat.insert(s);
        }
    }

    /// Phase 2 (`overwrite`): deletes the target versions that go, each
    /// soft then hard (only hard when already soft-deleted).
    ///
    /// A subject whose versions all go is deleted as one subject. A referrer
    /// is deleted before the version it references (the registry refuses to
    /// delete a referenced version, 42206); a target referrer that stays is a
    /// [`ConflictKind::DeleteReferenced`] conflict. Every delete waits for its
    /// subject's temporary settings, and phase 3's registrations wait for
    /// their subject's deletes.
    fn delete_target_versions(&mut self, referrers: &Referrers) -> Result<(), PlanError> {
        let (units, order) = self.deletion_order(referrers)?;
        let mut hard: BTreeMap<Unit, u32> = BTreeMap::new();
        for unit in &order {
            let needs = units.needs(unit).into_iter().map(|u| hard[u]).collect();
            let id = self.delete(unit, needs);
            hard.insert(unit.clone(), id);
        }
        Ok(())
    }

    /// The delete units in run order (every referrer before what it
    /// references) and the graph between them; a cycle is an error.
    fn deletion_order(
        &mut self,
        referrers: &Referrers,
    ) -> Result<(DependencyGraph<Unit<'a>>, Vec<Unit<'a>>), PlanError> {
        let Inputs {
            decisions, target, ..
        } = self.inputs;
        let mut units: DependencyGraph<Unit> = DependencyGraph::new();
        for (s, versions) in &decisions.deletions {
            for &n in versions.keys() {
                let unit = self
                    .inputs
                    .delete_unit(s, n)
                    .expect("a planned deletion has a unit");
                units.add_node(unit.clone());
                for (rs, rn) in referrers.get(&(s.clone(), n)).into_iter().flatten() {
                    match self.inputs.delete_unit(rs, *rn) {
                        Some(other) if other != unit => units.add_edge(unit.clone(), other),
                        Some(_) => {}
                        None => self.conflicts.push(Conflict {
                            kind: ConflictKind::DeleteReferenced,
                            subject: Some(s.clone()),
                            version: Some(n),
                            id: Some(target.subjects[s].versions[&n].id),
                            message: format!(
                                "`{s}` v{n} must be deleted, but target `{rs}` v{rn} references it and stays"
                            ),
                            details: Vec::new(),
                            hint: format!(
                                "the registry refuses the delete (42206): delete or restore `{rs}` too"
                            ),
                        }),
                    }
                }
            }
        }
        // topo order puts what is needed first; a referrer must go first, so
        // the edge was drawn from the referenced unit to its referrer
        let order = units.topo_order().map_err(|cycle| PlanError::Cycle {
            chain: cycle
                .iter()
                .map(|u| match u {
                    Unit::Subject(s) => format!("{s} (target)"),
                    Unit::Version(s, n) => format!("{s} v{n} (target)"),
                })
                .collect::<Vec<_>>()
                .join(" -> "),
        })?;
        Ok((units, order))
    }

    /// The soft and hard delete of `unit`, after its subject's temporary
    /// settings and the hard deletes in `needs`; returns the hard delete.
    fn delete(&mut self, unit: &Unit<'a>, needs: Vec<u32>) -> u32 {
        let Inputs {
            decisions, target, ..
        } = self.inputs;
        let (s, versions): (&'a str, Vec<u32>) = match *unit {
            Unit::Subject(s) => (s, decisions.deletions[s].keys().copied().collect()),
            Unit::Version(s, n) => (s, vec![n]),
        };
        let replaced = versions.iter().all(|n| decisions.deletions[s][n]);
        let action = if replaced {
            Action::Replace
        } else {
            Action::Delete
        };
        self.totals.destroy += versions.len();
        let mut deps = self.prepared(s);
        deps.extend(needs);
        let (what, why) = self.describe_delete(unit, &versions, replaced);
        let already_soft = versions
            .iter()
            .all(|n| target.subjects[s].versions[n].deleted);
        let hard_deps = if already_soft {
            deps
        } else {
            let reason = format!("{} delete {what} (soft): {why}", action.symbol());
            vec![self.steps.delete(unit, action, false, deps, reason)]
        };
        let already = if already_soft {
            ", already soft-deleted"
        } else {
            ""
        };
        let reason = format!("{} delete {what} (hard){already}: {why}", action.symbol());
        let id = self.steps.delete(unit, action, true, hard_deps, reason);
        self.hard_deletes.entry(s).or_default().push(id);
        if let Unit::Subject(_) = unit {
            self.after_subject_deleted(s, id);
        }
        id
    }

    /// What a delete removes and why, for its reason line.
    fn describe_delete(&self, unit: &Unit, versions: &[u32], replaced: bool) -> (String, String) {
        match *unit {
            Unit::Subject(s) => (
                format!("subject {s}"),
                format!(
                    "all {} target version(s) go ({})",
                    versions.len(),
                    versions
                        .iter()
                        .map(|n| format!("v{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Unit::Version(s, n) => (
                format!("{s} v{n}"),
                if replaced {
                    format!("replaced by the backup's v{n}")
                } else if self
                    .inputs
                    .selection
                    .nodes
                    .keys()
                    .any(|k| k.target == s && k.version == n)
                {
                    "replaced to keep the backup's version numbering".to_owned()
                } else {
                    "not in the backup".to_owned()
                },
            ),
        }
    }

    /// A subject deleted for good loses its own level and mode: what applies
    /// now is its context's or the global one. So its mode is taken from
    /// there (phase 3 switches it when a registration needs another), and
    /// the temporary level `NONE` is set again after the hard delete.
    fn after_subject_deleted(&mut self, s: &'a str, hard_delete: u32) {
        let target = self.inputs.target;
        self.current_mode.insert(s, scope_mode(target, s));
        self.set_temporary_none(
            s,
            scope_compat(target, s),
            vec![hard_delete],
            "the delete took the subject's own level with it; ",
        );
    }

    /// Phase 3: registers the versions that need it, in registration order:
    /// every reference before its referrer, each subject's versions in
    /// order, ties by target subject and version.
    ///
    /// A registration waits for its subject's temporary settings and hard
    /// deletes, the subject's previous registration, and the registrations of
    /// the restored versions it references. When it needs another mode than
    /// its subject is in (a subject mixing pinned and unpinned IDs, or one
    /// deleted for good), the mode is switched first.
    fn register_versions(&mut self) {
        let Inputs { selection, .. } = self.inputs;
        let registrations = self.registrations;
        for key in &selection.order {
            if let Some(reg) = registrations.get(key) {
                self.register(key, reg);
            }
        }
    }

    /// The registration of `key`, after a mode switch when it needs one.
    fn register(&mut self, key: &'a Key, reg: &'a Registration) {
        let node = &self.inputs.selection.nodes[key];
        let s = key.target.as_str();
        let needed = if reg.import_id.is_some() {
            Mode::Import
        } else {
            Mode::ReadWrite
        };
        let mut deps = self.prepared(s);
        deps.extend(self.hard_deletes.get(s).into_iter().flatten());
        deps.extend(self.last_registration.get(s));
        if self.current_mode.get(s) != Some(&needed) {
            deps = vec![self.switch_mode(s, needed, deps)];
        }
        for r in &node.refs {
            if let RefTo::Node(to) = &r.to
                && let Some(&id) = self.registered.get(to)
            {
                deps.push(id);
            }
        }
        let reason = registration_reason(key, reg, node.version);
        let id = self.steps.register(reg, node.version, deps, reason);
        self.totals.add += 1;
        self.registered.insert(key, id);
        self.last_registration.insert(s, id);
    }

    /// Puts `s` in `mode` for its next registration (temporary: phase 5
    /// puts the mode back).
    fn switch_mode(&mut self, s: &'a str, mode: Mode, after: Vec<u32>) -> u32 {
        let from = self.current_mode[s];
        let how = if mode == Mode::Import {
            "carries its own ID"
        } else {
            "gets its ID from the registry"
        };
        let id = self.steps.set_mode(
            s,
            mode,
            false,
            after,
            format!(
                "~ set mode {s} {from} -> {mode}: the next registration {how} (temporary, put back at the end)"
            ),
        );
        self.current_mode.insert(s, mode);
        self.temp_mode.insert(s);
        id
    }

    /// Phase 4: soft-deletes the versions the backup holds soft-deleted.
    ///
    /// A version this plan registers (for its ID) is soft-deleted after its
    /// registration and after the registrations of the restored versions
    /// that reference it, which need it live. Every soft delete also waits
    /// for its subject's temporary settings and last registration.
    fn soft_delete_versions(&mut self) {
        let Inputs { selection, .. } = self.inputs;
        for (&s, list) in &self.soft_of {
            for soft in list {
                let mut deps = self.prepared(s);
                if soft.registered {
                    deps.push(self.registered[soft.key]);
                    for referrer in selection.referrers.get(soft.key).into_iter().flatten() {
                        deps.extend(self.registered.get(referrer));
                    }
                } else {
                    self.totals.change += 1;
                }
                deps.extend(self.last_registration.get(s));
                let why = if soft.registered {
                    "soft-deleted in the backup (registered for its ID, then soft-deleted)"
                } else {
                    "soft-deleted in the backup, live in the target"
                };
                let tv = soft.target_version;
                self.steps.delete_version(
                    Action::Update,
                    s,
                    tv,
                    false,
                    deps,
                    format!("~ soft-delete {s} v{tv}: {why}"),
                );
            }
        }
    }

    /// Phase 5: per restored subject, its final level, then its final mode
    /// (see [`Build::final_settings`]).
    ///
    /// Both come after every other step on the subject, the mode last, so an
    /// IMPORT or READONLY mode is the last write to its subject. A temporary
    /// setting is always put back; a final value equal to the target's
    /// needs no step otherwise.
    fn put_back_subject_settings(&mut self) {
        let Inputs { selection, .. } = self.inputs;
        for (s, info) in &selection.subjects {
            let settings = self.final_settings(s, info);
            let mut deps = self.steps.of(s);
            if let Some(id) = self.put_back_level(s, &settings, deps.clone()) {
                deps.push(id);
            }
            self.put_back_mode(s, &settings, deps);
        }
    }

    /// What a restored subject's own level and mode end as. A subject that
    /// is restored (selected, and not left alone by `skip`) or new to the
    /// target takes the backup's: under `overwrite` always (a value the
    /// backup does not set is removed), else only where the target has none
    /// of its own. `set_compatibility` replaces the level of a restored
    /// subject. Every other value stays the target's.
    fn final_settings(&self, s: &str, info: &SubjectInfo) -> SubjectSettings {
        let Inputs {
            backup,
            target,
            options,
            ..
        } = self.inputs;
        let tsub = target.subjects.get(s);
        let present = tsub.is_some_and(|t| !t.versions.is_empty());
        let backup_settings = backup
            .subjects
            .get(&info.source)
            .map_or_else(ScopeSettings::default, own_settings);
        let before = tsub.map_or_else(ScopeSettings::default, own_settings);
        let restored = info.selected && !(options.strategy == Strategy::Skip && present);
        let overwrite = info.selected && options.strategy == Strategy::Overwrite;
        // the backup's value is taken by a restored subject, or one new to
        // the target: under `overwrite` always (a value the backup does not set
        // is removed), else where the backup sets one and the target none
        let from_backup = |backup_sets: bool, target_sets: bool| {
            (restored || !present) && (overwrite || (backup_sets && !target_sets))
        };
        let set_compatibility = restored && options.set_compatibility.is_some();
        let compatibility = if set_compatibility {
            options.set_compatibility
        } else if from_backup(
            backup_settings.compatibility.is_some(),
            before.compatibility.is_some(),
        ) {
            backup_settings.compatibility
        } else {
            before.compatibility
        };
        let mode = if from_backup(backup_settings.mode.is_some(), before.mode.is_some()) {
            backup_settings.mode
        } else {
            before.mode
        };
        SubjectSettings {
            backup: backup_settings,
            before,
            after: ScopeSettings {
                compatibility,
                mode,
            },
            set_compatibility,
        }
    }

    /// The step that sets `s`'s final level, if one is needed.
    fn put_back_level(
        &mut self,
        s: &'a str,
        settings: &SubjectSettings,
        after: Vec<u32>,
    ) -> Option<u32> {
        let (before, end) = (settings.before.compatibility, settings.after.compatibility);
        let temporary = self.temp_compat.contains(s);
        if !temporary && end == before {
            return None;
        }
        let why = if end == before {
            match before {
                Some(c) => format!("put back the target's level ({})", compatibility_name(c)),
                None => {
                    "the subject had no level of its own: the temporary one is removed".to_owned()
                }
            }
        } else if settings.set_compatibility {
            "`set_compatibility`".to_owned()
        } else {
            format!(
                "the backup's level ({})",
                show_compat(settings.backup.compatibility)
            )
        };
        if end != before {
            self.totals.change += 1;
        }
        let from = if temporary {
            "NONE".to_owned()
        } else {
            show_compat(before)
        };
        let reason = format!("~ compatibility {s} {from} -> {}: {why}", show_compat(end));
        Some(
            self.steps
                .restore_compatibility(At::Subject(s), end, after, reason),
        )
    }

    /// The step that sets `s`'s final mode, if one is needed.
    fn put_back_mode(&mut self, s: &'a str, settings: &SubjectSettings, after: Vec<u32>) {
        let (before, end) = (settings.before.mode, settings.after.mode);
        let temporary = self.temp_mode.contains(s);
        if !temporary && end == before {
            return;
        }
        let why = if end == before {
            match before {
                Some(m) => format!("put back the target's mode ({m})"),
                None => {
                    "the subject had no mode of its own: the temporary one is removed".to_owned()
                }
            }
        } else {
            format!(
                "the backup's mode ({}), set last",
                show_mode(settings.backup.mode)
            )
        };
        if end != before {
            self.totals.change += 1;
        }
        let from = self
            .current_mode
            .get(s)
            .filter(|_| temporary)
            .map_or_else(|| show_mode(before), |m| m.as_str().to_owned());
        let reason = format!("~ mode {s} {from} -> {}: {why}", show_mode(end));
        self.steps
            .restore_mode(At::Subject(s), end, false, after, reason);
    }

    /// Phase 6 (`restore_global_settings`): the backup's global level and
    /// mode, then each context's (named as `context_mapping` maps it), where
    /// they differ from the target's.
    ///
    /// They run after every other step, one after the other, and in each
    /// scope the mode after the level: they govern every subject without
    /// settings of its own, so set earlier they could refuse or reject this
    /// plan's writes.
    fn restore_global_settings(&mut self) {
        let target = self.inputs.target;
        let mut last = self.sinks();
        for scope in self.global_scopes() {
            let (at, name) = match &scope.context {
                None => (At::Global, "global".to_owned()),
                Some(c) => (At::Context(c), format!("context {c}")),
            };
            if let Some(c) = scope.backup.compatibility
                && Some(c) != scope.before.compatibility
            {
                let reason = format!(
                    "~ compatibility {name} {} -> {}: the backup's level",
                    show_compat(scope.before.compatibility),
                    compatibility_name(c)
                );
                let id = self
                    .steps
                    .restore_compatibility(at, Some(c), last.clone(), reason);
                self.totals.change += 1;
                last = vec![id];
            }
            if let Some(m) = scope.backup.mode
                && Some(m) != scope.before.mode
            {
                let force = m == Mode::Import && !target.subjects.is_empty();
                let force_note = if force {
                    " (`force=true`: the target has subjects)"
                } else {
                    ""
                };
                let reason = format!(
                    "~ mode {name} {} -> {m}: the backup's mode, set last{force_note}",
                    show_mode(scope.before.mode),
                );
                let id = self
                    .steps
                    .restore_mode(at, Some(m), force, last.clone(), reason);
                self.totals.change += 1;
                last = vec![id];
            }
        }
    }

    /// The global scope, then every context the backup has settings for
    /// (as `context_mapping` names it in the target; the default context is
    /// the global scope's), with the backup's and the target's settings.
    fn global_scopes(&self) -> Vec<GlobalScope> {
        let Inputs {
            backup,
            target,
            options,
            ..
        } = self.inputs;
        let mut scopes = vec![GlobalScope {
            context: None,
            backup: backup.global.clone(),
            before: target.global.clone(),
        }];
        let mut by_context: BTreeMap<String, ScopeSettings> = BTreeMap::new();
        for (ctx, settings) in &backup.context_settings {
            let mapped = options
                .context_mapping
                .get(ctx)
                .cloned()
                .unwrap_or_else(|| ctx.clone());
            by_context.insert(mapped, settings.clone());
        }
        for (ctx, settings) in by_context {
            if ctx == DEFAULT_CONTEXT {
                continue;
            }
            let before = target
                .context_settings
                .get(&ctx)
                .cloned()
                .unwrap_or_default();
            scopes.push(GlobalScope {
                context: Some(ctx),
                backup: settings,
                before,
            });
        }
        scopes
    }

    /// The steps no other step depends on (the ends of the plan so far).
    fn sinks(&self) -> Vec<u32> {
        let used: BTreeSet<u32> = self
            .steps
            .list
            .iter()
            .flat_map(|s| s.depends_on.iter().copied())
            .collect();
        self.steps
            .list
            .iter()
            .map(|s| s.id)
            .filter(|id| !used.contains(id))
            .collect()
    }

    /// One summary per restored subject, in target name order; counts the
    /// versions that need nothing.
    fn summarize_subjects(&mut self) -> Vec<SubjectSummary> {
        let Inputs { selection, .. } = self.inputs;
        selection
            .subjects
            .iter()
            .map(|(s, info)| self.summarize(s, info))
            .collect()
    }

    /// What happens to `s` as a whole, and its versions that need nothing.
    fn summarize(&mut self, s: &String, info: &SubjectInfo) -> SubjectSummary {
        let Inputs {
            selection,
            decisions,
            target,
            options,
            ..
        } = self.inputs;
        let present = target
            .subjects
            .get(s)
            .is_some_and(|t| !t.versions.is_empty());
        let mut unchanged = Vec::new();
        let mut conflict = false;
        let first = Key {
            target: s.clone(),
            source: String::new(),
            version: 0,
        };
        for (key, d) in decisions.by_node.range(first..) {
            if &key.target != s {
                break;
            }
            match d {
                Decision::Unchanged { why, .. } => {
                    self.totals.unchanged += 1;
                    unchanged.push(format!("v{}: {why}", key.version));
                }
                Decision::Skipped { matched } => {
                    self.totals.unchanged += 1;
                    unchanged.push(match matched {
                        Some((_, id)) => {
                            format!("v{}: skipped, identical in target (id {id})", key.version)
                        }
                        None => format!(
                            "v{}: skipped, the target's subject is left as it is (id {} unmapped)",
                            key.version, selection.nodes[key].version.id
                        ),
                    });
                }
                Decision::Conflict => conflict = true,
                _ => {}
            }
        }
        let outcome = if conflict || self.conflicts.iter().any(|c| c.subject.as_ref() == Some(s)) {
            SubjectOutcome::Conflict
        } else if !present {
            SubjectOutcome::Created
        } else if self.steps.by_subject.contains_key(s) {
            SubjectOutcome::Changed
        } else if info.selected && options.strategy == Strategy::Skip {
            SubjectOutcome::Skipped
        } else {
            SubjectOutcome::Unchanged
        };
        SubjectSummary {
            subject: s.clone(),
            source_subject: info.source.clone(),
            pulled_in: !info.selected,
            outcome,
            unchanged,
            notes: decisions.notes.get(s).cloned().unwrap_or_default(),
        }
    }

    /// The plan's parts: the steps, the totals, the subject summaries, and
    /// the conflicts sorted, duplicates removed.
    fn finish(mut self, id_mapping: BTreeMap<String, BTreeMap<u32, IdMapEntry>>) -> Built {
        let subjects = self.summarize_subjects();
        let mut conflicts = self.conflicts;
        conflicts.sort_by(|a, b| {
            (a.kind, &a.subject, a.version, a.id, &a.message)
                .cmp(&(b.kind, &b.subject, b.version, b.id, &b.message))
        });
        conflicts.dedup();
        Built {
            totals: self.totals,
            conflicts,
            steps: self.steps.list,
            subjects,
            id_mapping,
        }
    }
}

/// The line a registration shows: what, why, how its version and ID are chosen.
fn registration_reason(key: &Key, reg: &Registration, bv: &SchemaVersion) -> String {
    let s = &key.target;
    let mut reason = format!(
        "{} register {s} v{}: {}",
        if reg.replace { "-/+" } else { "+" },
        reg.target_version,
        reg.reason
    );
    if reg.target_version != key.version {
        reason.push_str(&format!(
            "; backup v{} becomes v{} (the registry numbers versions)",
            key.version, reg.target_version
        ));
    }
    if key.target != key.source {
        reason.push_str(&format!("; from `{}`", key.source));
    }
    reason.push_str(&match reg.how {
        IdHow::Forced => format!("; id {} kept (IMPORT)", bv.id),
        IdHow::Pinned => format!("; id {} -> {} pinned (IMPORT)", bv.id, reg.target_id),
        IdHow::Existing => format!(
            "; id {} -> {} (the target already holds this schema)",
            bv.id, reg.target_id
        ),
        _ => format!("; id {} -> {}", bv.id, reg.target_id),
    });
    if bv.deleted {
        reason.push_str("; soft-deleted in the backup: soft-deleted again after registration");
    }
    reason
}

/// A subject's own level and mode.
fn own_settings(subject: &SubjectState) -> ScopeSettings {
    ScopeSettings {
        compatibility: subject.compatibility,
        mode: subject.mode,
    }
}

/// A restored subject's own level and mode: in the backup, in the target
/// before the plan, and after it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubjectSettings {
    backup: ScopeSettings,
    before: ScopeSettings,
    after: ScopeSettings,
    /// The level after is `set_compatibility`'s.
    set_compatibility: bool,
}

/// The global scope (`context: None`) or one context: its level and mode in
/// the backup and in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GlobalScope {
    context: Option<String>,
    backup: ScopeSettings,
    before: ScopeSettings,
}

#[cfg(test)]
mod tests;
