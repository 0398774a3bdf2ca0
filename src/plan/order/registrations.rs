//! Step 4 of the planner: each registration's target version, its
//! references in target terms and its ID; the check of the IDs records keep;
//! and the source-to-target ID map.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Inputs;
use crate::canonical::ContentKey;
use crate::model::{Reference, context_of, resolve_reference_subject, split_context};
use crate::plan::diff::Decision;
use crate::plan::ids::{IdHow, IdMapEntry, TargetId};
use crate::plan::select::{Key, RefTo};
use crate::plan::{Conflict, ConflictKind};

/// A registration, decided.
#[derive(Debug, Clone)]
pub(super) struct Registration {
    pub(super) key: Key,
    pub(super) target_version: u32,
    /// `id` sent in IMPORT mode.
    pub(super) import_id: Option<u32>,
    pub(super) target_id: TargetId,
    pub(super) how: IdHow,
    pub(super) references: Vec<Reference>,
    pub(super) replace: bool,
    pub(super) reason: String,
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

/// Per target version, the target versions that reference it.
pub(super) type Referrers = BTreeMap<(String, u32), Vec<(String, u32)>>;

/// Lookups over the target's versions (looked up only, never iterated, so
/// the hash maps' order never shows in a plan).
pub(super) struct TargetIndex<'a> {
    /// Per target context and content, the lowest ID a version that stays
    /// holds it under.
    content_ids: HashMap<(String, &'a ContentKey), u32>,
    /// Per target context and ID, the target versions holding it.
    id_holders: HashMap<(String, u32), Vec<(&'a str, u32)>>,
    /// Per target version, the target versions that reference it.
    pub(super) referrers: Referrers,
}

impl<'a> TargetIndex<'a> {
    pub(super) fn new(inputs: Inputs<'a>) -> Self {
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
pub(super) fn decide_registrations(
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
pub(super) fn check_kept_ids(inputs: Inputs<'_>, conflicts: &mut Vec<Conflict>) {
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
pub(super) fn map_ids(
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
