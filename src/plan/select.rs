//! Step 1 and 2 of the planner: which backed-up versions are restored, under
//! which names, and the graph of references between them.
//!
//! Subjects are chosen by the `subjects`/`exclude` globs, matched against the
//! backed-up (qualified) name. A selected version's references are then
//! followed: a reference resolves in the backup first (and, with
//! `include_references`, pulls that version in even if its subject is not
//! selected), then in the target under the restored name. A reference that
//! resolves nowhere, or a cycle, stops planning with the chain that leads to it.
//!
//! Names: `subject_mapping` is looked up with the qualified backed-up name and
//! its value is used as it is; a subject it does not name keeps its name, in
//! its context as mapped by `context_mapping`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use super::{PlanError, PlanOptions};
use crate::config::Glob;
use crate::graph::DependencyGraph;
use crate::model::{
    DEFAULT_CONTEXT, RegistrySnapshot, SchemaVersion, resolve_reference_subject, split_context,
};

/// A restored version: ordered by target subject, then version (the
/// backed-up name follows the target name one to one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Qualified subject in the target.
    pub target: String,
    /// Qualified subject in the backup.
    pub source: String,
    /// Version in the backup.
    pub version: u32,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}", self.source, self.version)
    }
}

/// Where a reference of a restored version points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTo<'a> {
    /// Another restored version.
    Node(Key),
    /// A version that is only in the target (or is in the backup but not
    /// restored: `backup` holds it then, to compare with the target's).
    External {
        /// Qualified target subject.
        subject: String,
        /// Target version.
        version: u32,
        /// The backed-up version of the same name, when the backup has it.
        backup: Option<&'a SchemaVersion>,
    },
}

/// A reference of a restored version, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRef<'a> {
    /// The import name, as the schema writes it.
    pub name: String,
    /// What it points to.
    pub to: RefTo<'a>,
}

/// One restored version.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    /// Its key.
    pub key: Key,
    /// The backed-up version.
    pub version: &'a SchemaVersion,
    /// Its references, in the schema's order.
    pub refs: Vec<ResolvedRef<'a>>,
}

/// One subject with at least one restored version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectInfo {
    /// Qualified name in the backup.
    pub source: String,
    /// Qualified name in the target.
    pub target: String,
    /// Chosen by the globs (else only pulled in by references).
    pub selected: bool,
}

/// What is restored, and in which order it can be registered.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    /// Every restored version.
    pub nodes: BTreeMap<Key, Node<'a>>,
    /// Subjects by target name.
    pub subjects: BTreeMap<String, SubjectInfo>,
    /// Versions in registration order: references first, then earlier
    /// versions of the same subject, ties by target subject and version.
    pub order: Vec<Key>,
    /// For each restored version, the restored versions that reference it.
    pub referrers: BTreeMap<Key, Vec<Key>>,
}

fn compile(key: &'static str, patterns: &[String]) -> Result<Vec<Glob>, PlanError> {
    patterns
        .iter()
        .map(|p| Glob::new(p).map_err(|reason| PlanError::InvalidGlob { key, reason }))
        .collect()
}

/// The name `source` is restored under.
pub fn target_name(source: &str, options: &PlanOptions) -> String {
    if let Some(mapped) = options.subject_mapping.get(source) {
        return mapped.clone();
    }
    let (context, name) = split_context(source);
    match options.context_mapping.get(context) {
        None => source.to_owned(),
        Some(to) if to == DEFAULT_CONTEXT => name.to_owned(),
        Some(to) => format!(":{to}:{name}"),
    }
}

fn resolve_version(snapshot: &RegistrySnapshot, subject: &str, version: i32) -> Option<u32> {
    if version >= 1 {
        let v = version as u32;
        return snapshot.version(subject, v).map(|_| v);
    }
    snapshot
        .subjects
        .get(subject)?
        .latest_live()
        .map(|v| v.version)
}

/// Chooses the versions to restore and orders them.
pub fn select<'a>(
    backup: &'a RegistrySnapshot,
    target: &RegistrySnapshot,
    options: &PlanOptions,
) -> Result<Selection<'a>, PlanError> {
    let include = compile("subjects", &options.subjects)?;
    let exclude = compile("exclude", &options.exclude)?;
    let selected: BTreeSet<&str> = backup
        .subjects
        .keys()
        .filter(|s| include.iter().any(|g| g.is_match(s)) && !exclude.iter().any(|g| g.is_match(s)))
        .map(String::as_str)
        .collect();

    let key_of = |source: &str, version: u32| Key {
        target: target_name(source, options),
        source: source.to_owned(),
        version,
    };
    let mut nodes: BTreeMap<Key, Node<'a>> = BTreeMap::new();
    let mut parent: BTreeMap<Key, Key> = BTreeMap::new();
    let mut queue: VecDeque<Key> = VecDeque::new();
    for name in &selected {
        for v in backup.subjects[*name].versions.values() {
            let key = key_of(name, v.version);
            queue.push_back(key.clone());
            nodes.insert(
                key.clone(),
                Node {
                    key,
                    version: v,
                    refs: Vec::new(),
                },
            );
        }
    }
    let chain = |parent: &BTreeMap<Key, Key>, key: &Key| {
        let mut links = vec![key.to_string()];
        let mut cur = key;
        while let Some(p) = parent.get(cur) {
            links.push(p.to_string());
            cur = p;
        }
        links.reverse();
        links.join(" -> ")
    };
    while let Some(key) = queue.pop_front() {
        let version = nodes[&key].version;
        let mut refs = Vec::with_capacity(version.references.len());
        for r in &version.references {
            let source = resolve_reference_subject(&key.source, &r.subject);
            let in_backup = resolve_version(backup, &source, r.version);
            let restorable = options.include_references || selected.contains(source.as_str());
            let to = match in_backup {
                Some(v) if restorable => {
                    let to = key_of(&source, v);
                    if !nodes.contains_key(&to) {
                        parent.insert(to.clone(), key.clone());
                        queue.push_back(to.clone());
                        nodes.insert(
                            to.clone(),
                            Node {
                                key: to.clone(),
                                version: &backup.subjects[&source].versions[&v],
                                refs: Vec::new(),
                            },
                        );
                    }
                    RefTo::Node(to)
                }
                _ => {
                    let subject = target_name(&source, options);
                    match resolve_version(target, &subject, r.version) {
                        Some(version) => RefTo::External {
                            subject,
                            version,
                            backup: in_backup.map(|v| &backup.subjects[&source].versions[&v]),
                        },
                        None => {
                            let hint = if in_backup.is_some() {
                                format!(
                                    "`{source}` is in the backup but not selected: set `include_references: true` or add it to `subjects`"
                                )
                            } else {
                                format!(
                                    "back `{source}` up too (`backup.include_references: true`), or register it in the target first"
                                )
                            };
                            return Err(PlanError::UnresolvedReference {
                                chain: format!(
                                    "{} -> {source} v{}",
                                    chain(&parent, &key),
                                    r.version
                                ),
                                subject: source,
                                version: r.version,
                                hint,
                            });
                        }
                    }
                }
            };
            refs.push(ResolvedRef {
                name: r.name.clone(),
                to,
            });
        }
        nodes.get_mut(&key).expect("queued keys are nodes").refs = refs;
    }

    // names: one backed-up subject per target name
    let mut subjects: BTreeMap<String, SubjectInfo> = BTreeMap::new();
    for key in nodes.keys() {
        match subjects.get(&key.target) {
            Some(info) if info.source != key.source => {
                let (first, second) = if info.source < key.source {
                    (info.source.clone(), key.source.clone())
                } else {
                    (key.source.clone(), info.source.clone())
                };
                return Err(PlanError::NameCollision {
                    first,
                    second,
                    target: key.target.clone(),
                });
            }
            Some(_) => {}
            None => {
                subjects.insert(
                    key.target.clone(),
                    SubjectInfo {
                        source: key.source.clone(),
                        target: key.target.clone(),
                        selected: selected.contains(key.source.as_str()),
                    },
                );
            }
        }
    }

    // references alone first, so that a cycle is reported as references
    let mut graph: DependencyGraph<Key> = DependencyGraph::new();
    let mut referrers: BTreeMap<Key, Vec<Key>> = BTreeMap::new();
    for node in nodes.values() {
        graph.add_node(node.key.clone());
        for r in &node.refs {
            if let RefTo::Node(to) = &r.to {
                graph.add_edge(node.key.clone(), to.clone());
                referrers
                    .entry(to.clone())
                    .or_default()
                    .push(node.key.clone());
            }
        }
    }
    if let Some(cycle) = graph.find_cycle() {
        return Err(PlanError::Cycle {
            chain: join(&cycle),
        });
    }
    // then each version after the subject's previous one: versions are numbered in order
    let mut previous: Option<&Key> = None;
    for key in nodes.keys() {
        if let Some(p) = previous
            && p.target == key.target
        {
            graph.add_edge(key.clone(), p.clone());
        }
        previous = Some(key);
    }
    let order = graph.topo_order().map_err(|cycle| PlanError::Cycle {
        chain: format!(
            "{} (each version is registered after the subject's earlier ones)",
            join(&cycle)
        ),
    })?;
    for list in referrers.values_mut() {
        list.sort();
        list.dedup();
    }
    Ok(Selection {
        nodes,
        subjects,
        order,
        referrers,
    })
}

fn join(keys: &[Key]) -> String {
    keys.iter()
        .map(Key::to_string)
        .collect::<Vec<_>>()
        .join(" -> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> PlanOptions {
        PlanOptions {
            subject_mapping: [("orders".to_owned(), "restored-orders".to_owned())].into(),
            context_mapping: [
                (".prod".to_owned(), ".dr".to_owned()),
                (".flat".to_owned(), ".".to_owned()),
            ]
            .into(),
            ..PlanOptions::default()
        }
    }

    #[test]
    fn names_map_by_subject_then_by_context() {
        let o = options();
        assert_eq!(target_name("orders", &o), "restored-orders");
        assert_eq!(target_name("payments", &o), "payments");
        assert_eq!(target_name(":.prod:orders", &o), ":.dr:orders");
        assert_eq!(target_name(":.flat:orders", &o), "orders");
        assert_eq!(target_name(":.other:orders", &o), ":.other:orders");
    }
}
