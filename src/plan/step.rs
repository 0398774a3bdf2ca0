//! One step of a plan, typed. What a step changes in the target registry is
//! its [`Change`]; everything else a reader or the applier needs is derived
//! from it: the HTTP request ([`Step::request`]), the one line it is shown as
//! ([`Step::line`]), its symbol ([`Step::action`]) and what it counts for in
//! the totals ([`Step::counts`]). A plan file therefore cannot show one thing
//! and do another: the only free text is [`Step::why`], the planner's
//! explanation, shown after what the step does.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::config::{Compatibility, SchemaType};
use crate::model::{Mode, Reference, compatibility_name, schema_type_name};

/// What a step is shown as (Terraform's symbols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `+`
    Create,
    /// `~`
    Update,
    /// `-`
    Delete,
    /// `-/+`: deleted, then registered again from the backup.
    Replace,
}

impl Action {
    /// `+`, `~`, `-` or `-/+`.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Replace => "-/+",
        }
    }
}

/// The registry operation a step performs, as the applier groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A temporary mode, so that the writes that follow are accepted.
    SetMode,
    /// A temporary compatibility level (`NONE`), so that history is not rejected.
    SetCompatibility,
    /// `POST /subjects/{s}/versions` (with `id` and `version` in IMPORT mode).
    Register,
    /// `DELETE /subjects/{s}/versions/{v}`, soft or `permanent=true`.
    DeleteVersion,
    /// `DELETE /subjects/{s}`, soft or `permanent=true`.
    DeleteSubject,
    /// The final mode of a scope (the backup's, or the target's previous one).
    RestoreMode,
    /// The final level of a scope (the backup's, `set_compatibility`, or the
    /// target's previous one).
    RestoreCompatibility,
}

/// Where a compatibility level or mode applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The registry's global setting.
    Global,
    /// A context's setting (`.dr`).
    Context(String),
    /// A subject's own setting (target name).
    Subject(String),
}

/// The backed-up version a registration comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceVersion {
    /// Subject as named in the backup.
    pub subject: String,
    /// Version in the backup.
    pub version: u32,
    /// Schema ID in the backup.
    pub id: u32,
}

fn is_avro(t: &SchemaType) -> bool {
    *t == SchemaType::Avro
}

fn avro() -> SchemaType {
    SchemaType::Avro
}

/// What one step changes in the target registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// A temporary mode on a subject, so that the writes that follow are
    /// accepted; put back by a [`Change::RestoreMode`] at the end.
    SetMode {
        subject: String,
        /// The subject's effective mode before.
        from: Mode,
        to: Mode,
        /// `?force=true`: IMPORT on a subject that has live versions.
        force: bool,
    },
    /// The temporary level `NONE` on a subject, so that the backup's history
    /// is not rejected; put back by a [`Change::RestoreCompatibility`].
    SetCompatibility {
        subject: String,
        /// The subject's effective level before.
        from: Compatibility,
    },
    /// A backed-up version registered under its target subject.
    Register {
        subject: String,
        /// The version it becomes in the target.
        version: u32,
        /// Where it comes from in the backup.
        source: SourceVersion,
        /// Schema text, exactly as backed up.
        schema: String,
        #[serde(default = "avro", skip_serializing_if = "is_avro")]
        schema_type: SchemaType,
        /// References, renamed to target subjects and versions, order kept.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        references: Vec<Reference>,
        /// IMPORT mode: the ID (and `version`) it is registered under.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        import_id: Option<u32>,
        /// A target version of this number was deleted to make room (`-/+`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replace: bool,
    },
    /// A target version deleted, soft or `permanent`.
    DeleteVersion {
        subject: String,
        version: u32,
        permanent: bool,
        /// Deleted to be registered again from the backup (`-/+`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replace: bool,
    },
    /// Every version of a target subject deleted, soft or `permanent`.
    DeleteSubject {
        subject: String,
        /// The target versions it removes.
        versions: Vec<u32>,
        permanent: bool,
        /// Deleted to be registered again from the backup (`-/+`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replace: bool,
    },
    /// A version soft-deleted because it is soft-deleted in the backup.
    SoftDeleteVersion {
        subject: String,
        version: u32,
        /// Registered by this plan for its ID, then soft-deleted (no change
        /// to what the target served before).
        registered: bool,
    },
    /// The final compatibility level of a scope; `after: None` removes the
    /// scope's own level.
    RestoreCompatibility {
        scope: Scope,
        /// The scope's own level before the plan.
        before: Option<Compatibility>,
        after: Option<Compatibility>,
        /// The plan set `NONE` on it for the restore.
        temporary: bool,
    },
    /// The final mode of a scope; `after: None` removes the scope's own mode.
    RestoreMode {
        scope: Scope,
        /// The scope's own mode before the plan.
        before: Option<Mode>,
        after: Option<Mode>,
        /// The mode the plan set on it for the restore.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temporary: Option<Mode>,
        /// `?force=true`: IMPORT on a scope that has subjects.
        force: bool,
    },
}

/// The HTTP request a step sends (no host, no credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    /// `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// Path and query, subject names percent-encoded as one segment.
    pub path: String,
    /// JSON body, when the request has one.
    pub body: Option<serde_json::Value>,
}

/// What a step counts for in the plan's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

/// One change to the target registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// 1-based, in run order; dependencies refer to it.
    pub id: u32,
    /// What it changes; everything else is derived from it.
    pub change: Change,
    /// Steps that must have succeeded first.
    pub depends_on: Vec<u32>,
    /// Why the planner makes it, for people (shown after what it does).
    pub why: String,
}

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn seg(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// A level as plans show it; `(not set)` for none.
pub(crate) fn show_compat(c: Option<Compatibility>) -> String {
    c.map_or_else(
        || "(not set)".to_owned(),
        |c| compatibility_name(c).to_owned(),
    )
}

/// A mode as plans show it; `(not set)` for none.
pub(crate) fn show_mode(m: Option<Mode>) -> String {
    m.map_or_else(|| "(not set)".to_owned(), |m| m.as_str().to_owned())
}

fn query(flag: &str, on: bool) -> String {
    if on {
        format!("?{flag}=true")
    } else {
        String::new()
    }
}

impl Scope {
    /// The scope's end of a `/config` or `/mode` path: `/orders-value`,
    /// `/%3A.ctx%3A`, or nothing for the global scope.
    pub fn path(&self) -> String {
        match self {
            Scope::Subject(s) => format!("/{}", seg(s)),
            Scope::Context(c) => format!("/{}", seg(&format!(":{c}:"))),
            Scope::Global => String::new(),
        }
    }

    /// As the plan shows it: the subject, `context .dr` or `global`.
    pub fn name(&self) -> String {
        match self {
            Scope::Subject(s) => s.clone(),
            Scope::Context(c) => format!("context {c}"),
            Scope::Global => "global".to_owned(),
        }
    }

    /// As the registry API names it: the subject, `:.dr:`, or `None` for global.
    pub fn api(&self) -> Option<String> {
        match self {
            Scope::Subject(s) => Some(s.clone()),
            Scope::Context(c) => Some(format!(":{c}:")),
            Scope::Global => None,
        }
    }
}

impl Step {
    /// How the applier groups it.
    pub fn kind(&self) -> StepKind {
        match &self.change {
            Change::SetMode { .. } => StepKind::SetMode,
            Change::SetCompatibility { .. } => StepKind::SetCompatibility,
            Change::Register { .. } => StepKind::Register,
            Change::DeleteVersion { .. } | Change::SoftDeleteVersion { .. } => {
                StepKind::DeleteVersion
            }
            Change::DeleteSubject { .. } => StepKind::DeleteSubject,
            Change::RestoreCompatibility { .. } => StepKind::RestoreCompatibility,
            Change::RestoreMode { .. } => StepKind::RestoreMode,
        }
    }

    /// Its symbol: `+` a registration, `-` a delete, `-/+` either half of a
    /// replacement, `~` every other change.
    pub fn action(&self) -> Action {
        match &self.change {
            Change::Register { replace: true, .. }
            | Change::DeleteVersion { replace: true, .. }
            | Change::DeleteSubject { replace: true, .. } => Action::Replace,
            Change::Register { .. } => Action::Create,
            Change::DeleteVersion { .. } | Change::DeleteSubject { .. } => Action::Delete,
            _ => Action::Update,
        }
    }

    /// The scope it writes to.
    pub fn scope(&self) -> Scope {
        match &self.change {
            Change::RestoreCompatibility { scope, .. } | Change::RestoreMode { scope, .. } => {
                scope.clone()
            }
            _ => Scope::Subject(self.subject().expect("a subject's step").to_owned()),
        }
    }

    /// The target subject it writes to, if it is a subject's.
    pub fn subject(&self) -> Option<&str> {
        match &self.change {
            Change::SetMode { subject, .. }
            | Change::SetCompatibility { subject, .. }
            | Change::Register { subject, .. }
            | Change::DeleteVersion { subject, .. }
            | Change::DeleteSubject { subject, .. }
            | Change::SoftDeleteVersion { subject, .. }
            | Change::RestoreCompatibility {
                scope: Scope::Subject(subject),
                ..
            }
            | Change::RestoreMode {
                scope: Scope::Subject(subject),
                ..
            } => Some(subject),
            Change::RestoreCompatibility { .. } | Change::RestoreMode { .. } => None,
        }
    }

    /// The context of a context-level setting.
    pub fn context(&self) -> Option<&str> {
        match &self.change {
            Change::RestoreCompatibility {
                scope: Scope::Context(c),
                ..
            }
            | Change::RestoreMode {
                scope: Scope::Context(c),
                ..
            } => Some(c),
            _ => None,
        }
    }

    /// The target version registered or deleted.
    pub fn version(&self) -> Option<u32> {
        match &self.change {
            Change::Register { version, .. }
            | Change::DeleteVersion { version, .. }
            | Change::SoftDeleteVersion { version, .. } => Some(*version),
            _ => None,
        }
    }

    /// Where a registration comes from in the backup.
    pub fn source(&self) -> Option<&SourceVersion> {
        match &self.change {
            Change::Register { source, .. } => Some(source),
            _ => None,
        }
    }

    /// What it does, in a few words: `register orders-value v3`,
    /// `delete subject old-value (hard)`, `compatibility global (not set) -> FULL`.
    pub fn summary(&self) -> String {
        let soft_hard = |permanent: bool| if permanent { "hard" } else { "soft" };
        match &self.change {
            Change::SetMode {
                subject, from, to, ..
            } => format!("set mode {subject} {from} -> {to}"),
            Change::SetCompatibility { subject, from } => format!(
                "set compatibility {subject} {} -> NONE",
                compatibility_name(*from)
            ),
            Change::Register {
                subject, version, ..
            } => format!("register {subject} v{version}"),
            Change::DeleteVersion {
                subject,
                version,
                permanent,
                ..
            } => format!("delete {subject} v{version} ({})", soft_hard(*permanent)),
            Change::DeleteSubject {
                subject, permanent, ..
            } => format!("delete subject {subject} ({})", soft_hard(*permanent)),
            Change::SoftDeleteVersion {
                subject, version, ..
            } => format!("soft-delete {subject} v{version}"),
            Change::RestoreCompatibility {
                scope,
                before,
                after,
                temporary,
            } => {
                let from = if *temporary {
                    "NONE".to_owned()
                } else {
                    show_compat(*before)
                };
                format!(
                    "compatibility {} {from} -> {}",
                    scope.name(),
                    show_compat(*after)
                )
            }
            Change::RestoreMode {
                scope,
                before,
                after,
                temporary,
                ..
            } => {
                let from = temporary.map_or_else(|| show_mode(*before), |m| m.as_str().to_owned());
                format!("mode {} {from} -> {}", scope.name(), show_mode(*after))
            }
        }
    }

    /// The line people read: `+ register orders-value v3: missing in target`.
    pub fn line(&self) -> String {
        format!(
            "{} {}: {}",
            self.action().symbol(),
            self.summary(),
            self.why
        )
    }

    /// What it counts for: a registration adds a version; a hard delete
    /// destroys every version it removes (its soft half counts nothing); a
    /// final setting that differs from the target's own before, or a live
    /// version soft-deleted, is a change. Temporary settings and their
    /// put-back to what was there count nothing.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        match &self.change {
            Change::Register { .. } => c.add = 1,
            Change::DeleteVersion {
                permanent: true, ..
            } => c.destroy = 1,
            Change::DeleteSubject {
                permanent: true,
                versions,
                ..
            } => c.destroy = versions.len(),
            Change::SoftDeleteVersion {
                registered: false, ..
            } => c.change = 1,
            Change::RestoreCompatibility { before, after, .. } if before != after => c.change = 1,
            Change::RestoreMode { before, after, .. } if before != after => c.change = 1,
            _ => {}
        }
        c
    }

    /// The request it sends.
    pub fn request(&self) -> Request {
        use serde_json::json;
        let put = |path: String, body: serde_json::Value| Request {
            method: "PUT",
            path,
            body: Some(body),
        };
        let delete = |path: String| Request {
            method: "DELETE",
            path,
            body: None,
        };
        match &self.change {
            Change::SetMode {
                subject, to, force, ..
            } => put(
                format!("/mode/{}{}", seg(subject), query("force", *force)),
                json!({ "mode": to }),
            ),
            Change::SetCompatibility { subject, .. } => put(
                format!("/config/{}", seg(subject)),
                json!({ "compatibility": Compatibility::None }),
            ),
            Change::Register {
                subject,
                version,
                schema,
                schema_type,
                references,
                import_id,
                ..
            } => {
                let mut body = serde_json::Map::new();
                body.insert("schema".into(), json!(schema));
                if *schema_type != SchemaType::Avro {
                    body.insert("schemaType".into(), json!(schema_type_name(*schema_type)));
                }
                if !references.is_empty() {
                    body.insert("references".into(), json!(references));
                }
                if let Some(id) = import_id {
                    body.insert("id".into(), json!(id));
                    body.insert("version".into(), json!(version));
                }
                Request {
                    method: "POST",
                    path: format!("/subjects/{}/versions", seg(subject)),
                    body: Some(serde_json::Value::Object(body)),
                }
            }
            Change::DeleteVersion {
                subject,
                version,
                permanent,
                ..
            } => delete(format!(
                "/subjects/{}/versions/{version}{}",
                seg(subject),
                query("permanent", *permanent)
            )),
            Change::DeleteSubject {
                subject, permanent, ..
            } => delete(format!(
                "/subjects/{}{}",
                seg(subject),
                query("permanent", *permanent)
            )),
            Change::SoftDeleteVersion {
                subject, version, ..
            } => delete(format!("/subjects/{}/versions/{version}", seg(subject))),
            Change::RestoreCompatibility { scope, after, .. } => {
                let path = format!("/config{}", scope.path());
                match after {
                    Some(c) => put(path, json!({ "compatibility": c })),
                    None => delete(path),
                }
            }
            Change::RestoreMode {
                scope,
                after,
                force,
                ..
            } => {
                let path = format!("/mode{}{}", scope.path(), query("force", *force));
                match after {
                    Some(m) => put(path, json!({ "mode": m })),
                    None => delete(path),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(change: Change) -> Step {
        Step {
            id: 1,
            change,
            depends_on: Vec::new(),
            why: "because".into(),
        }
    }

    #[test]
    fn a_permanent_delete_shows_and_counts_as_one() {
        let hard = step(Change::DeleteSubject {
            subject: "orders-value".into(),
            versions: vec![1, 2],
            permanent: true,
            replace: false,
        });
        assert_eq!(hard.line(), "- delete subject orders-value (hard): because");
        assert_eq!(hard.counts().destroy, 2);
        let r = hard.request();
        assert_eq!(
            (r.method, r.path.as_str()),
            ("DELETE", "/subjects/orders-value?permanent=true")
        );
        // its soft half counts nothing: the versions are destroyed once
        let soft = step(Change::DeleteSubject {
            subject: "orders-value".into(),
            versions: vec![1, 2],
            permanent: false,
            replace: false,
        });
        assert_eq!(soft.counts(), Counts::default());
        assert_eq!(soft.request().path, "/subjects/orders-value");
    }

    #[test]
    fn settings_show_what_they_change_and_count_only_a_real_change() {
        let put_back = step(Change::RestoreCompatibility {
            scope: Scope::Subject("a b".into()),
            before: None,
            after: None,
            temporary: true,
        });
        assert_eq!(
            put_back.line(),
            "~ compatibility a b NONE -> (not set): because"
        );
        assert_eq!(put_back.counts(), Counts::default());
        assert_eq!(put_back.request().path, "/config/a%20b");
        assert_eq!(put_back.request().method, "DELETE");
        let global = step(Change::RestoreMode {
            scope: Scope::Context(".dr".into()),
            before: None,
            after: Some(Mode::Import),
            temporary: None,
            force: true,
        });
        assert_eq!(global.summary(), "mode context .dr (not set) -> IMPORT");
        assert_eq!(global.counts().change, 1);
        let r = global.request();
        assert_eq!(r.path, "/mode/%3A.dr%3A?force=true");
        assert_eq!(r.body, Some(serde_json::json!({"mode": "IMPORT"})));
    }

    #[test]
    fn an_import_registration_sends_its_id_and_version() {
        let reg = step(Change::Register {
            subject: "s".into(),
            version: 3,
            source: SourceVersion {
                subject: "s".into(),
                version: 2,
                id: 7,
            },
            schema: "{}".into(),
            schema_type: SchemaType::Protobuf,
            references: Vec::new(),
            import_id: Some(7),
            replace: true,
        });
        assert_eq!(reg.action(), Action::Replace);
        assert_eq!(reg.line(), "-/+ register s v3: because");
        assert_eq!(
            reg.request().body,
            Some(
                serde_json::json!({"schema": "{}", "schemaType": "PROTOBUF", "id": 7, "version": 3})
            )
        );
    }

    #[test]
    fn a_step_reads_back_as_written_and_refuses_unknown_fields() {
        let s = step(Change::SoftDeleteVersion {
            subject: "s".into(),
            version: 2,
            registered: false,
        });
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Step>(&text).unwrap(), s);
        let extra = text.replace(
            "\"registered\":false",
            "\"registered\":false,\"permanent\":true",
        );
        assert!(serde_json::from_str::<Step>(&extra).is_err(), "{extra}");
    }
}
