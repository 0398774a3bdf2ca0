//! The topics half of a plan, decided before anything is written: for each
//! backed-up topic, which fields carry schema IDs ([`crate::restore::fields`])
//! and which of the IDs they carry (as the backup counted them) the restore's
//! ID map will not cover, with the cause, and what the topic's
//! `missing_id_policy` then does: `fail` makes the plan refused (nothing is
//! written), `skip` and `passthrough` are shown with their record counts.
//! Pure: the backup's snapshot and manifest and the plan's ID map in.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Plan;
use crate::config::{MissingIdPolicy, RegistryRestore};
use crate::manifest::{FieldIds, Manifest};
use crate::model::{self, DEFAULT_CONTEXT, RegistrySnapshot};
use crate::restore::TopicJob;

/// One backed-up topic, as the restore will treat it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicCheck {
    /// The backed-up topic.
    pub topic: String,
    /// Where it is restored.
    pub target: String,
    pub key: FieldCheck,
    pub value: FieldCheck,
    pub missing_id_policy: MissingIdPolicy,
}

/// One field of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldCheck {
    /// Its schema IDs are rewritten.
    pub rewrite: bool,
    pub reason: String,
    /// IDs its records carry that the ID map will not cover (rewritten
    /// fields only), in ID order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncovered: Vec<Uncovered>,
}

/// A schema ID records carry that the restore cannot map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uncovered {
    pub id: i32,
    /// Records of the topic carrying it in this field.
    pub records: u64,
    /// Why the map will not have it.
    pub cause: String,
}

impl TopicCheck {
    /// Records (at most; a record may carry two) that meet the missing-ID policy.
    pub fn uncovered_records(&self) -> u64 {
        [&self.key, &self.value]
            .iter()
            .flat_map(|f| &f.uncovered)
            .map(|u| u.records)
            .sum()
    }

    /// The restore would stop on this topic (`fail` with uncovered IDs).
    pub fn fails(&self) -> bool {
        self.missing_id_policy == MissingIdPolicy::Fail && self.uncovered_records() > 0
    }
}

/// Checks every job's topic against the plan's ID map. `manifest` gives the
/// IDs the backup saw (format 2 on; none before), `backup` the snapshot the
/// plan was made from, `unknown` the IDs the registry did not serve at
/// backup time.
pub fn check(
    plan: &Plan,
    jobs: &[TopicJob],
    backup: &RegistrySnapshot,
    manifest: &Manifest,
    restore: &RegistryRestore,
) -> Vec<TopicCheck> {
    let covered: BTreeSet<i32> = plan
        .id_mapping
        .get(DEFAULT_CONTEXT)
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(|id| i32::try_from(*id).ok())
        .collect();
    let unknown: BTreeSet<i32> = manifest
        .schema_registry
        .as_ref()
        .map(|r| r.unknown_ids.iter().copied().collect())
        .unwrap_or_default();
    let holders = holders(backup);
    let recorded = manifest.format_version >= 2;
    let mut out: Vec<TopicCheck> = jobs
        .iter()
        .map(|job| {
            let seen = job.manifest.schema_ids();
            let field = |ids: &FieldIds, decision: Option<&crate::restore::fields::Decision>| {
                let (rewrite, reason) = match decision {
                    Some(d) => (d.rewrite, d.reason.clone()),
                    None => (false, "record IDs are not rewritten".to_owned()),
                };
                let uncovered = if rewrite && recorded {
                    ids.ids
                        .iter()
                        .filter(|(id, _)| !covered.contains(id))
                        .map(|(&id, &records)| Uncovered {
                            id,
                            records,
                            cause: cause(id, &holders, &unknown, restore, plan),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                FieldCheck {
                    rewrite,
                    reason,
                    uncovered,
                }
            };
            let decisions = job.fields.as_ref();
            TopicCheck {
                topic: job.source.clone(),
                target: job.target.clone(),
                key: field(&seen.key, decisions.map(|d| &d[0])),
                value: field(&seen.value, decisions.map(|d| &d[1])),
                missing_id_policy: job.transform.policy,
            }
        })
        .collect();
    out.sort_by(|a, b| a.topic.cmp(&b.topic));
    out
}

/// Source ID (default context) to the subject versions holding it.
fn holders(backup: &RegistrySnapshot) -> BTreeMap<i32, Vec<(String, u32)>> {
    let mut out: BTreeMap<i32, Vec<(String, u32)>> = BTreeMap::new();
    for (name, subject) in &backup.subjects {
        if model::split_context(name).0 != DEFAULT_CONTEXT {
            continue;
        }
        for v in subject.versions.values() {
            if let Ok(id) = i32::try_from(v.id) {
                out.entry(id).or_default().push((name.clone(), v.version));
            }
        }
    }
    out
}

/// Why the map will not hold `id`: the real cause, so that the hint can say
/// which setting to change.
fn cause(
    id: i32,
    holders: &BTreeMap<i32, Vec<(String, u32)>>,
    unknown: &BTreeSet<i32>,
    restore: &RegistryRestore,
    plan: &Plan,
) -> String {
    if unknown.contains(&id) {
        return "the source registry did not serve it when the backup was taken (`allow_unknown_ids`)"
            .to_owned();
    }
    let Some(versions) = holders.get(&id) else {
        return "the backup does not hold it: the source registry did not serve it when the backup was taken, which took the field's leading bytes for data (not every record framed, no subject named after the topic), or the backup predates the IDs being pulled in (`include_versions: latest`, `schema_types` or soft-deleted versions left out)".to_owned();
    };
    let (subject, version) = &versions[0];
    let selected = restore.subjects.iter().any(|g| g.is_match(subject))
        && !restore.exclude.iter().any(|g| g.is_match(subject));
    if !selected {
        return format!(
            "it is `{subject}` v{version}, which `restore.subjects` / `restore.exclude` leave out"
        );
    }
    if plan
        .subjects
        .iter()
        .any(|s| &s.source_subject == subject && s.outcome == super::SubjectOutcome::Skipped)
    {
        return format!(
            "it is `{subject}` v{version}, which `strategy: skip` leaves alone (the target has the subject)"
        );
    }
    format!("it is `{subject}` v{version}, which the plan does not restore")
}
