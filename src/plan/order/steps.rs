//! The steps of a plan as they are made: [`Steps`] has one constructor per
//! kind of step, and they are the only place where a step's request (method,
//! path, body) is built.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::registrations::Registration;
use crate::config::Compatibility;
use crate::model::{Mode, SchemaType, SchemaVersion, compatibility_name, schema_type_name};
use crate::plan::{Action, Request, RequestBody, SourceVersion, Step, StepKind};

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn seg(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// Where a setting applies: one subject, one context, or the whole registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At<'s> {
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
pub(super) struct Steps {
    pub(super) list: Vec<Step>,
    /// Per subject, its steps.
    pub(super) by_subject: BTreeMap<String, Vec<u32>>,
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
    pub(super) fn set_mode(
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
    pub(super) fn temporary_none(
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
    pub(super) fn register(
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
    pub(super) fn delete_version(
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
    pub(super) fn restore_compatibility(
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
    pub(super) fn restore_mode(
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
    pub(super) fn delete(
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

fn permanent_query(permanent: bool) -> &'static str {
    if permanent { "?permanent=true" } else { "" }
}
