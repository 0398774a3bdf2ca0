//! Steps 4 to 6 of the planner: target versions and IDs of the
//! registrations, then the flat, ordered list of steps.
//!
//! [`build`] first decides every registration (in `registrations`:
//! `decide_registrations` gives each its target version, its references in
//! target terms and its ID; `check_kept_ids` checks the IDs records keep;
//! `map_ids` makes the ID map). Then it lays the steps out in phases over one
//! `Build`, each step after the steps it depends on; each phase's doc
//! comment says what it guarantees:
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
//! Steps are made only by the constructors of `Steps` (in `steps`), one per
//! kind of step.

mod registrations;
mod steps;

use std::collections::{BTreeMap, BTreeSet};

use super::diff::{Decision, Decisions};
use super::ids::{IdHow, IdMapEntry};
use super::select::{Key, RefTo, Selection, SubjectInfo};
use super::step::{show_compat, show_mode};
use super::{
    Conflict, ConflictKind, PlanError, PlanOptions, Step, SubjectOutcome, SubjectSummary, Totals,
};
use crate::config::{Compatibility, Strategy};
use crate::graph::DependencyGraph;
use crate::model::{
    DEFAULT_CONTEXT, Mode, RegistrySnapshot, SchemaVersion, ScopeSettings, SubjectState,
    compatibility_name, context_of,
};
use registrations::{
    Referrers, Registration, TargetIndex, check_kept_ids, decide_registrations, map_ids,
};
use steps::{At, Steps, Unit};

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
    /// The mode each written subject is in at this point of the plan.
    current_mode: BTreeMap<&'a str, Mode>,
    /// Subjects given a temporary mode; phase 5 puts it back.
    temp_mode: BTreeSet<&'a str>,
    /// Subjects given the temporary level `NONE`; phase 5 puts it back.
    temp_compat: BTreeSet<&'a str>,
    /// Subjects whose final level phase 1 (or a subject delete) set before
    /// their registrations (no `force_register`); phase 5 leaves their level.
    early_level: BTreeSet<&'a str>,
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
            current_mode: BTreeMap::new(),
            temp_mode: BTreeSet::new(),
            temp_compat: BTreeSet::new(),
            early_level: BTreeSet::new(),
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
    ///
    /// Without `force_register`, no level is loosened: a subject whose
    /// registrations the registry checks gets the level it is restored with
    /// (phase 5's) before them instead, so that they are checked against it
    /// (a subject deleted for good gets it after its delete, which takes its
    /// own level with it).
    fn set_temporary_settings(&mut self) {
        let written: Vec<&'a str> = self.written.iter().copied().collect();
        for s in written {
            self.set_temporary_mode(s);
            if self.inputs.options.force_register {
                let level = effective_compat(self.inputs.target, s);
                self.set_temporary_none(s, level, Vec::new(), "");
            } else if !self.deleted_whole(s) {
                self.set_level_first(s, Vec::new(), false);
            }
        }
    }

    /// Whether the plan deletes every target version of `s`, so the subject
    /// as a whole (and its own settings with it).
    fn deleted_whole(&self, s: &str) -> bool {
        let target = self.inputs.target;
        target.subjects.get(s).is_some_and(|t| {
            t.versions
                .keys()
                .next()
                .is_some_and(|&v| matches!(self.inputs.delete_unit(s, v), Some(Unit::Subject(_))))
        })
    }

    /// Without `force_register`: the level `s` is restored with, set before
    /// its checked registrations when it differs from the one it has
    /// (`own_level_gone`: none, its delete took it). Phase 5 then sets no
    /// level on `s`.
    fn set_level_first(&mut self, s: &'a str, after: Vec<u32>, own_level_gone: bool) {
        let checked = self.regs(s).iter().any(|r| r.import_id.is_none());
        let Some(info) = self.inputs.selection.subjects.get(s) else {
            return;
        };
        if !checked {
            return;
        }
        let settings = self.final_settings(s, info);
        let before = if own_level_gone {
            None
        } else {
            settings.before.compatibility
        };
        self.early_level.insert(s);
        if settings.after.compatibility == before {
            return;
        }
        let what = if settings.set_compatibility {
            "`set_compatibility`".to_owned()
        } else if settings.after.compatibility == settings.backup.compatibility {
            format!(
                "the backup's level ({})",
                show_compat(settings.backup.compatibility)
            )
        } else {
            format!(
                "the target's level ({})",
                show_compat(settings.after.compatibility)
            )
        };
        let id = self.steps.restore_compatibility(
            At::Subject(s),
            before,
            settings.after.compatibility,
            false,
            after,
            format!("{what}, set before the registrations: they are checked against it (`force_register: false`)"),
        );
        self.prepare.entry(s).or_default().push(id);
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
            effective,
            needed,
            force,
            Vec::new(),
            format!("{why} (temporary, put back at the end){force_note}"),
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
        let mut deps = self.prepared(s);
        deps.extend(needs);
        let why = self.describe_delete(unit, &versions, replaced);
        let already_soft = versions
            .iter()
            .all(|n| target.subjects[s].versions[n].deleted);
        let hard_deps = if already_soft {
            deps
        } else {
            vec![
                self.steps
                    .delete(unit, &versions, replaced, false, deps, why.clone()),
            ]
        };
        let why = if already_soft {
            format!("already soft-deleted; {why}")
        } else {
            why
        };
        let id = self
            .steps
            .delete(unit, &versions, replaced, true, hard_deps, why);
        self.hard_deletes.entry(s).or_default().push(id);
        if let Unit::Subject(_) = unit {
            self.after_subject_deleted(s, id);
        }
        id
    }

    /// Why a delete removes what it does, for its line.
    fn describe_delete(&self, unit: &Unit, versions: &[u32], replaced: bool) -> String {
        match *unit {
            Unit::Subject(_) => format!(
                "all {} target version(s) go ({})",
                versions.len(),
                versions
                    .iter()
                    .map(|n| format!("v{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Unit::Version(s, n) => {
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
                }
            }
        }
    }

    /// A subject deleted for good loses its own level and mode: what applies
    /// now is its context's or the global one. So its mode is taken from
    /// there (phase 3 switches it when a registration needs another), and
    /// the temporary level `NONE` is set again after the hard delete.
    fn after_subject_deleted(&mut self, s: &'a str, hard_delete: u32) {
        let target = self.inputs.target;
        self.current_mode.insert(s, scope_mode(target, s));
        if self.inputs.options.force_register {
            self.set_temporary_none(
                s,
                scope_compat(target, s),
                vec![hard_delete],
                "the delete took the subject's own level with it; ",
            );
        } else {
            self.set_level_first(s, vec![hard_delete], true);
        }
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
        let why = registration_reason(key, reg, node.version);
        let id = self.steps.register(reg, node.version, deps, why);
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
            from,
            mode,
            false,
            after,
            format!("the next registration {how} (temporary, put back at the end)"),
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
                }
                deps.extend(self.last_registration.get(s));
                let why = if soft.registered {
                    "soft-deleted in the backup (registered for its ID, then soft-deleted)"
                } else {
                    "soft-deleted in the backup, live in the target"
                };
                self.steps.soft_delete(
                    s,
                    soft.target_version,
                    soft.registered,
                    deps,
                    why.to_owned(),
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
        if (!temporary && end == before) || self.early_level.contains(s) {
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
        Some(
            self.steps
                .restore_compatibility(At::Subject(s), before, end, temporary, after, why),
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
        let set = self.current_mode.get(s).copied().filter(|_| temporary);
        self.steps
            .restore_mode(At::Subject(s), before, end, set, false, after, why);
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
            let at = match &scope.context {
                None => At::Global,
                Some(c) => At::Context(c),
            };
            if let Some(c) = scope.backup.compatibility
                && Some(c) != scope.before.compatibility
            {
                let id = self.steps.restore_compatibility(
                    at,
                    scope.before.compatibility,
                    Some(c),
                    false,
                    last.clone(),
                    "the backup's level".to_owned(),
                );
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
                let id = self.steps.restore_mode(
                    at,
                    scope.before.mode,
                    Some(m),
                    None,
                    force,
                    last.clone(),
                    format!("the backup's mode, set last{force_note}"),
                );
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
                    unchanged.push(format!("v{}: {why}", key.version));
                }
                Decision::Skipped { matched } => {
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
            totals: Totals::of(&self.steps.list, &subjects),
            conflicts,
            steps: self.steps.list,
            subjects,
            id_mapping,
        }
    }
}

/// Why a registration is made, and how its version and ID are chosen.
fn registration_reason(key: &Key, reg: &Registration, bv: &SchemaVersion) -> String {
    let mut reason = reg.reason.clone();
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
