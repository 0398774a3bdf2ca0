//! The source-to-target ID map: its entry types, and the reading of an
//! `id_mapping_file` (`{"1": 100, "5": 101}`), which is pure (bytes in).
//!
//! A record carries only a 4-byte ID, no subject: so the map is keyed by the
//! source context and source ID, and one source ID must point to exactly one
//! target ID.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::IdMappingFileError;
use crate::model::{DEFAULT_CONTEXT, split_context};

/// IDs pinned by hand: source context (`.` by default), then source ID, to
/// the target ID.
pub type PinnedIds = BTreeMap<String, BTreeMap<u32, u32>>;

/// Reads an `id_mapping_file`: a JSON object from source ID (`"5"`, or
/// `":.ctx:5"` for another context) to target ID. A source listed twice, or
/// two sources pinned to one target ID in a context, are errors.
pub fn parse_id_mapping_file(bytes: &[u8]) -> Result<PinnedIds, IdMappingFileError> {
    struct Pairs(Vec<(String, u32)>);
    impl<'de> Deserialize<'de> for Pairs {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Pairs;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object from source ID to target ID")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = map.next_entry::<String, u32>()? {
                        out.push((k, v));
                    }
                    Ok(Pairs(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    let Pairs(mut pairs) =
        serde_json::from_slice(bytes).map_err(|e| IdMappingFileError::Invalid {
            reason: e.to_string(),
        })?;
    pairs.sort();
    let mut out = PinnedIds::new();
    let mut targets: BTreeMap<(String, u32), String> = BTreeMap::new();
    for (key, target) in pairs {
        let (context, id) = split_context(&key);
        let context = if key.starts_with(":.") {
            context.to_owned()
        } else {
            DEFAULT_CONTEXT.to_owned()
        };
        let source: u32 = id.parse().map_err(|_| IdMappingFileError::Invalid {
            reason: format!("key `{key}` is not a schema ID"),
        })?;
        if out
            .entry(context.clone())
            .or_default()
            .insert(source, target)
            .is_some()
        {
            return Err(IdMappingFileError::DuplicateSource { key });
        }
        if let Some(first) = targets.insert((context.clone(), target), key.clone()) {
            return Err(IdMappingFileError::DuplicateTarget {
                first,
                second: key,
                target,
                context,
            });
        }
    }
    Ok(out)
}

/// Where a source ID points in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetId {
    /// Known now.
    Known(u32),
    /// The registry assigns it when the schema is registered.
    AfterApply,
    /// Nothing in the target will hold this schema (skipped or in conflict).
    Unmapped,
}

const AFTER_APPLY: &str = "known after apply";
const UNMAPPED: &str = "unmapped";

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetId::Known(id) => write!(f, "{id}"),
            TargetId::AfterApply => f.write_str(AFTER_APPLY),
            TargetId::Unmapped => f.write_str(UNMAPPED),
        }
    }
}

/// A number, `"known after apply"` or `"unmapped"`.
impl Serialize for TargetId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TargetId::Known(id) => s.serialize_u32(*id),
            TargetId::AfterApply => s.serialize_str(AFTER_APPLY),
            TargetId::Unmapped => s.serialize_str(UNMAPPED),
        }
    }
}

impl<'de> Deserialize<'de> for TargetId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TargetId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a schema ID, `{AFTER_APPLY}` or `{UNMAPPED}`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TargetId, E> {
                u32::try_from(v)
                    .map(TargetId::Known)
                    .map_err(|_| E::custom("schema ID out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TargetId, E> {
                match v {
                    AFTER_APPLY => Ok(TargetId::AfterApply),
                    UNMAPPED => Ok(TargetId::Unmapped),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// How a target ID was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdHow {
    /// The target already holds the identical schema under this ID.
    Existing,
    /// `force_ids`: the source ID, registered in IMPORT mode.
    Forced,
    /// `id_mapping_file`: pinned by hand, registered in IMPORT mode.
    Pinned,
    /// The registry assigns a new ID at apply time.
    Assigned,
    /// `skip` leaves the subject, and the target has no identical version.
    Skipped,
    /// The version is in conflict.
    Conflict,
    /// `restore.enabled: false`: the target does not hold the identical
    /// schema, and nothing registers it.
    NotRestored,
}

/// One entry of the ID map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMapEntry {
    /// Context the ID lives in on the target.
    pub target_context: String,
    /// The target ID.
    pub target_id: TargetId,
    /// How it was decided.
    pub how: IdHow,
    /// Target `subject vN` holding the schema after the restore (source
    /// `subject vN` when unmapped), sorted.
    pub used_by: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_format_reads_and_contexts_are_keyed() {
        let pinned = parse_id_mapping_file(br#"{"1": 100, "5": 101, ":.dr:5": 7}"#).unwrap();
        let expected: PinnedIds = [
            (".".to_owned(), [(1, 100), (5, 101)].into_iter().collect()),
            (".dr".to_owned(), [(5, 7)].into_iter().collect()),
        ]
        .into_iter()
        .collect();
        assert_eq!(pinned, expected);
    }

    #[test]
    fn duplicates_and_bad_keys_are_errors() {
        assert_eq!(
            parse_id_mapping_file(br#"{"1": 100, "1": 101}"#).unwrap_err(),
            IdMappingFileError::DuplicateSource { key: "1".into() }
        );
        assert_eq!(
            parse_id_mapping_file(br#"{"1": 100, "2": 100}"#)
                .unwrap_err()
                .to_string(),
            "source IDs `1` and `2` are both pinned to target ID 100 in context `.`\nhint: every source schema needs its own target ID"
        );
        let err = parse_id_mapping_file(br#"{"one": 1}"#).unwrap_err();
        assert!(
            err.to_string().contains("key `one` is not a schema ID"),
            "{err}"
        );
        let err = parse_id_mapping_file(br#"[1, 2]"#).unwrap_err();
        assert!(matches!(err, IdMappingFileError::Invalid { .. }), "{err}");
        // the same target ID in two contexts is fine
        assert!(parse_id_mapping_file(br#"{"1": 100, ":.x:1": 100}"#).is_ok());
    }

    #[test]
    fn target_ids_serialize_as_number_or_words() {
        for (id, json) in [
            (TargetId::Known(7), "7"),
            (TargetId::AfterApply, "\"known after apply\""),
            (TargetId::Unmapped, "\"unmapped\""),
        ] {
            assert_eq!(serde_json::to_string(&id).unwrap(), json);
            assert_eq!(serde_json::from_str::<TargetId>(json).unwrap(), id);
        }
        assert!(serde_json::from_str::<TargetId>("\"soon\"").is_err());
    }
}
