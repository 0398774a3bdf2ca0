//! Step 3 of the planner: per subject and strategy, what each restored
//! version needs, and which target versions `overwrite` deletes.
//!
//! Versions are compared by meaning ([`ContentKey`]): type, canonical text,
//! references (order kept). A version is unchanged only if it matches and
//! every restored version it references is unchanged too.
//!
//! - `preserve` keeps what the target has and adds what it lacks; a version
//!   that differs at the same number is a conflict.
//! - `overwrite` makes the subject equal to the backup. The registry numbers
//!   versions itself, so from the first version that differs (or is missing
//!   below a version the target has) every target version is deleted (soft,
//!   then hard) and the backup's are registered again; target versions the
//!   backup does not have are deleted. Shown as `-/+` and `-`.
//! - `skip` leaves every subject the target has (any version, soft-deleted
//!   ones included) and restores only the others.
//!
//! Subjects that are only pulled in by references are never changed
//! destructively: `preserve` applies to them whatever the strategy.

use std::collections::{BTreeMap, HashMap};

use super::select::{Key, RefTo, Selection};
use super::{Conflict, ConflictKind, PlanError, PlanOptions};
use crate::canonical::{ContentKey, canonical};
use crate::config::Strategy;
use crate::model::{RegistrySnapshot, SchemaVersion, resolve_reference_subject, schema_type_name};

/// What one restored version needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The target holds the same schema at `target_version`.
    Unchanged {
        /// Target version holding it.
        target_version: u32,
        /// Its ID in the target.
        target_id: u32,
        /// Why it counts as unchanged, for the summary.
        why: String,
    },
    /// `skip` leaves the subject; `matched` is the target's identical version, if any.
    Skipped {
        /// `(version, id)` of the identical target version.
        matched: Option<(u32, u32)>,
    },
    /// Differs from the target's version of the same number; see the conflicts.
    Conflict,
    /// Registered from the backup.
    Register {
        /// The target's version of this number is deleted first (`-/+`).
        replace: bool,
        /// Why, for the step's line.
        reason: String,
    },
    /// Same schema, live in the target but soft-deleted in the backup
    /// (`overwrite`): soft-deleted in the target.
    SoftDelete {
        /// Target version.
        target_version: u32,
        /// Its ID.
        target_id: u32,
    },
}

impl Decision {
    /// The target version that holds this schema without a registration.
    pub fn kept_target(&self) -> Option<(u32, u32)> {
        match self {
            Decision::Unchanged {
                target_version,
                target_id,
                ..
            }
            | Decision::SoftDelete {
                target_version,
                target_id,
            } => Some((*target_version, *target_id)),
            Decision::Skipped { matched } => *matched,
            Decision::Conflict | Decision::Register { .. } => None,
        }
    }
}

/// Pass one's result.
#[derive(Debug, Clone, Default)]
pub struct Decisions {
    /// Per restored version.
    pub by_node: BTreeMap<Key, Decision>,
    /// Target versions to delete (soft, then hard), per target subject; the
    /// flag says the backup registers the same number again (`-/+`).
    pub deletions: BTreeMap<String, BTreeMap<u32, bool>>,
    /// Conflicts found so far.
    pub conflicts: Vec<Conflict>,
    /// Per target subject, things a reviewer should know.
    pub notes: BTreeMap<String, Vec<String>>,
    /// Canonical text of each restored version.
    pub canonical: BTreeMap<Key, String>,
    /// Content key of every target version, by (subject, version).
    pub target_keys: HashMap<(String, u32), ContentKey>,
}

/// The content key of a target version (references resolved in its context).
pub fn target_content_key(v: &SchemaVersion) -> Result<ContentKey, PlanError> {
    Ok(ContentKey {
        schema_type: v.schema_type,
        canonical: canonical(v.schema_type, &v.schema).map_err(|e| PlanError::MalformedSchema {
            side: "target",
            subject: v.subject.clone(),
            version: v.version,
            reason: e.to_string(),
        })?,
        references: v
            .references
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    resolve_reference_subject(&v.subject, &r.subject),
                    i64::from(r.version),
                )
            })
            .collect(),
    })
}

/// The lines that say how two content keys differ.
pub fn differences(backup: &ContentKey, target: &ContentKey) -> Vec<String> {
    let mut out = Vec::new();
    if backup.schema_type != target.schema_type {
        out.push(format!(
            "type: backup {}, target {}",
            schema_type_name(backup.schema_type),
            schema_type_name(target.schema_type)
        ));
    }
    if backup.canonical != target.canonical {
        let at = backup
            .canonical
            .char_indices()
            .zip(target.canonical.chars())
            .find(|((_, a), b)| a != b)
            .map_or(
                backup.canonical.len().min(target.canonical.len()),
                |((i, _), _)| i,
            );
        let excerpt = |s: &str| {
            let mut start = at.saturating_sub(20).min(s.len());
            while !s.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (at + 40).min(s.len());
            while !s.is_char_boundary(end) {
                end += 1;
            }
            let mut e = String::new();
            if start > 0 {
                e.push('…');
            }
            e.push_str(&s[start..end]);
            if end < s.len() {
                e.push('…');
            }
            e
        };
        out.push(format!(
            "schema (canonical form) differs at character {}: backup `{}`, target `{}`",
            at + 1,
            excerpt(&backup.canonical),
            excerpt(&target.canonical)
        ));
    }
    if backup.references != target.references {
        let list = |refs: &[(String, String, i64)]| {
            if refs.is_empty() {
                return "none".to_owned();
            }
            refs.iter()
                .map(|(n, s, v)| format!("{n} = {s} v{v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "references: backup [{}], target [{}]",
            list(&backup.references),
            list(&target.references)
        ));
    }
    out
}

/// Decides every restored version, in registration order.
pub fn decide(
    selection: &Selection<'_>,
    target: &RegistrySnapshot,
    options: &PlanOptions,
) -> Result<Decisions, PlanError> {
    let mut d = Decisions::default();
    for subject in target.subjects.values() {
        for v in subject.versions.values() {
            d.target_keys
                .insert((subject.name.clone(), v.version), target_content_key(v)?);
        }
    }
    for (key, node) in &selection.nodes {
        let v = node.version;
        let text = canonical(v.schema_type, &v.schema).map_err(|e| PlanError::MalformedSchema {
            side: "backup",
            subject: key.source.clone(),
            version: key.version,
            reason: e.to_string(),
        })?;
        d.canonical.insert(key.clone(), text);
    }

    // first version number from which `overwrite` replaces everything, per target subject
    let mut truncated: BTreeMap<String, u32> = BTreeMap::new();
    let mut reported_refs: BTreeMap<(String, u32), ()> = BTreeMap::new();
    for key in &selection.order {
        let node = &selection.nodes[key];
        let info = &selection.subjects[&key.target];
        let bv = node.version;
        let existing = target
            .subjects
            .get(&key.target)
            .filter(|s| !s.versions.is_empty());

        // the backup version in target terms, and the restored references that change
        let mut changing = Vec::new();
        let mut references = Vec::with_capacity(node.refs.len());
        for r in &node.refs {
            match &r.to {
                RefTo::Node(to) => match d.by_node.get(to).and_then(Decision::kept_target) {
                    Some((tv, _)) => {
                        references.push((r.name.clone(), to.target.clone(), i64::from(tv)))
                    }
                    None => {
                        changing.push(format!(
                            "references `{to}`, which is not the same in the target"
                        ));
                        references.push((r.name.clone(), to.target.clone(), i64::from(to.version)));
                    }
                },
                RefTo::External {
                    subject,
                    version,
                    backup,
                } => {
                    references.push((r.name.clone(), subject.clone(), i64::from(*version)));
                    if let Some(b) = backup
                        && reported_refs
                            .insert((subject.clone(), *version), ())
                            .is_none()
                    {
                        let tk = &d.target_keys[&(subject.clone(), *version)];
                        let same = b.schema_type == tk.schema_type
                            && canonical(b.schema_type, &b.schema).ok().as_ref()
                                == Some(&tk.canonical);
                        if !same {
                            d.conflicts.push(Conflict {
                                kind: ConflictKind::ReferenceDiverged,
                                subject: Some(key.target.clone()),
                                version: Some(key.version),
                                id: None,
                                message: format!(
                                    "`{key}` references `{subject}` v{version}, which is not restored and differs between backup and target"
                                ),
                                details: vec![format!(
                                    "the restored schema would point to the target's `{subject}` v{version}, not the backed-up one"
                                )],
                                hint: "set `include_references: true` or select the referenced subject".to_owned(),
                            });
                        }
                    }
                }
            }
        }
        let ours = ContentKey {
            schema_type: bv.schema_type,
            canonical: d.canonical[key].clone(),
            references,
        };
        let same_as = |tv: &SchemaVersion| {
            changing.is_empty() && d.target_keys[&(key.target.clone(), tv.version)] == ours
        };
        let strategy = if info.selected {
            options.strategy
        } else {
            Strategy::Preserve
        };

        let decision = match (strategy, existing) {
            (_, None) => Decision::Register {
                replace: false,
                reason: if target.subjects.contains_key(&key.target) {
                    "missing in target".to_owned()
                } else {
                    "new subject".to_owned()
                },
            },
            (Strategy::Skip, Some(subject)) => Decision::Skipped {
                matched: subject
                    .versions
                    .get(&key.version)
                    .filter(|tv| same_as(tv))
                    .map(|tv| (tv.version, tv.id)),
            },
            (Strategy::Preserve, Some(subject)) => match subject.versions.get(&key.version) {
                Some(tv) if same_as(tv) => {
                    if tv.deleted != bv.deleted {
                        let (b, t) = if bv.deleted {
                            ("soft-deleted", "live")
                        } else {
                            ("live", "soft-deleted")
                        };
                        d.notes.entry(key.target.clone()).or_default().push(format!(
                            "v{}: {b} in the backup, {t} in the target (preserve keeps the target's)",
                            key.version
                        ));
                    }
                    Decision::Unchanged {
                        target_version: tv.version,
                        target_id: tv.id,
                        why: format!("identical in target (id {})", tv.id),
                    }
                }
                Some(tv) => {
                    let mut details =
                        differences(&ours, &d.target_keys[&(key.target.clone(), tv.version)]);
                    details.extend(changing.iter().cloned());
                    d.conflicts.push(Conflict {
                        kind: ConflictKind::DivergedVersion,
                        subject: Some(key.target.clone()),
                        version: Some(key.version),
                        id: Some(tv.id),
                        message: format!(
                            "`{}` v{} differs between backup (id {}) and target (id {})",
                            key.target, key.version, bv.id, tv.id
                        ),
                        details,
                        hint: "preserve never replaces a version: restore with `strategy: overwrite` to replace it, or `subject_mapping` to restore under another name".to_owned(),
                    });
                    Decision::Conflict
                }
                None => match subject
                    .versions
                    .values()
                    .find(|tv| !tv.deleted && same_as(tv))
                {
                    Some(tv) => Decision::Unchanged {
                        target_version: tv.version,
                        target_id: tv.id,
                        why: format!("identical in target as v{} (id {})", tv.version, tv.id),
                    },
                    None => Decision::Register {
                        replace: false,
                        reason: "missing in target".to_owned(),
                    },
                },
            },
            (Strategy::Overwrite, Some(subject)) => {
                if let Some(&from) = truncated.get(&key.target) {
                    Decision::Register {
                        replace: subject.versions.contains_key(&key.version),
                        reason: format!(
                            "registered again: the versions from v{from} on are replaced to keep the backup's numbering"
                        ),
                    }
                } else {
                    match subject.versions.get(&key.version) {
                        Some(tv) if same_as(tv) && tv.deleted == bv.deleted => {
                            Decision::Unchanged {
                                target_version: tv.version,
                                target_id: tv.id,
                                why: format!("identical in target (id {})", tv.id),
                            }
                        }
                        Some(tv) if same_as(tv) && bv.deleted => Decision::SoftDelete {
                            target_version: tv.version,
                            target_id: tv.id,
                        },
                        Some(tv) => {
                            truncated.insert(key.target.clone(), key.version);
                            let why = if same_as(tv) {
                                "soft-deleted in target, live in the backup".to_owned()
                            } else {
                                let mut lines = differences(
                                    &ours,
                                    &d.target_keys[&(key.target.clone(), tv.version)],
                                );
                                lines.extend(changing.iter().cloned());
                                format!(
                                    "differs from the target's (id {}): {}",
                                    tv.id,
                                    lines.join("; ")
                                )
                            };
                            Decision::Register {
                                replace: true,
                                reason: why,
                            }
                        }
                        None if subject.versions.keys().any(|&n| n > key.version) => {
                            truncated.insert(key.target.clone(), key.version);
                            Decision::Register {
                                replace: false,
                                reason: "missing in target; the later target versions are replaced to keep the backup's numbering".to_owned(),
                            }
                        }
                        None => Decision::Register {
                            replace: false,
                            reason: "missing in target".to_owned(),
                        },
                    }
                }
            }
        };
        d.by_node.insert(key.clone(), decision);
    }

    // what `overwrite` deletes: replaced versions, and versions the backup does not have
    for info in selection.subjects.values() {
        if !info.selected || options.strategy != Strategy::Overwrite {
            continue;
        }
        let Some(subject) = target.subjects.get(&info.target) else {
            continue;
        };
        let from = truncated.get(&info.target).copied();
        let backup_has = |n: u32| {
            selection.nodes.contains_key(&Key {
                target: info.target.clone(),
                source: info.source.clone(),
                version: n,
            })
        };
        for &n in subject.versions.keys() {
            let replaced = from.is_some_and(|f| n >= f);
            if replaced || !backup_has(n) {
                d.deletions
                    .entry(info.target.clone())
                    .or_default()
                    .insert(n, replaced && backup_has(n));
            }
        }
    }
    Ok(d)
}
