//! The steps of a plan as they are made: [`Steps`] has one constructor per
//! kind of step, and they are the only place where a step's [`Change`] is
//! built. The request, the line shown and the totals derive from it
//! ([`crate::plan::step`]).

use std::collections::BTreeMap;

use super::registrations::Registration;
use crate::config::Compatibility;
use crate::model::{Mode, SchemaVersion};
use crate::plan::{Change, Scope, SourceVersion, Step};

/// Where a setting applies: one subject, one context, or the whole registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At<'s> {
    Subject(&'s str),
    Context(&'s str),
    Global,
}

impl At<'_> {
    fn scope(self) -> Scope {
        match self {
            At::Subject(s) => Scope::Subject(s.to_owned()),
            At::Context(c) => Scope::Context(c.to_owned()),
            At::Global => Scope::Global,
        }
    }
}

/// The steps so far, in run order. Steps are only made by the constructors
/// below, one per kind of step: they alone build the requests.
#[derive(Default)]
pub(super) struct Steps {
    pub(super) list: Vec<Step>,
    /// Per subject, its steps.
    pub(super) by_subject: BTreeMap<String, Vec<u32>>,
}

impl Steps {
    /// Adds a step doing `change` as the next one (its id is its position,
    /// from 1), its dependencies sorted and without duplicates.
    fn push(&mut self, change: Change, mut depends_on: Vec<u32>, why: String) -> u32 {
        let id = self.list.len() as u32 + 1;
        depends_on.sort_unstable();
        depends_on.dedup();
        let step = Step {
            id,
            change,
            depends_on,
            why,
        };
        if let Some(s) = step.subject() {
            self.by_subject.entry(s.to_owned()).or_default().push(id);
        }
        self.list.push(step);
        id
    }

    /// [`Change::SetMode`]: a temporary `to` on `subject`, now in `from`.
    pub(super) fn set_mode(
        &mut self,
        subject: &str,
        from: Mode,
        to: Mode,
        force: bool,
        depends_on: Vec<u32>,
        why: String,
    ) -> u32 {
        let change = Change::SetMode {
            subject: subject.to_owned(),
            from,
            to,
            force,
        };
        self.push(change, depends_on, why)
    }

    /// [`Change::SetCompatibility`]: the temporary level `NONE` on
    /// `subject` (now `from`), so that the backup's history is not rejected;
    /// `why` comes first in the explanation.
    pub(super) fn temporary_none(
        &mut self,
        subject: &str,
        from: Compatibility,
        depends_on: Vec<u32>,
        why: &str,
    ) -> u32 {
        let change = Change::SetCompatibility {
            subject: subject.to_owned(),
            from,
        };
        self.push(
            change,
            depends_on,
            format!(
                "{why}the backup's history must not be rejected (temporary, put back at the end)"
            ),
        )
    }

    /// [`Change::Register`]: `reg`, the backed-up `version` under its target
    /// subject, version and (in IMPORT mode) ID.
    pub(super) fn register(
        &mut self,
        reg: &Registration,
        version: &SchemaVersion,
        depends_on: Vec<u32>,
        why: String,
    ) -> u32 {
        let change = Change::Register {
            subject: reg.key.target.clone(),
            version: reg.target_version,
            source: SourceVersion {
                subject: reg.key.source.clone(),
                version: reg.key.version,
                id: version.id,
            },
            schema: version.schema.clone(),
            schema_type: version.schema_type,
            references: reg.references.clone(),
            import_id: reg.import_id,
            replace: reg.replace,
        };
        self.push(change, depends_on, why)
    }

    /// [`Change::SoftDeleteVersion`]: `subject` `version` soft-deleted as in
    /// the backup (`registered`: by this plan, for its ID).
    pub(super) fn soft_delete(
        &mut self,
        subject: &str,
        version: u32,
        registered: bool,
        depends_on: Vec<u32>,
        why: String,
    ) -> u32 {
        let change = Change::SoftDeleteVersion {
            subject: subject.to_owned(),
            version,
            registered,
        };
        self.push(change, depends_on, why)
    }

    /// [`Change::RestoreCompatibility`]: the final `after` level of a scope
    /// whose own level was `before`; `None` removes the scope's own level.
    pub(super) fn restore_compatibility(
        &mut self,
        at: At<'_>,
        before: Option<Compatibility>,
        after: Option<Compatibility>,
        temporary: bool,
        depends_on: Vec<u32>,
        why: String,
    ) -> u32 {
        let change = Change::RestoreCompatibility {
            scope: at.scope(),
            before,
            after,
            temporary,
        };
        self.push(change, depends_on, why)
    }

    /// [`Change::RestoreMode`]: the final `after` mode of a scope whose own
    /// mode was `before` (`temporary`: the one this plan set); `None`
    /// removes the scope's own mode.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn restore_mode(
        &mut self,
        at: At<'_>,
        before: Option<Mode>,
        after: Option<Mode>,
        temporary: Option<Mode>,
        force: bool,
        depends_on: Vec<u32>,
        why: String,
    ) -> u32 {
        let change = Change::RestoreMode {
            scope: at.scope(),
            before,
            after,
            temporary,
            force,
        };
        self.push(change, depends_on, why)
    }

    /// [`Change::DeleteSubject`] (of `versions`) or [`Change::DeleteVersion`]:
    /// the soft or `permanent` delete of `unit`, `replace`d or not.
    pub(super) fn delete(
        &mut self,
        unit: &Unit<'_>,
        versions: &[u32],
        replace: bool,
        permanent: bool,
        depends_on: Vec<u32>,
        why: String,
    ) -> u32 {
        let change = match *unit {
            Unit::Subject(s) => Change::DeleteSubject {
                subject: s.to_owned(),
                versions: versions.to_vec(),
                permanent,
                replace,
            },
            Unit::Version(s, n) => Change::DeleteVersion {
                subject: s.to_owned(),
                version: n,
                permanent,
                replace,
            },
        };
        self.push(change, depends_on, why)
    }

    /// The steps on `subject` so far.
    pub(super) fn of(&self, subject: &str) -> Vec<u32> {
        self.by_subject.get(subject).cloned().unwrap_or_default()
    }
}

/// What one delete removes from the target: a whole subject (when every
/// version of it goes) or one version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Unit<'a> {
    Subject(&'a str),
    Version(&'a str, u32),
}
