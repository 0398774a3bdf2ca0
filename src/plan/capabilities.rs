//! What the target registry can do that a plan may need, and the steps it
//! cannot run. The capabilities are learned read-only when the plan is made
//! ([`crate::registry::capabilities`]) and recorded in the plan; a step the
//! target cannot run is a conflict then, naming the capability and the
//! configuration that avoids it, instead of a failure in the middle of
//! `apply` after other writes.

use serde::{Deserialize, Serialize};

use super::{Change, Conflict, ConflictKind, Plan};
use crate::config::SchemaType;
use crate::model::{DEFAULT_CONTEXT, schema_type_name, split_context};

/// What a target registry supports, as far as a plan needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// `PUT` and `DELETE /mode`: subject, context and global modes can be set.
    pub mode_writes: bool,
    /// IMPORT mode: registrations carrying their own ID and version.
    pub import: bool,
    /// Contexts: `:.ctx:` subjects live in ID spaces of their own.
    pub contexts: bool,
    /// The schema types whose references the registry accepts.
    pub references: Vec<SchemaType>,
    /// How they were learned, for people.
    pub learned: String,
}

impl Capabilities {
    /// Everything Confluent Schema Registry does.
    pub fn confluent(learned: &str) -> Self {
        Self {
            mode_writes: true,
            import: true,
            contexts: true,
            references: vec![SchemaType::Avro, SchemaType::Json, SchemaType::Protobuf],
            learned: learned.to_owned(),
        }
    }

    /// Karapace 3.16: no mode writes (so no IMPORT), no contexts, references
    /// for Protobuf only.
    pub fn karapace(learned: &str) -> Self {
        Self {
            mode_writes: false,
            import: false,
            contexts: false,
            references: vec![SchemaType::Protobuf],
            learned: learned.to_owned(),
        }
    }
}

/// One conflict per step of `plan` that a target with `caps` cannot run.
pub fn check(plan: &Plan, caps: &Capabilities) -> Vec<Conflict> {
    let mut out = Vec::new();
    let conflict =
        |subject: Option<&str>, version: Option<u32>, message: String, hint: &str| Conflict {
            kind: ConflictKind::Unsupported,
            subject: subject.map(str::to_owned),
            version,
            id: None,
            message,
            details: vec![format!("target registry: {}", caps.learned)],
            hint: hint.to_owned(),
        };
    for step in &plan.steps {
        let subject = step.subject();
        match &step.change {
            Change::SetMode { to, .. } if !caps.mode_writes => {
                let hint = if *to == crate::model::Mode::Import {
                    "leave `force_ids` and `id_mapping_file` out: the target then assigns the IDs and `rewrite_ids` moves the records to them"
                } else {
                    "make the subject writable in the target by hand, or restore into a registry with mode endpoints"
                };
                out.push(conflict(
                    subject,
                    None,
                    format!(
                        "step {} sets a mode ({to}), and the target registry takes no mode writes",
                        step.id
                    ),
                    hint,
                ));
            }
            Change::RestoreMode { scope, .. } if !caps.mode_writes => {
                out.push(conflict(
                    subject,
                    None,
                    format!(
                        "step {} sets the mode of {}, and the target registry takes no mode writes",
                        step.id,
                        scope.name()
                    ),
                    "restore into a registry with mode endpoints, or leave the subject out with `restore.exclude` (its mode cannot be restored there)",
                ));
            }
            Change::Register {
                subject: s,
                version,
                schema_type,
                references,
                import_id,
                ..
            } => {
                if import_id.is_some() && !caps.import {
                    out.push(conflict(
                        Some(s),
                        Some(*version),
                        format!(
                            "step {} registers under a chosen ID (IMPORT mode), which the target registry does not support",
                            step.id
                        ),
                        "leave `force_ids` and `id_mapping_file` out: the target then assigns the IDs and `rewrite_ids` moves the records to them",
                    ));
                }
                if !references.is_empty() && !caps.references.contains(schema_type) {
                    out.push(conflict(
                        Some(s),
                        Some(*version),
                        format!(
                            "step {} registers a {} schema with references, which the target registry refuses for that type",
                            step.id,
                            schema_type_name(*schema_type)
                        ),
                        "leave the subject (and the ones referencing it) out with `restore.exclude`, or restore into a registry that takes references of that type",
                    ));
                }
                let (context, _) = split_context(s);
                if context != DEFAULT_CONTEXT && !caps.contexts {
                    out.push(conflict(
                        Some(s),
                        Some(*version),
                        format!(
                            "step {} registers into context `{context}`, and the target registry has no contexts (the name would be a plain subject sharing the default ID space)",
                            step.id
                        ),
                        "map the context's subjects to plain names with `subject_mapping`, or restore into a registry with contexts",
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RegistrySnapshot;
    use crate::plan::{PlanOptions, plan};

    fn shifted(options: PlanOptions) -> Plan {
        let backup: RegistrySnapshot =
            serde_json::from_str(include_str!("../../fixtures/plan/shifted-ids/backup.json"))
                .unwrap();
        plan(&backup, &RegistrySnapshot::default(), &options).unwrap()
    }

    #[test]
    fn forced_ids_need_import_and_mode_writes() {
        let p = shifted(PlanOptions {
            force_ids: true,
            ..PlanOptions::default()
        });
        assert!(check(&p, &Capabilities::confluent("test")).is_empty());
        let found = check(&p, &Capabilities::karapace("test"));
        assert!(!found.is_empty());
        assert!(found.iter().all(|c| c.kind == ConflictKind::Unsupported));
        assert!(
            found
                .iter()
                .any(|c| c.message.contains("IMPORT mode") && c.hint.contains("`force_ids`")),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|c| c.message.contains("takes no mode writes"))
        );
    }

    #[test]
    fn a_plan_of_plain_registrations_runs_anywhere() {
        let p = shifted(PlanOptions::default());
        assert!(check(&p, &Capabilities::karapace("test")).is_empty());
    }
}
