//! The schema IDs the backed-up records carry, against the registry snapshot:
//! [`missing_ids`] finds the IDs of framed keys and values that the snapshot
//! does not hold, [`pull_in`] asks the registry for each (`GET
//! /schemas/ids/{id}` and `/schemas/ids/{id}/versions?deleted=true`) and adds
//! the subject versions holding it, soft-deleted ones included, with their
//! references; what the registry does not serve is returned as unknown.
//!
//! Records carry IDs of the registry's default context (what a serializer
//! was answered), so only that context's IDs count as held.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt, stream};

use super::registry::PulledInEntry;
use crate::manifest::{Field, FieldIds, TopicManifest};
use crate::model::{self, DEFAULT_CONTEXT, RegistrySnapshot, SchemaVersion, SubjectState};
use crate::registry::{RegistryApi, RegistryError, VersionRef};

/// Records of one topic-partition field that carry an ID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Carrier {
    pub topic: String,
    pub partition: i32,
    pub field: Field,
    /// How many records carry the ID there.
    pub records: u64,
}

impl std::fmt::Display for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` partition {} ({}): {} record(s)",
            self.topic, self.partition, self.field, self.records
        )
    }
}

/// The schema IDs of the default context that `snapshot` holds.
pub fn held_ids(snapshot: &RegistrySnapshot) -> BTreeSet<i64> {
    snapshot
        .subjects
        .iter()
        .filter(|(name, _)| model::split_context(name).0 == DEFAULT_CONTEXT)
        .flat_map(|(_, s)| s.versions.values().map(|v| i64::from(v.id)))
        .collect()
}

/// At most this many distinct IDs a snapshot lacks are looked up for one
/// field of a topic without its own subject: a serializer writes a handful
/// of schema versions, while raw keys (account numbers, random UUIDs) that
/// start with `0x00` read as ever new "IDs".
pub const MAX_LOOKUPS_PER_FIELD: usize = 256;

/// Whether a topic's field holds schema-framed records by what the backup
/// knows: `snapshot` has the field's subject under the TopicNameStrategy
/// (`<topic>-key`, `<topic>-value`), or every record with the field is
/// framed and at least one of their IDs is held. Otherwise the leading
/// bytes are data (an 8-byte long key starts with `0x00` too), and an "ID"
/// no registry serves is no lost schema.
pub fn framed_by_evidence(
    snapshot: &RegistrySnapshot,
    held: &BTreeSet<i64>,
    topic: &str,
    field: Field,
    ids: &FieldIds,
) -> bool {
    snapshot.subjects.contains_key(&format!("{topic}-{field}"))
        || (ids.all_framed() && ids.ids.keys().any(|id| held.contains(&i64::from(*id))))
}

/// Every ID framed keys or values of `topics` carry that `snapshot` does not
/// hold, with the partitions and fields carrying it (sorted). A field
/// without a subject of its own whose records read as more unknown IDs than
/// [`MAX_LOOKUPS_PER_FIELD`] is left out: that many are data, not schemas.
pub fn missing_ids(
    snapshot: &RegistrySnapshot,
    topics: &BTreeMap<String, TopicManifest>,
) -> BTreeMap<i32, Vec<Carrier>> {
    let held = held_ids(snapshot);
    let mut out: BTreeMap<i32, Vec<Carrier>> = BTreeMap::new();
    for (topic, t) in topics {
        let all = t.schema_ids();
        for (field, ids) in all.fields() {
            let own_subject = snapshot.subjects.contains_key(&format!("{topic}-{field}"));
            let lacking = ids
                .ids
                .keys()
                .filter(|id| !held.contains(&i64::from(**id)))
                .count();
            if !own_subject && lacking > MAX_LOOKUPS_PER_FIELD {
                continue;
            }
            for (partition, p) in &t.partitions {
                let part = match field {
                    Field::Key => &p.schema_ids.key,
                    Field::Value => &p.schema_ids.value,
                };
                for (&id, &records) in &part.ids {
                    if !held.contains(&i64::from(id)) {
                        out.entry(id).or_default().push(Carrier {
                            topic: topic.clone(),
                            partition: *partition,
                            field,
                            records,
                        });
                    }
                }
            }
        }
    }
    for carriers in out.values_mut() {
        carriers.sort();
    }
    out
}

/// A topic's field whose leading bytes are taken as data, not schema IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawField {
    pub topic: String,
    pub field: Field,
    /// Records that start with `0x00` and hold at least 5 bytes.
    pub framed_looking: u64,
    /// Distinct "IDs" they read as.
    pub distinct: usize,
}

impl std::fmt::Display for RawField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` {}: {} record(s) start with 0x00 and read as {} schema ID(s) the registry does not serve, and nothing shows the field is framed (no subject `{}-{}`, no ID the registry holds): taken as raw bytes, not schema IDs",
            self.topic, self.field, self.framed_looking, self.distinct, self.topic, self.field
        )
    }
}

/// Splits the IDs the registry did not serve into those carried by framed
/// fields (lost schemas: a problem) and the fields whose leading bytes are
/// data ([`framed_by_evidence`] against `snapshot`, pulled-in versions
/// included).
pub fn split_unknown(
    snapshot: &RegistrySnapshot,
    topics: &BTreeMap<String, TopicManifest>,
    unknown: BTreeMap<i32, Vec<Carrier>>,
) -> (BTreeMap<i32, Vec<Carrier>>, Vec<RawField>) {
    let held = held_ids(snapshot);
    let mut raw = Vec::new();
    let mut framed: BTreeMap<(String, Field), bool> = BTreeMap::new();
    for (topic, t) in topics {
        let all = t.schema_ids();
        for (field, ids) in all.fields() {
            let is_framed = framed_by_evidence(snapshot, &held, topic, field, ids);
            framed.insert((topic.clone(), field), is_framed);
            if !is_framed && ids.framed > 0 {
                let distinct = ids
                    .ids
                    .keys()
                    .filter(|id| !held.contains(&i64::from(**id)))
                    .count();
                if distinct > 0 {
                    raw.push(RawField {
                        topic: topic.clone(),
                        field,
                        framed_looking: ids.framed,
                        distinct,
                    });
                }
            }
        }
    }
    let mut kept: BTreeMap<i32, Vec<Carrier>> = BTreeMap::new();
    for (id, carriers) in unknown {
        let carriers: Vec<Carrier> = carriers
            .into_iter()
            .filter(|c| {
                framed
                    .get(&(c.topic.clone(), c.field))
                    .copied()
                    .unwrap_or(true)
            })
            .collect();
        if !carriers.is_empty() {
            kept.insert(id, carriers);
        }
    }
    (kept, raw)
}

/// Why an ID is taken: "schema ID 7 is carried by records of `orders` (value)".
pub fn reason(id: i32, carriers: &[Carrier]) -> String {
    let mut by_field: BTreeMap<(&str, Field), u64> = BTreeMap::new();
    for c in carriers {
        *by_field.entry((c.topic.as_str(), c.field)).or_insert(0) += c.records;
    }
    let places: Vec<String> = by_field
        .iter()
        .map(|((topic, field), n)| format!("`{topic}` ({field}, {n} record(s))"))
        .collect();
    format!(
        "schema ID {id} is carried by records of {}",
        places.join(", ")
    )
}

/// Subject versions holding one schema ID.
type SubjectVersions = Vec<(String, u32)>;

/// What [`pull_in`] did.
#[derive(Debug, Default)]
pub struct PullIn {
    /// Versions added to the snapshot, with why (sorted by subject, version).
    pub pulled_in: Vec<PulledInEntry>,
    /// IDs the registry does not serve (in the default context), with who
    /// carries them.
    pub unknown: BTreeMap<i32, Vec<Carrier>>,
    /// Registry requests made.
    pub requests: u64,
}

/// Fetches each of `missing` from the registry and adds the versions holding
/// it (and what they reference) to `snapshot`.
pub async fn pull_in<A: RegistryApi + ?Sized>(
    api: &A,
    snapshot: &mut RegistrySnapshot,
    missing: BTreeMap<i32, Vec<Carrier>>,
    concurrency: usize,
) -> Result<PullIn, RegistryError> {
    let mut out = PullIn::default();
    let concurrency = concurrency.max(1);
    // which subject versions hold each ID, `None` when the ID is not served
    let found: Vec<(i32, Option<SubjectVersions>)> = stream::iter(missing.keys().copied())
        .map(|id| async move {
            let Ok(unsigned) = u32::try_from(id) else {
                return Ok((id, None)); // no registry hands out a negative ID
            };
            if unsigned == 0 {
                return Ok((id, None));
            }
            match api.schema_by_id(unsigned, DEFAULT_CONTEXT).await {
                Ok(_) => {}
                Err(RegistryError::SchemaNotFound(_)) => return Ok((id, None)),
                Err(e) => return Err(e),
            }
            let pairs = match api.schema_id_versions(unsigned, true).await {
                Ok(pairs) => pairs,
                Err(RegistryError::SchemaNotFound(_)) => return Ok((id, None)),
                Err(e) => return Err(e),
            };
            let pairs: Vec<(String, u32)> = pairs
                .into_iter()
                .filter(|(s, _)| model::split_context(s).0 == DEFAULT_CONTEXT)
                .collect();
            Ok((id, (!pairs.is_empty()).then_some(pairs)))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    out.requests += 2 * found.len() as u64;

    // subject version -> why it is wanted
    let mut wanted: BTreeMap<(String, u32), Why> = BTreeMap::new();
    for (id, pairs) in found {
        let carriers = &missing[&id];
        match pairs {
            None => {
                out.unknown.insert(id, carriers.clone());
            }
            Some(pairs) => {
                for pair in pairs {
                    let why = wanted.entry(pair).or_default();
                    why.ids.push((id, reason(id, carriers)));
                }
            }
        }
    }

    // read what is wanted, then what it references, until nothing is new
    let mut live_versions: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut added: BTreeMap<(String, u32), Why> = BTreeMap::new();
    let mut new_subjects = BTreeSet::new();
    while !wanted.is_empty() {
        let batch = std::mem::take(&mut wanted);
        let todo: Vec<(String, u32)> = batch
            .keys()
            .filter(|(s, v)| {
                !snapshot
                    .subjects
                    .get(s)
                    .is_some_and(|state| state.versions.contains_key(v))
            })
            .cloned()
            .collect();
        let subjects: Vec<String> = todo
            .iter()
            .map(|(s, _)| s.clone())
            .filter(|s| !live_versions.contains_key(s))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let lives: Vec<(String, BTreeSet<u32>)> = stream::iter(subjects)
            .map(|subject| async move {
                match api.versions(&subject, false).await {
                    Ok(v) => Ok((subject, v.into_iter().collect())),
                    // every version of the subject is soft-deleted
                    Err(RegistryError::SubjectNotFound(_)) => Ok((subject, BTreeSet::new())),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        out.requests += lives.len() as u64;
        live_versions.extend(lives);
        let read: Vec<SchemaVersion> = stream::iter(todo)
            .map(|(subject, version)| {
                let deleted = !live_versions[&subject].contains(&version);
                async move {
                    api.version(&subject, VersionRef::Number(version), true)
                        .await
                        .map(|r| r.into_version(deleted))
                }
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        out.requests += read.len() as u64;
        for v in read {
            let key = (v.subject.clone(), v.version);
            let mut why = batch.get(&key).cloned().unwrap_or_default();
            why.ids.retain(|(id, _)| i64::from(*id) == i64::from(v.id));
            for r in &v.references {
                let subject = model::resolve_reference_subject(&v.subject, &r.subject);
                let Ok(version) = u32::try_from(r.version) else {
                    continue; // `latest` references are resolved by the registry on restore
                };
                wanted
                    .entry((subject, version))
                    .or_default()
                    .referenced_by
                    .push(format!("{} v{}", v.subject, v.version));
            }
            if !snapshot.subjects.contains_key(&v.subject) {
                new_subjects.insert(v.subject.clone());
            }
            snapshot
                .subjects
                .entry(v.subject.clone())
                .or_insert_with(|| SubjectState::new(v.subject.clone()))
                .versions
                .insert(v.version, v);
            added.entry(key).or_default().merge(why);
        }
    }

    // a subject new to the snapshot keeps its own level and mode
    let settings: Vec<(String, Option<model::Compatibility>, Option<model::Mode>)> =
        stream::iter(new_subjects)
            .map(|subject| async move {
                let (level, mode) =
                    futures::try_join!(api.config(Some(&subject)), api.mode(Some(&subject)))?;
                Ok::<_, RegistryError>((subject, level, mode))
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
    out.requests += 2 * settings.len() as u64;
    for (subject, level, mode) in settings {
        let state = snapshot
            .subjects
            .get_mut(&subject)
            .expect("a subject just added is in the snapshot");
        state.compatibility = level;
        state.mode = mode;
    }

    out.pulled_in = added
        .into_iter()
        .map(|((subject, version), why)| PulledInEntry {
            subject,
            version,
            referenced_by: why.referenced_by,
            carried_by: why.ids.into_iter().map(|(_, r)| r).collect(),
        })
        .collect();
    Ok(out)
}

/// Why a version is pulled in.
#[derive(Debug, Clone, Default)]
struct Why {
    /// IDs records carry that this version holds, with the reason text.
    ids: Vec<(i32, String)>,
    /// Pulled-in versions referencing it.
    referenced_by: Vec<String>,
}

impl Why {
    fn merge(&mut self, other: Why) {
        self.ids.extend(other.ids);
        self.ids.sort();
        self.ids.dedup();
        self.referenced_by.extend(other.referenced_by);
        self.referenced_by.sort();
        self.referenced_by.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{FieldIds, PartitionManifest, RecordIds};
    use crate::model::{SchemaType, SchemaVersion};

    fn partition(key: &[(i32, u64)], value: &[(i32, u64)]) -> PartitionManifest {
        let field = |ids: &[(i32, u64)]| FieldIds {
            non_null: ids.iter().map(|(_, n)| n).sum(),
            framed: ids.iter().map(|(_, n)| n).sum(),
            ids: ids.iter().copied().collect(),
        };
        PartitionManifest {
            low_watermark: 0,
            high_watermark: 0,
            last_stable_offset: None,
            left_out_from: None,
            continues_from: None,
            record_count: 0,
            segments: Vec::new(),
            schema_ids: RecordIds {
                key: field(key),
                value: field(value),
            },
        }
    }

    fn snapshot(versions: &[(&str, u32, u32)]) -> RegistrySnapshot {
        let mut s = RegistrySnapshot::default();
        for (subject, version, id) in versions {
            s.subjects
                .entry(subject.to_string())
                .or_insert_with(|| SubjectState::new(*subject))
                .versions
                .insert(
                    *version,
                    SchemaVersion {
                        subject: subject.to_string(),
                        version: *version,
                        id: *id,
                        schema_type: SchemaType::Avro,
                        schema: "\"string\"".into(),
                        references: Vec::new(),
                        deleted: false,
                    },
                );
        }
        s
    }

    #[test]
    fn ids_of_the_default_context_the_snapshot_lacks_are_missing() {
        // ID 3 is held only in another context: records carry default-context IDs
        let snap = snapshot(&[("a-value", 1, 1), (":.eu:b-value", 1, 3)]);
        let mut topic = TopicManifest {
            partition_count: 2,
            replication_factor: 1,
            configs: BTreeMap::new(),
            partitions: BTreeMap::new(),
        };
        topic
            .partitions
            .insert(0, partition(&[(3, 2)], &[(1, 5), (2, 7)]));
        topic
            .partitions
            .insert(1, partition(&[], &[(2, 1), (-1, 1)]));
        let topics = BTreeMap::from([("orders".to_owned(), topic)]);
        let missing = missing_ids(&snap, &topics);
        assert_eq!(missing.keys().copied().collect::<Vec<_>>(), vec![-1, 2, 3]);
        assert_eq!(
            missing[&2],
            vec![
                Carrier {
                    topic: "orders".into(),
                    partition: 0,
                    field: Field::Value,
                    records: 7
                },
                Carrier {
                    topic: "orders".into(),
                    partition: 1,
                    field: Field::Value,
                    records: 1
                },
            ]
        );
        assert_eq!(
            reason(2, &missing[&2]),
            "schema ID 2 is carried by records of `orders` (value, 8 record(s))"
        );
        assert_eq!(
            missing[&3][0].to_string(),
            "`orders` partition 0 (key): 2 record(s)"
        );
    }
}
