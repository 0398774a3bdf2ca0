//! The planner: a pure function from the backup's registry snapshot, the
//! target registry's live snapshot and the restore options to a [`Plan`].
//! No async, no HTTP, no clock, no randomness: the same inputs give the same
//! plan, which [`crate::planfile`] writes as the same bytes.
//!
//! The work is split as the design page lists it:
//! - [`select`]: which subjects and versions, under which target names, and
//!   the reference graph between them (cycles and unresolved references stop
//!   here);
//! - [`diff`]: per subject and strategy, what each version needs (nothing,
//!   a registration, a replacement, a conflict) and which target versions go;
//! - [`ids`]: the source-to-target ID map and the ID conflicts;
//! - [`order`]: the ordered steps, modes and compatibility levels included;
//! - [`render`]: text (Terraform-like), Markdown and JSON renderings.

pub mod capabilities;
pub mod diff;
pub mod error;
pub mod groups;
pub mod ids;
pub mod order;
pub mod render;
pub mod select;
pub mod step;
pub mod topics;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Compatibility, MissingIdPolicy, RegistryRestore, Strategy};
use crate::model::RegistrySnapshot;

pub use error::{IdMappingFileError, PlanError};
pub use ids::{IdHow, IdMapEntry, PinnedIds, TargetId, parse_id_mapping_file};
pub use step::{Action, Change, Counts, Request, Scope, SourceVersion, Step, StepKind};

/// The `format` value of every plan this version writes (v2: typed steps).
pub const PLAN_FORMAT: &str = "kafka-backup/plan/v2";

/// The planner's inputs besides the two snapshots, and the part of the
/// configuration a plan records (it is what the plan was made with).
///
/// Plain data (globs as text, the ID mapping file already parsed) so that the
/// plan file can hold it as it is and a reader needs no environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanOptions {
    /// `preserve`, `overwrite` or `skip`.
    pub strategy: Strategy,
    /// Register schemas under their source IDs (IMPORT mode).
    pub force_ids: bool,
    /// Record IDs will be rewritten through the ID map by `apply` (recorded,
    /// not used by the planner).
    pub rewrite_ids: bool,
    /// What `apply` does with a record whose ID is not in the map (recorded).
    pub missing_id_policy: MissingIdPolicy,
    /// Globs of backed-up subjects to restore (sorted, duplicates removed).
    pub subjects: Vec<String>,
    /// Globs of backed-up subjects to leave out (sorted, duplicates removed).
    pub exclude: Vec<String>,
    /// Pull in every version a selected version references, transitively,
    /// even when its subject is not selected.
    pub include_references: bool,
    /// Backed-up subject to target subject (qualified names).
    pub subject_mapping: BTreeMap<String, String>,
    /// Backed-up context to target context (`.prod` to `.dr`).
    pub context_mapping: BTreeMap<String, String>,
    /// Level set on every restored subject instead of the backed-up one.
    pub set_compatibility: Option<Compatibility>,
    /// Register the backup's history under a temporary level `NONE` (put
    /// back at the end). Off: registrations are checked against the level
    /// each subject is restored with, set before them, so that no level the
    /// backup did not have is ever loosened; a version that level refuses
    /// fails the apply.
    pub force_register: bool,
    /// Also restore the global (and per-context) level and mode when the
    /// backup's differ from the target's. Off by default: they govern
    /// subjects this restore does not touch.
    pub restore_global_settings: bool,
    /// IDs pinned by hand (`id_mapping_file`, already parsed).
    pub pinned_ids: PinnedIds,
    /// `restore.enabled`: off, the plan changes nothing in the registry (no
    /// step) and maps a source ID only where the target already holds the
    /// identical schema ([`plan`]). Written in a plan file only when off.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub restore_registry: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self::from_restore(&RegistryRestore::default(), PinnedIds::new())
    }
}

impl PlanOptions {
    /// The options of a `restore:` block; `pinned_ids` is the parsed content
    /// of its `id_mapping_file` (see [`parse_id_mapping_file`]), empty when
    /// there is none. `include_references` starts on; set it on the result.
    pub fn from_restore(restore: &RegistryRestore, pinned_ids: PinnedIds) -> Self {
        let globs = |list: &crate::config::OneOrMany<crate::config::Glob>| {
            let mut v: Vec<String> = list.iter().map(|g| g.as_str().to_owned()).collect();
            v.sort();
            v.dedup();
            v
        };
        Self {
            strategy: restore.strategy,
            force_ids: restore.force_ids,
            rewrite_ids: restore.rewrite_ids(),
            missing_id_policy: restore.missing_id_policy,
            subjects: globs(&restore.subjects),
            exclude: globs(&restore.exclude),
            include_references: true,
            subject_mapping: restore
                .subject_mapping
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
                .collect(),
            context_mapping: restore
                .context_mapping
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
                .collect(),
            set_compatibility: restore.set_compatibility,
            force_register: restore.force_register,
            restore_global_settings: restore.restore_global_settings,
            pinned_ids,
            restore_registry: restore.enabled,
        }
    }
}

/// A reviewed change set for one target registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// [`PLAN_FORMAT`].
    pub format: String,
    /// Version of the tool that made the plan.
    pub tool_version: String,
    /// [`RegistrySnapshot::fingerprint`] of the backup's registry state.
    pub backup_fingerprint: String,
    /// Fingerprint of the target state the plan was made against; `apply`
    /// refuses the plan when the target no longer has it.
    pub target_fingerprint: String,
    /// The options the plan was made with.
    pub options: PlanOptions,
    /// What the steps add, change and destroy: derived from the steps and
    /// the subject summaries ([`Totals::of`]), and checked to be so when a
    /// plan file is read.
    pub totals: Totals,
    /// Everything that must be settled by a person first; `apply` refuses a
    /// plan that has any.
    pub conflicts: Vec<Conflict>,
    /// The changes, in the order they run (each after its dependencies).
    pub steps: Vec<Step>,
    /// Per restored subject: what happens to it, in target name order.
    pub subjects: Vec<SubjectSummary>,
    /// Source context, then source ID, to where records carrying that ID
    /// point after the restore.
    pub id_mapping: BTreeMap<String, BTreeMap<u32, IdMapEntry>>,
    /// What the target registry supports, learned read-only when the plan
    /// was made; steps it cannot run are [`ConflictKind::Unsupported`]
    /// conflicts. Absent in a plan made without a live target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<capabilities::Capabilities>,
    /// The backed-up topics: which fields carry schema IDs, and the IDs
    /// their records carry that the map will not cover ([`topics`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<topics::TopicCheck>,
    /// The consumer groups' offsets in the target, translated to where the
    /// restored records land ([`groups`]); set by `apply` after the data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<groups::GroupPlan>,
    /// The `--to-timestamp` the group offsets were planned for; `apply`
    /// must restore with the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_timestamp: Option<i64>,
    /// SHA-256 of the plan file's bytes without this field; filled by
    /// [`crate::planfile::write`], checked by [`crate::planfile::read`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl Plan {
    /// Whether applying the plan would change the target (steps to run).
    pub fn has_changes(&self) -> bool {
        !self.steps.is_empty() || self.groups.iter().any(|g| g.changes() > 0)
    }

    /// Whether `apply` may run the plan: no conflicts, and no topic whose
    /// records carry IDs the map will not cover under `missing_id_policy: fail`.
    pub fn is_applicable(&self) -> bool {
        self.blocking() == 0
    }

    /// Conflicts plus topics that would stop the restore.
    pub fn blocking(&self) -> usize {
        self.conflicts.len() + self.topics.iter().filter(|t| t.fails()).count()
    }
}

/// Counts for the totals line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Versions registered (a replacement counts here and in `destroy`).
    pub add: usize,
    /// Subject settings whose final value differs, versions soft-deleted.
    pub change: usize,
    /// Target versions deleted.
    pub destroy: usize,
    /// Backed-up versions the target already has (or that `skip` leaves).
    pub unchanged: usize,
}

impl Totals {
    /// The totals `steps` and `subjects` make: each step's [`Step::counts`],
    /// and the backed-up versions the subjects leave as they are.
    pub fn of(steps: &[Step], subjects: &[SubjectSummary]) -> Self {
        let mut t = Totals {
            unchanged: subjects.iter().map(|s| s.unchanged.len()).sum(),
            ..Totals::default()
        };
        for step in steps {
            let c = step.counts();
            t.add += c.add;
            t.change += c.change;
            t.destroy += c.destroy;
        }
        t
    }
}

/// What kind of problem a conflict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// Backup and target hold different schemas at the same version.
    DivergedVersion,
    /// A forced or pinned ID is held in the target by other content.
    IdTaken,
    /// Two restored schemas would need the same target ID.
    IdClash,
    /// One source ID would point to two different target IDs.
    IdDisagreement,
    /// A target version to delete is referenced by one that stays.
    DeleteReferenced,
    /// A referenced version the restore leaves out differs in the target.
    ReferenceDiverged,
    /// A step the target registry cannot run ([`capabilities`]).
    Unsupported,
    /// A consumer group whose offsets the plan sets has members in the
    /// target cluster ([`groups`]).
    GroupLive,
}

/// Something the plan cannot decide on its own; listed item by item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conflict {
    /// The kind of problem.
    pub kind: ConflictKind,
    /// Target subject concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Version concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Schema ID concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// One line: what is wrong.
    pub message: String,
    /// The differences, one per line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// What to do about it.
    pub hint: String,
}

/// What happens to one restored subject as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectOutcome {
    /// Absent from the target: created.
    Created,
    /// Present and changed.
    Changed,
    /// Present and already equal (for what the strategy compares).
    Unchanged,
    /// Present, and `skip` leaves it alone.
    Skipped,
    /// Has a conflict.
    Conflict,
}

/// One restored subject in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectSummary {
    /// Name in the target.
    pub subject: String,
    /// Name in the backup.
    pub source_subject: String,
    /// Not selected, only taken because a selected version references it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pulled_in: bool,
    /// What happens to it.
    pub outcome: SubjectOutcome,
    /// Backed-up versions left as they are, with why (`v1: identical in target (id 1)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged: Vec<String>,
    /// Things a reviewer should know that need no step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Plans the restore of `backup` into `target` under `options`.
///
/// Errors are what makes any plan impossible (a reference cycle, a reference
/// that resolves nowhere, a schema that cannot be read, two subjects restored
/// under one name). Conflicts a person must settle are in [`Plan::conflicts`].
///
/// With `restore_registry` off the plan has no step: its ID map is what a
/// `preserve` restore would find already in the target (a source ID maps
/// to the target ID of the identical schema, in the restored subject),
/// every other source ID is unmapped ([`IdHow::NotRestored`]) and left to
/// the missing-ID policy. Forced and pinned IDs do not apply: nothing is
/// registered under them.
pub fn plan(
    backup: &RegistrySnapshot,
    target: &RegistrySnapshot,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    if !options.restore_registry {
        let looking = PlanOptions {
            strategy: Strategy::Preserve,
            force_ids: false,
            pinned_ids: PinnedIds::new(),
            restore_global_settings: false,
            restore_registry: true,
            ..options.clone()
        };
        let full = plan(backup, target, &looking)?;
        return Ok(read_only(full, options));
    }
    let selection = select::select(backup, target, options)?;
    let decisions = diff::decide(&selection, target, options)?;
    let built = order::build(&selection, &decisions, backup, target, options)?;
    Ok(Plan {
        groups: Vec::new(),
        to_timestamp: None,
        format: PLAN_FORMAT.to_owned(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        backup_fingerprint: backup.fingerprint(),
        target_fingerprint: target.fingerprint(),
        options: options.clone(),
        totals: Totals::of(&built.steps, &built.subjects),
        conflicts: built.conflicts,
        steps: built.steps,
        subjects: built.subjects,
        id_mapping: built.id_mapping,
        capabilities: None,
        topics: Vec::new(),
        digest: None,
    })
}

/// `full`, a `preserve` plan, reduced to what a restore that leaves the
/// registry alone can use: no step, no subject to change, the ID map's
/// entries the target already holds; the rest unmapped. Of the conflicts
/// only ID disagreements stay (one source ID held under two target IDs):
/// the others are about changes this restore does not make.
fn read_only(full: Plan, options: &PlanOptions) -> Plan {
    let id_mapping = full
        .id_mapping
        .into_iter()
        .map(|(ctx, ids)| {
            let ids = ids
                .into_iter()
                .map(|(id, mut entry)| {
                    if entry.how != IdHow::Existing {
                        entry.target_id = TargetId::Unmapped;
                        entry.how = IdHow::NotRestored;
                    }
                    (id, entry)
                })
                .collect();
            (ctx, ids)
        })
        .collect();
    Plan {
        options: options.clone(),
        totals: Totals::default(),
        conflicts: full
            .conflicts
            .into_iter()
            .filter(|c| c.kind == ConflictKind::IdDisagreement)
            .collect(),
        steps: Vec::new(),
        subjects: Vec::new(),
        id_mapping,
        ..full
    }
}
