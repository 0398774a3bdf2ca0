//! The registry half of `verify`.
//!
//! Versions: the planner, run again against the live target with the same
//! options, decides each restored version by meaning (type, canonical text,
//! references). After a complete restore every version is unchanged, the plan
//! has no step and no conflict, and every ID in its map is known; anything
//! else is listed with the plan's own reason.
//!
//! Levels and modes are compared directly, not through that plan: under
//! `preserve` and `skip` the planner keeps a level the target set on a subject
//! itself, so a level changed after the restore plans no step. Each restored
//! subject's own level must be `set_compatibility` or the backup's, and its
//! own mode the backup's (none set is a value too).
//!
//! IDs: for each mapped ID, `GET /schemas/ids/{id}` on the target must serve
//! the schema the source ID stood for in the backup (type, canonical text,
//! reference names), with the references of the target version holding it.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::{Area, Difference};
use crate::canonical::canonical;
use crate::config::Strategy;
use crate::model::{
    Compatibility, Mode, RegistrySnapshot, SchemaVersion, compatibility_name, context_of,
    resolve_reference_subject, schema_type_name,
};
use crate::plan::diff::{self, Decision};
use crate::plan::{ConflictKind, Plan, PlanError, StepKind, TargetId, select};
use crate::registry::{RegistryApi, RegistryError, SchemaById};

/// What the target serves for each mapped ID: (target context, target ID)
/// to the answer, or why there is none (the ID is not found).
pub type ServedIds = BTreeMap<(String, u32), Result<SchemaById, String>>;

/// Asks the target for every ID the plan maps to, `concurrency` at once. An
/// ID the target does not know is an answer (a difference), not an error;
/// any other failure is.
pub async fn fetch_served(
    api: &dyn RegistryApi,
    plan: &Plan,
    concurrency: usize,
) -> Result<ServedIds, RegistryError> {
    let mut wanted: Vec<(String, u32)> = plan
        .id_mapping
        .values()
        .flat_map(|ids| ids.values())
        .filter_map(|e| match e.target_id {
            TargetId::Known(t) => Some((e.target_context.clone(), t)),
            _ => None,
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    futures::stream::iter(wanted)
        .map(|(context, id)| async move {
            match api.schema_by_id(id, &context).await {
                Ok(s) => Ok(((context, id), Ok(s))),
                Err(e @ RegistryError::SchemaNotFound(_)) => {
                    Ok(((context, id), Err(e.to_string())))
                }
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
}

/// The registry half of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistryCheck {
    /// Restored subjects (selected, or pulled in by references).
    pub subjects: usize,
    /// Backed-up versions the restore covers.
    pub versions_checked: usize,
    /// Of those, in the target as backed up.
    pub versions_same: usize,
    /// Entries of the ID map (source IDs of restored versions).
    pub ids: usize,
    /// Of those, mapped to a target ID.
    pub ids_mapped: usize,
    /// Of the mapped ones, serving the source ID's schema.
    pub ids_same: usize,
    /// Subject levels and modes compared.
    pub settings_checked: usize,
    /// Of those, as in the backup (or `set_compatibility`).
    pub settings_same: usize,
    /// What differs.
    pub differences: Vec<Difference>,
}

impl RegistryCheck {
    /// Differences of one area.
    pub fn count(&self, area: Area) -> usize {
        self.differences.iter().filter(|d| d.area == area).count()
    }
}

/// Compares the target with the backup. `plan` is the restore planned again
/// against `target` (same options as the restore); `served` holds the
/// target's answers for the IDs the plan maps to ([`fetch_served`]).
pub fn check(
    backup: &RegistrySnapshot,
    target: &RegistrySnapshot,
    plan: &Plan,
    served: &ServedIds,
) -> Result<RegistryCheck, PlanError> {
    let options = &plan.options;
    let selection = select::select(backup, target, options)?;
    let decisions = diff::decide(&selection, target, options)?;
    let mut out = RegistryCheck {
        subjects: selection.subjects.len(),
        versions_checked: selection.nodes.len(),
        ..Default::default()
    };

    // versions: what the planner would still do is what is missing or different
    for (key, decision) in &decisions.by_node {
        match decision {
            Decision::Unchanged { .. } | Decision::Skipped { matched: Some(_) } => {
                out.versions_same += 1
            }
            Decision::Skipped { matched: None } => out.differences.push(
                Difference::new(
                    Area::Versions,
                    format!(
                        "`{}` v{}: the target's subject does not hold this version as backed up (`skip` leaves a subject the target has as it is)",
                        key.target, key.version
                    ),
                )
                .subject(Some(&key.target))
                .version(Some(key.version)),
            ),
            // the steps and conflicts below say why
            _ => {}
        }
    }
    for step in &plan.steps {
        let area = match step.kind() {
            StepKind::Register | StepKind::DeleteVersion | StepKind::DeleteSubject => {
                Area::Versions
            }
            // scopes above subjects; a subject's own settings are compared below
            StepKind::RestoreMode | StepKind::RestoreCompatibility if step.subject().is_none() => {
                Area::Settings
            }
            _ => continue,
        };
        out.differences.push(
            Difference::new(area, step.line())
                .subject(step.subject())
                .version(step.version()),
        );
    }
    for c in &plan.conflicts {
        let area = match c.kind {
            ConflictKind::IdTaken | ConflictKind::IdClash | ConflictKind::IdDisagreement => {
                Area::SchemaIds
            }
            _ => Area::Versions,
        };
        let mut message = c.message.clone();
        for line in &c.details {
            message.push_str("\n    ");
            message.push_str(line);
        }
        let mut d = Difference::new(area, message)
            .subject(c.subject.as_deref())
            .version(c.version);
        d.id = c.id;
        out.differences.push(d);
    }

    // levels and modes of the restored subjects
    for info in selection.subjects.values().filter(|i| i.selected) {
        let Some(source) = backup.subjects.get(&info.source) else {
            continue;
        };
        // a subject the target lacks is a difference already (its versions)
        let Some(target_subject) = target
            .subjects
            .get(&info.target)
            .filter(|t| !t.versions.is_empty())
        else {
            continue;
        };
        let (found_compat, found_mode) = (target_subject.compatibility, target_subject.mode);
        let (expected_compat, why) = match options.set_compatibility {
            Some(level) => (Some(level), "`set_compatibility`"),
            None => (source.compatibility, "the backup's"),
        };
        out.settings_checked += 2;
        let mut same = 2;
        if found_compat != expected_compat {
            same -= 1;
            out.differences.push(
                Difference::new(
                    Area::Settings,
                    format!(
                        "compatibility of `{}`: {} in the target, {why} is {}{}",
                        info.target,
                        show_compat(found_compat),
                        show_compat(expected_compat),
                        kept_hint(options.strategy)
                    ),
                )
                .subject(Some(&info.target)),
            );
        }
        if found_mode != source.mode {
            same -= 1;
            out.differences.push(
                Difference::new(
                    Area::Settings,
                    format!(
                        "mode of `{}`: {} in the target, the backup's is {}{}",
                        info.target,
                        show_mode(found_mode),
                        show_mode(source.mode),
                        kept_hint(options.strategy)
                    ),
                )
                .subject(Some(&info.target)),
            );
        }
        out.settings_same += same;
    }

    // IDs: each mapped one serves the source ID's schema
    for (context, ids) in &plan.id_mapping {
        for (&source_id, entry) in ids {
            out.ids += 1;
            let TargetId::Known(target_id) = entry.target_id else {
                out.differences.push(
                    Difference::new(
                        Area::SchemaIds,
                        format!(
                            "schema ID {source_id} (`{}`) has no ID in the target: {}",
                            entry.used_by.join("`, `"),
                            entry.target_id
                        ),
                    )
                    .id(source_id),
                );
                continue;
            };
            out.ids_mapped += 1;
            let problem = id_problem(
                backup,
                target,
                context,
                source_id,
                &entry.target_context,
                target_id,
                served.get(&(entry.target_context.clone(), target_id)),
            );
            match problem {
                None => out.ids_same += 1,
                Some(problem) => {
                    let subject = entry.used_by.first().map(|u| {
                        u.rsplit_once(" v")
                            .map_or(u.as_str(), |(s, _)| s)
                            .to_owned()
                    });
                    out.differences.push(
                        Difference::new(
                            Area::SchemaIds,
                            format!(
                                "schema ID {source_id} -> {target_id} (`{}`): {problem}",
                                entry.used_by.join("`, `")
                            ),
                        )
                        .subject(subject.as_deref())
                        .id(source_id),
                    );
                }
            }
        }
    }
    Ok(out)
}

fn kept_hint(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Overwrite => "",
        _ => " (if the target set it before the restore, `preserve` and `skip` keep it)",
    }
}

fn show_compat(c: Option<Compatibility>) -> &'static str {
    c.map_or("(not set)", compatibility_name)
}

fn show_mode(m: Option<Mode>) -> &'static str {
    m.map_or("(not set)", Mode::as_str)
}

/// Why `target_id` does not stand for what `source_id` stood for, if it does not.
fn id_problem(
    backup: &RegistrySnapshot,
    target: &RegistrySnapshot,
    source_context: &str,
    source_id: u32,
    target_context: &str,
    target_id: u32,
    served: Option<&Result<SchemaById, String>>,
) -> Option<String> {
    let source = holder(backup, source_context, source_id)?;
    let served = match served {
        None => return Some("not asked for (internal error)".to_owned()),
        Some(Err(e)) => return Some(format!("the target does not serve it: {e}")),
        Some(Ok(s)) => s,
    };
    if served.schema_type != source.schema_type {
        return Some(format!(
            "the target serves a {} schema, the backup's is {}",
            schema_type_name(served.schema_type),
            schema_type_name(source.schema_type)
        ));
    }
    let canonical_of = |text: &str| canonical(source.schema_type, text).map_err(|e| e.to_string());
    match (canonical_of(&source.schema), canonical_of(&served.schema)) {
        (Err(e), _) => return Some(format!("the backed-up schema cannot be read: {e}")),
        (_, Err(e)) => return Some(format!("the served schema cannot be read: {e}")),
        (Ok(b), Ok(t)) if b != t => {
            let key = |canonical: String| crate::canonical::ContentKey {
                schema_type: source.schema_type,
                canonical,
                references: Vec::new(),
            };
            return Some(format!(
                "the target serves another schema: {}",
                diff::differences(&key(b), &key(t)).join("; ")
            ));
        }
        _ => {}
    }
    let names = |refs: &[crate::model::Reference]| -> Vec<String> {
        refs.iter().map(|r| r.name.clone()).collect()
    };
    if names(&source.references) != names(&served.references) {
        return Some(format!(
            "references differ: backup [{}], served [{}]",
            names(&source.references).join(", "),
            names(&served.references).join(", ")
        ));
    }
    // the planner compared the target version holding the ID with the backup,
    // references resolved; the ID must serve that version's references
    let Some(kept) = holder(target, target_context, target_id) else {
        return Some("no subject in the target holds this ID".to_owned());
    };
    let resolved = |refs: &[crate::model::Reference]| -> Vec<(String, String, i32)> {
        refs.iter()
            .map(|r| {
                (
                    r.name.clone(),
                    resolve_reference_subject(&kept.subject, &r.subject),
                    r.version,
                )
            })
            .collect()
    };
    if resolved(&kept.references) != resolved(&served.references) {
        return Some(format!(
            "the ID serves other references than `{}` v{} holds",
            kept.subject, kept.version
        ));
    }
    None
}

/// A version of `snapshot` holding `id` in `context`, live ones first.
fn holder<'a>(snapshot: &'a RegistrySnapshot, context: &str, id: u32) -> Option<&'a SchemaVersion> {
    let mut found: Vec<&SchemaVersion> = snapshot
        .subjects
        .values()
        .flat_map(|s| s.versions.values())
        .filter(|v| v.id == id && context_of(&v.subject) == context)
        .collect();
    found.sort_by_key(|v| v.deleted);
    found.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Reference, SchemaType, SubjectState};
    use crate::plan::{PlanOptions, plan};

    fn avro(name: &str, fields: &str) -> String {
        format!(r#"{{"type":"record","name":"{name}","fields":[{fields}]}}"#)
    }

    fn version(subject: &str, v: u32, id: u32, schema: &str) -> SchemaVersion {
        SchemaVersion {
            subject: subject.into(),
            version: v,
            id,
            schema_type: SchemaType::Avro,
            schema: schema.into(),
            references: vec![],
            deleted: false,
        }
    }

    fn snapshot(versions: &[SchemaVersion]) -> RegistrySnapshot {
        let mut s = RegistrySnapshot::default();
        s.contexts.insert(".".into());
        for v in versions {
            s.subjects
                .entry(v.subject.clone())
                .or_insert_with(|| SubjectState::new(&v.subject))
                .versions
                .insert(v.version, v.clone());
        }
        s
    }

    /// The backup: `orders` v1 (id 1), v2 (id 5, FULL), `payments` v1 (id 2).
    fn backup() -> RegistrySnapshot {
        let mut s = snapshot(&[
            version("orders", 1, 1, &avro("O", "")),
            version("orders", 2, 5, &avro("O", r#"{"name":"a","type":"long"}"#)),
            version("payments", 1, 2, &avro("P", "")),
        ]);
        s.subjects.get_mut("orders").unwrap().compatibility = Some(Compatibility::Full);
        s
    }

    /// The target after a complete restore: IDs 1, 2, 3, whitespace changed.
    fn restored() -> RegistrySnapshot {
        let mut s = snapshot(&[
            version("orders", 1, 1, &avro("O", "").replace(',', ", ")),
            version("orders", 2, 2, &avro("O", r#"{"name":"a","type":"long"}"#)),
            version("payments", 1, 3, &avro("P", "")),
        ]);
        s.subjects.get_mut("orders").unwrap().compatibility = Some(Compatibility::Full);
        s
    }

    fn served_by(target: &RegistrySnapshot) -> ServedIds {
        target
            .subjects
            .values()
            .flat_map(|s| s.versions.values())
            .map(|v| {
                (
                    (".".to_owned(), v.id),
                    Ok(SchemaById {
                        schema_type: v.schema_type,
                        schema: v.schema.clone(),
                        references: v.references.clone(),
                    }),
                )
            })
            .collect()
    }

    fn run(target: &RegistrySnapshot, served: &ServedIds) -> RegistryCheck {
        let p = plan(&backup(), target, &PlanOptions::default()).unwrap();
        check(&backup(), target, &p, served).unwrap()
    }

    #[test]
    fn a_complete_restore_matches() {
        let target = restored();
        let c = run(&target, &served_by(&target));
        assert_eq!(c.differences, vec![]);
        assert_eq!(
            (
                c.versions_checked,
                c.versions_same,
                c.ids,
                c.ids_mapped,
                c.ids_same
            ),
            (3, 3, 3, 3, 3)
        );
        assert_eq!((c.settings_checked, c.settings_same), (4, 4));
    }

    #[test]
    fn an_empty_target_lacks_every_version_and_id() {
        let target = RegistrySnapshot::default();
        let c = run(&target, &ServedIds::new());
        assert_eq!(c.versions_same, 0);
        assert_eq!(c.count(Area::Versions), 3, "{:#?}", c.differences);
        assert_eq!(c.count(Area::SchemaIds), 3, "{:#?}", c.differences);
        assert_eq!(
            c.settings_checked, 0,
            "missing subjects have no settings to compare"
        );
        assert!(
            c.differences[0].message.contains("+ register orders v1"),
            "{:#?}",
            c.differences
        );
        assert!(
            c.differences.iter().any(|d| d.message
                == "schema ID 5 (`orders v2`) has no ID in the target: known after apply"),
            "{:#?}",
            c.differences
        );
    }

    #[test]
    fn a_level_changed_after_the_restore_is_found_though_the_plan_keeps_it() {
        let mut target = restored();
        target.subjects.get_mut("orders").unwrap().compatibility = Some(Compatibility::None);
        target.subjects.get_mut("payments").unwrap().mode = Some(Mode::ReadOnly);
        // the planner itself sees nothing to do under `preserve`
        let p = plan(&backup(), &target, &PlanOptions::default()).unwrap();
        assert!(p.steps.is_empty(), "{:#?}", p.steps);
        let c = check(&backup(), &target, &p, &served_by(&target)).unwrap();
        let messages: Vec<&str> = c.differences.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "compatibility of `orders`: NONE in the target, the backup's is FULL (if the target set it before the restore, `preserve` and `skip` keep it)",
                "mode of `payments`: READONLY in the target, the backup's is (not set) (if the target set it before the restore, `preserve` and `skip` keep it)"
            ]
        );
        assert_eq!(c.differences[0].subject.as_deref(), Some("orders"));
        assert_eq!((c.settings_checked, c.settings_same), (4, 2));
    }

    #[test]
    fn an_id_serving_other_content_or_nothing_is_named() {
        let target = restored();
        let mut served = served_by(&target);
        served.insert(
            (".".into(), 2),
            Ok(SchemaById {
                schema_type: SchemaType::Avro,
                schema: avro("O", r#"{"name":"b","type":"long"}"#),
                references: vec![],
            }),
        );
        served.insert((".".into(), 3), Err("schema not found".into()));
        let c = run(&target, &served);
        assert_eq!(c.ids_same, 1);
        let messages: Vec<&str> = c.differences.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(
            messages[0]
                .starts_with("schema ID 2 -> 3 (`payments v1`): the target does not serve it"),
            "{messages:#?}"
        );
        assert!(
            messages[1].starts_with(
                "schema ID 5 -> 2 (`orders v2`): the target serves another schema: schema (canonical form) differs at character"
            ),
            "{messages:#?}"
        );
        assert_eq!(c.differences[1].subject.as_deref(), Some("orders"));
        assert_eq!(c.differences[1].id, Some(5));

        // other reference names
        let mut served = served_by(&target);
        if let Some(Ok(s)) = served.get_mut(&(".".to_owned(), 1)) {
            s.references.push(Reference {
                name: "x".into(),
                subject: "x".into(),
                version: 1,
            });
        }
        let c = run(&target, &served);
        assert!(
            c.differences[0]
                .message
                .contains("references differ: backup [], served [x]"),
            "{:#?}",
            c.differences
        );
    }

    #[test]
    fn a_version_that_differs_is_a_conflict_and_an_extra_one_under_overwrite_a_step() {
        let mut target = restored();
        target
            .subjects
            .get_mut("payments")
            .unwrap()
            .versions
            .get_mut(&1)
            .unwrap()
            .schema = avro("P", r#"{"name":"z","type":"int"}"#);
        let c = run(&target, &served_by(&target));
        assert_eq!(c.versions_same, 2);
        assert!(
            c.differences.iter().any(|d| d
                .message
                .starts_with("`payments` v1 differs between backup (id 2) and target (id 3)")),
            "{:#?}",
            c.differences
        );

        let mut target = restored();
        target
            .subjects
            .get_mut("payments")
            .unwrap()
            .versions
            .insert(
                2,
                version("payments", 2, 9, &avro("P", r#"{"name":"z","type":"int"}"#)),
            );
        let options = PlanOptions {
            strategy: Strategy::Overwrite,
            ..PlanOptions::default()
        };
        let p = plan(&backup(), &target, &options).unwrap();
        let c = check(&backup(), &target, &p, &served_by(&target)).unwrap();
        assert!(
            c.differences
                .iter()
                .any(|d| d.area == Area::Versions && d.message.contains("payments v2")),
            "{:#?}",
            c.differences
        );
    }
}
